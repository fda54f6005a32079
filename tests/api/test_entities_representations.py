"""Every attribute kind in the normalized, concise and simplified representations, and the
retrieval parameters (attrs, pick, omit, lang, datasetId, sysAttrs, format), on both stores."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.entities.helpers import CORE, create, get, problem, send, url

EID = "urn:ngsi-ld:Building:1"
LD_CTX = [{"cat": "https://example.org/vocab/", "kind": {"@id": "https://example.org/kind", "@type": "@vocab"}},
          CORE]

FULL = {
    "id": EID,
    "type": ["Building", "Landmark"],
    "scope": ["/Porto/Ribeira", "/Heritage"],
    "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": "2024-05-01T10:00:00Z",
                    "accuracy": {"type": "Property", "value": 0.5},
                    "sensor": {"type": "Relationship", "object": "urn:ngsi-ld:Device:7"}},
    "address": {"type": "Property", "value": {"street": "Rua A", "number": 3}},
    "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Ana", "objectType": "Person"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-8.61, 41.14]}},
    "name": {"type": "LanguageProperty", "languageMap": {"fr": "Grand Place", "nl": "Grote Markt"}},
    "category": {"type": "VocabProperty", "vocab": "commercial"},
    "config": {"type": "JsonProperty", "json": {"id": 1, "type": "free-form"}},
    "floors": {"type": "ListProperty", "valueList": [0, 1, 2]},
    "route": {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:City:Porto"},
                                                          {"object": "urn:ngsi-ld:City:Braga"}]},
}


async def test_normalized_round_trip_of_every_kind(client: TestClient) -> None:
    await create(client, FULL)
    got = await get(client, EID)
    expected = {k: v for k, v in FULL.items()}
    expected["temperature"] = {**FULL["temperature"], "observedAt": "2024-05-01T10:00:00.000Z"}
    assert got == expected


async def test_concise_representation(client: TestClient) -> None:
    await create(client, FULL)
    got = await get(client, EID, "?options=concise")
    assert got == {
        "id": EID, "type": ["Building", "Landmark"], "scope": ["/Porto/Ribeira", "/Heritage"],
        "temperature": {"value": 21.5, "unitCode": "CEL", "observedAt": "2024-05-01T10:00:00.000Z",
                        "accuracy": 0.5, "sensor": {"object": "urn:ngsi-ld:Device:7"}},
        "address": {"value": {"street": "Rua A", "number": 3}},
        "owner": {"object": "urn:ngsi-ld:Person:Ana", "objectType": "Person"},
        "location": {"type": "Point", "coordinates": [-8.61, 41.14]},
        "name": {"languageMap": {"fr": "Grand Place", "nl": "Grote Markt"}},
        "category": {"vocab": "commercial"},
        "config": {"json": {"id": 1, "type": "free-form"}},
        "floors": {"valueList": [0, 1, 2]},
        "route": {"objectList": [{"object": "urn:ngsi-ld:City:Porto"}, {"object": "urn:ngsi-ld:City:Braga"}]},
    }
    # format= wins over options=, and concise output is accepted back as input
    assert await get(client, EID, "?format=concise&options=keyValues") == got
    again = {**got, "id": "urn:ngsi-ld:Building:2"}
    await create(client, again)
    copy = await get(client, "urn:ngsi-ld:Building:2")
    assert copy == {**(await get(client, EID)), "id": "urn:ngsi-ld:Building:2"}


async def test_simplified_representation(client: TestClient) -> None:
    await create(client, FULL)
    expected = {
        "id": EID, "type": ["Building", "Landmark"], "scope": ["/Porto/Ribeira", "/Heritage"],
        "temperature": 21.5, "address": {"street": "Rua A", "number": 3}, "owner": "urn:ngsi-ld:Person:Ana",
        "location": {"type": "Point", "coordinates": [-8.61, 41.14]},
        "name": {"languageMap": {"fr": "Grand Place", "nl": "Grote Markt"}},
        "category": {"vocab": "commercial"}, "config": {"json": {"id": 1, "type": "free-form"}},
        "floors": {"valueList": [0, 1, 2]},
        "route": {"objectList": ["urn:ngsi-ld:City:Porto", "urn:ngsi-ld:City:Braga"]},
    }
    assert await get(client, EID, "?options=keyValues") == expected
    assert await get(client, EID, "?format=simplified") == expected
    assert await get(client, EID, "?options=keyValues,sysAttrs") == expected


async def test_lang_filter(client: TestClient) -> None:
    await create(client, FULL)
    cases = {"fr": ("Grand Place", "fr"), "fr-CH,fr": ("Grand Place", "fr"),
             "fr-CH,fr;q=0.5,nl;q=0.9": ("Grote Markt", "nl"), "*": ("Grand Place", "fr"),
             "de": ("Grand Place", "fr")}
    for lang, (text, tag) in cases.items():
        got = await get(client, EID, f"?lang={lang}&pick=name")
        assert got == {"name": {"type": "Property", "value": text, "lang": tag}}, lang
    assert await get(client, EID, "?lang=nl&pick=name&options=keyValues") == {"name": "Grote Markt"}
    assert await get(client, EID, "?lang=nl&pick=name&options=concise") == \
        {"name": {"value": "Grote Markt", "lang": "nl"}}
    # @none is the fallback when no listed language exists
    await send(client, "PATCH", url(EID, "attrs", "name"),
               {"type": "LanguageProperty", "languageMap": {"@none": "Praça", "fr": "Place"}})
    assert await get(client, EID, "?lang=de&pick=name") == {"name": {"type": "Property", "value": "Praça"}}


async def test_pick_omit_attrs(client: TestClient) -> None:
    await create(client, FULL)
    assert await get(client, EID, "?pick=id,temperature&options=keyValues") == {"id": EID, "temperature": 21.5}
    assert await get(client, EID, "?pick=type") == {"type": ["Building", "Landmark"]}
    got = await get(client, EID, "?omit=id,type,scope,temperature,address,owner,location,name,config,floors")
    assert got == {"category": FULL["category"], "route": FULL["route"]}
    got = await get(client, EID, "?attrs=floors,nothing&options=keyValues")
    assert got == {"id": EID, "type": ["Building", "Landmark"], "scope": ["/Porto/Ribeira", "/Heritage"],
                   "floors": {"valueList": [0, 1, 2]}}
    resp = await client.get(url(EID) + "?pick=id&omit=type")
    await problem(resp, 400, "BadRequestData")
    resp = await client.get(url(EID) + "?pick=")
    await problem(resp, 400, "BadRequestData")
    resp = await client.get(url(EID) + "?attrs=bad<name")
    await problem(resp, 400, "BadRequestData")
    # undefined options/format values: InvalidRequest (clause 6.3.20, ETSI 018_16)
    resp = await client.get(url(EID) + "?options=fancy")
    await problem(resp, 400, "InvalidRequest")
    resp = await client.get(url(EID) + "?format=xml")
    await problem(resp, 400, "InvalidRequest")


async def test_sys_attrs(client: TestClient) -> None:
    await create(client, FULL)
    got = await get(client, EID, "?options=sysAttrs")
    assert got["createdAt"] == got["modifiedAt"]
    for name in ("temperature", "owner", "name", "route"):
        assert got[name]["createdAt"].endswith("Z") and "modifiedAt" in got[name]
    assert got["temperature"]["accuracy"]["createdAt"].endswith("Z")
    concise = await get(client, EID, "?options=sysAttrs,concise")
    assert concise["temperature"]["value"] == 21.5 and "createdAt" in concise["temperature"]
    assert "createdAt" in concise


async def test_multi_instance_and_dataset_id(client: TestClient) -> None:
    body = {"id": EID, "type": "Building",
            "speed": [{"type": "Property", "value": 10},
                      {"type": "Property", "value": 11, "datasetId": "urn:ngsi-ld:Dataset:gps"},
                      {"type": "Property", "value": 12, "datasetId": "urn:ngsi-ld:Dataset:radar"}]}
    await create(client, body)
    assert (await get(client, EID))["speed"] == body["speed"]
    got = await get(client, EID, "?datasetId=urn:ngsi-ld:Dataset:gps")
    assert got["speed"] == body["speed"][1]
    got = await get(client, EID, "?datasetId=@none,urn:ngsi-ld:Dataset:radar&options=keyValues")
    # a Multi-Attribute in the simplified form: values keyed by datasetId (ETSI GS CIM 009 v1.8 clause 4.5.4)
    assert got["speed"] == {"dataset": {"@none": 10, "urn:ngsi-ld:Dataset:radar": 12}}
    got = await get(client, EID, "?options=keyValues")
    assert got["speed"] == {"dataset": {"@none": 10, "urn:ngsi-ld:Dataset:gps": 11, "urn:ngsi-ld:Dataset:radar": 12}}
    got = await get(client, EID, "?datasetId=urn:ngsi-ld:Dataset:gps&options=keyValues")
    assert got["speed"] == 11  # one instance left: a plain value, as for any single attribute
    resp = await client.get(url(EID) + "?datasetId=not%20a%20uri")
    await problem(resp, 400, "BadRequestData")
    dup = {"id": "urn:ngsi-ld:Building:9", "type": "Building",
           "speed": [{"type": "Property", "value": 1, "datasetId": "urn:x:a"},
                     {"type": "Property", "value": 2, "datasetId": "urn:x:a"}]}
    resp = await send(client, "POST", "/ngsi-ld/v1/entities", dup)
    await problem(resp, 400, "BadRequestData")


async def test_vocab_and_object_type_compaction(client: TestClient) -> None:
    body = {"id": EID, "type": "Building", "@context": LD_CTX,
            "kind": {"type": "VocabProperty", "vocab": "cat:museum"},
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Ana", "objectType": "cat:Person"}}
    resp = await send(client, "POST", "/ngsi-ld/v1/entities", body, "application/ld+json")
    assert resp.status == 201, await resp.text()
    # without the user context the IRIs come back in full
    got = await get(client, EID)
    assert got["https://example.org/kind"]["vocab"] == "https://example.org/vocab/museum"
    assert got["owner"]["objectType"] == "https://example.org/vocab/Person"
    ld = await get(client, EID, "", Accept="application/ld+json")
    assert ld["@context"] == CORE and ld["https://example.org/kind"]["vocab"] == "https://example.org/vocab/museum"


async def test_concise_input_infers_kinds(client: TestClient) -> None:
    body = {"id": EID, "type": "Building", "count": 3, "label": "hall",
            "where": {"type": "Point", "coordinates": [1, 2]},
            "owner": {"object": "urn:ngsi-ld:Person:Ana"}, "name": {"languageMap": {"en": "Hall"}},
            "cat": {"vocab": "x"}, "cfg": {"json": {"a": [1]}}, "list": {"valueList": [1]},
            "rels": {"objectList": ["urn:ngsi-ld:City:Porto"]},
            "temp": {"value": 20, "unitCode": "CEL", "accuracy": 0.1}, "obj": {"a": 1}}
    await create(client, body)
    got = await get(client, EID)
    assert got["count"] == {"type": "Property", "value": 3}
    assert got["where"]["type"] == "GeoProperty"
    assert got["owner"]["type"] == "Relationship"
    assert got["name"]["type"] == "LanguageProperty"
    assert got["cat"]["type"] == "VocabProperty"
    assert got["cfg"]["type"] == "JsonProperty"
    assert got["list"]["type"] == "ListProperty"
    assert got["rels"] == {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:City:Porto"}]}
    assert got["temp"] == {"type": "Property", "value": 20, "unitCode": "CEL",
                           "accuracy": {"type": "Property", "value": 0.1}}
    assert got["obj"] == {"type": "Property", "value": {"a": 1}}
