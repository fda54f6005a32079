"""GET /entities, POST /entityOperations/query and DELETE /entities (purge), on both stores."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from broker.api.keys import BUS
from broker.services.events import ChangeEvent

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
URL = "/ngsi-ld/v1/entities"
POST_URL = "/ngsi-ld/v1/entityOperations/query"
JSON_CT = {"Content-Type": "application/json"}


def room(n: int, temp: float, **extra: Any) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Room:{n:03d}", "type": "Room",
            "temperature": {"type": "Property", "value": temp},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-8.6 + n / 100, 41.1]}},
            **extra}


async def create(client: TestClient, body: dict[str, Any], tenant: str | None = None) -> None:
    headers = dict(JSON_CT)
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    resp = await client.post(URL, data=orjson.dumps(body), headers=headers)
    assert resp.status == 201, await resp.text()


async def ordered_ids(client: TestClient, query: str) -> list[str]:
    resp = await client.get(f"{URL}?{query}")
    assert resp.status == 200, await resp.text()
    return [e["id"] for e in await resp.json(content_type=None)]


async def ids(client: TestClient, query: str) -> list[str]:
    """The ids a query answers, sorted (creations in one millisecond are ordered by id)."""
    return sorted(await ordered_ids(client, query))


async def problem(resp, status: int, type_name: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = await resp.json(content_type=None)
    assert body["type"] == ERR + type_name, body
    return body


async def seed(client: TestClient) -> None:
    for n, t in enumerate([18.0, 21.5, 25.0]):
        await create(client, room(n, t, scope="/Porto/Baixa" if n else "/Lisboa"))
    await create(client, {"id": "urn:ngsi-ld:Building:A", "type": ["Building", "Room"],
                          "height": {"type": "Property", "value": 30},
                          "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}})
    await create(client, {"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor",
                          "temperature": {"type": "Property", "value": 30, "unitCode": "CEL"}})


async def test_type_q_and_representations(client: TestClient) -> None:
    await seed(client)
    assert await ids(client, "type=Room") == ["urn:ngsi-ld:Building:A", "urn:ngsi-ld:Room:000",
                                              "urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert await ids(client, "type=Room&q=temperature>20") == ["urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert await ids(client, "q=temperature==30") == ["urn:ngsi-ld:Sensor:1"]
    assert await ids(client, "type=Building,Sensor") == ["urn:ngsi-ld:Building:A", "urn:ngsi-ld:Sensor:1"]
    assert await ids(client, "type=Building|Sensor") == ["urn:ngsi-ld:Building:A", "urn:ngsi-ld:Sensor:1"]
    assert await ids(client, "type=(Room;Building)") == ["urn:ngsi-ld:Building:A"]
    assert await ids(client, "type=Room;Sensor") == []
    assert await ids(client, "type=Room&id=urn:ngsi-ld:Room:002,urn:ngsi-ld:Room:000,urn:ngsi-ld:X:9") == [
        "urn:ngsi-ld:Room:000", "urn:ngsi-ld:Room:002"]
    assert await ids(client, "type=Room&idPattern=.*:00[12]$") == ["urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert await ids(client, "type=Room&scopeQ=/Porto/%23") == ["urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert await ids(client, "attrs=height,unknownAttr") == ["urn:ngsi-ld:Building:A"]
    assert await ids(client, "type=Room&q=owner==urn:ngsi-ld:Person:1") == ["urn:ngsi-ld:Building:A"]
    assert await ids(client, "local=true") == ["urn:ngsi-ld:Building:A", "urn:ngsi-ld:Room:000",
                                              "urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002",
                                              "urn:ngsi-ld:Sensor:1"]

    resp = await client.get(f"{URL}?type=Room&q=temperature>20&options=keyValues&attrs=temperature")
    assert resp.headers["Content-Type"].startswith("application/json")
    assert CORE in resp.headers["Link"]
    assert await resp.json() == [
        {"id": "urn:ngsi-ld:Room:001", "type": "Room", "scope": "/Porto/Baixa", "temperature": 21.5},
        {"id": "urn:ngsi-ld:Room:002", "type": "Room", "scope": "/Porto/Baixa", "temperature": 25.0}]
    resp = await client.get(f"{URL}?type=Sensor&format=concise")
    assert await resp.json() == [{"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor",
                                  "temperature": {"value": 30, "unitCode": "CEL"}}]
    resp = await client.get(f"{URL}?type=Sensor&options=sysAttrs", headers={"Accept": "application/ld+json"})
    assert resp.headers["Content-Type"].startswith("application/ld+json")
    [sensor] = await resp.json(content_type=None)
    assert sensor["@context"] == CORE and sensor["createdAt"].endswith("Z")
    assert sensor["temperature"]["modifiedAt"].endswith("Z")
    resp = await client.get(f"{URL}?type=Room&q=temperature>20&pick=id,temperature")
    assert await resp.json() == [{"id": "urn:ngsi-ld:Room:001", "temperature": {"type": "Property", "value": 21.5}},
                                 {"id": "urn:ngsi-ld:Room:002", "temperature": {"type": "Property", "value": 25.0}}]
    resp = await client.get(f"{URL}?type=Sensor&omit=temperature,type")
    assert await resp.json() == [{"id": "urn:ngsi-ld:Sensor:1"}]


async def test_user_context_and_geo(client: TestClient) -> None:
    ctx = [{"Shop": "https://example.org/Shop", "sales": "https://example.org/sales"}, CORE]
    body = {"id": "urn:ngsi-ld:Shop:1", "type": "Shop", "sales": {"type": "Property", "value": 7},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-8.61, 41.15]}},
            "@context": ctx}
    resp = await client.post(URL, data=orjson.dumps(body), headers={"Content-Type": "application/ld+json"})
    assert resp.status == 201
    # without the context, the short names are other IRIs: nothing matches
    assert await ids(client, "type=Shop") == []
    assert await ids(client, "type=https://example.org/Shop&q=<https://example.org/sales>==7") == [
        "urn:ngsi-ld:Shop:1"]
    resp = await client.post(POST_URL, data=orjson.dumps({"type": "Query", "entities": [{"type": "Shop"}],
                                                          "q": "sales>5", "@context": ctx}),
                             headers={"Content-Type": "application/ld+json", "Accept": "application/ld+json"})
    assert resp.status == 200, await resp.text()
    [shop] = await resp.json(content_type=None)
    assert shop["type"] == "Shop" and shop["sales"]["value"] == 7 and shop["@context"] == ctx
    near = "georel=near;maxDistance==2000&geometry=Point&coordinates=[-8.6,41.15]"
    assert await ids(client, f"type=https://example.org/Shop&{near}") == ["urn:ngsi-ld:Shop:1"]
    far = "georel=near;minDistance==2000&geometry=Point&coordinates=[-8.6,41.15]"
    assert await ids(client, f"type=https://example.org/Shop&{far}") == []
    box = "[[[-9,41],[-8,41],[-8,42],[-9,42],[-9,41]]]"
    assert await ids(client, f"georel=within&geometry=Polygon&coordinates={box}") == ["urn:ngsi-ld:Shop:1"]
    assert await ids(client, f"georel=within&geometry=Polygon&coordinates={box}&geoproperty=elsewhere") == []


async def test_pagination_count_and_links(client: TestClient) -> None:
    for n in range(23):
        await create(client, room(n, float(n)))
    expected = [f"urn:ngsi-ld:Room:{n:03d}" for n in range(23)]
    assert await ordered_ids(client, "type=Room") == expected[:20]  # default limit
    seen: list[str] = []
    url = f"{URL}?type=Room&limit=5&count=true&options=keyValues"
    pages = 0
    while url:
        resp = await client.get(url)
        assert resp.status == 200
        assert resp.headers["NGSILD-Results-Count"] == "23"
        seen.extend(e["id"] for e in await resp.json())
        links = [v for v in resp.headers.getall("Link") if 'rel="next"' in v]
        url = links[0][1:links[0].index(">")] if links else ""
        if url:
            assert "options=keyValues" in url and "count=true" in url and "type=Room" in url
        pages += 1
    assert seen == expected and pages == 5
    resp = await client.get(f"{URL}?type=Room&limit=5&offset=20")
    links = resp.headers.getall("Link")
    assert not any('rel="next"' in v for v in links)
    prev = next(v for v in links if 'rel="prev"' in v)
    assert "offset=15" in prev and "limit=5" in prev
    assert "NGSILD-Results-Count" not in resp.headers
    assert await ordered_ids(client, "type=Room&offset=21&limit=10") == expected[21:]
    assert await ids(client, "type=Room&offset=30") == []
    resp = await client.get(f"{URL}?type=Room&limit=0&count=true&q=temperature>=10")
    assert resp.status == 200 and await resp.json() == []
    assert resp.headers["NGSILD-Results-Count"] == "13"
    resp = await client.get(f"{URL}?type=Nothing&count=true")
    assert await resp.json() == [] and resp.headers["NGSILD-Results-Count"] == "0"
    resp = await client.get(f"{URL}?type=Room&limit=1000&count=true")
    assert len(await resp.json()) == 23


async def test_query_errors_change_nothing(client: TestClient) -> None:
    await seed(client)
    cases = [
        ("", 400, "BadRequestData"),
        ("id=urn:ngsi-ld:Room:000", 400, "BadRequestData"),  # id alone is not enough (5.7.2.4)
        ("scopeQ=/Porto", 400, "BadRequestData"),
        ("type=Room&limit=0", 400, "BadRequestData"),
        ("type=Room&limit=1001", 403, "TooManyResults"),
        ("type=Room&limit=abc", 400, "BadRequestData"),
        ("type=Room&limit=-1", 400, "BadRequestData"),
        ("type=Room&offset=-5", 400, "BadRequestData"),
        ("type=Room&count=maybe", 400, "BadRequestData"),
        ("type=Room&q=temperature%3D%3D", 400, "BadRequestData"),
        ("type=Room&q=(temperature==1", 400, "BadRequestData"),
        ("type=Ro(om", 400, "BadRequestData"),
        ("type=Room&scopeQ=Porto", 400, "BadRequestData"),
        ("type=Room&id=not-a-uri", 400, "BadRequestData"),
        ("type=Room&idPattern=invalid**", 400, "BadRequestData"),
        ("attrs=id,type", 400, "BadRequestData"),
        ("type=Room&georel=invalid&geometry=Point&coordinates=[1,2]", 400, "BadRequestData"),
        ("type=Room&georel=near;maxDistance==10&geometry=Point", 400, "BadRequestData"),
        ("type=Room&georel=within&geometry=Polygon&coordinates=[1,2]", 400, "BadRequestData"),
        ("type=Room&georel=near;maxDistance==10&geometry=Point&coordinates=[500,2]", 400, "BadRequestData"),
        ("type=Room&geoproperty=location", 400, "BadRequestData"),
        ("type=Room&options=bogus", 400, "InvalidRequest"),  # undefined values: clause 6.3.20, ETSI 018_16
        ("type=Room&options=keyValues,concise", 400, "BadRequestData"),
        ("type=Room&format=xml", 400, "InvalidRequest"),
        ("type=Room&pick=id&omit=type", 400, "BadRequestData"),
    ]
    for query, status, kind in cases:
        body = await problem(await client.get(f"{URL}?{query}"), status, kind)
        assert body["detail"], query
    body = await problem(await client.get(f"{URL}?type=Room&q=temperature%3D%3D"), 400, "BadRequestData")
    assert "position" in body["detail"]
    await problem(await client.get(f"{URL}?type=Room", headers={"Accept": "text/html"}), 406, "NotAcceptable")
    await problem(await client.get(f"{URL}?type=Room", headers={"NGSILD-Tenant": "nowhere"}), 404,
                  "NonexistentTenant")
    await problem(await client.post(POST_URL, data=orjson.dumps({"type": "Query", "attrs": ["a"]}),
                                    headers={**JSON_CT, "NGSILD-Tenant": "nowhere"}), 404, "NonexistentTenant")
    await problem(await client.delete(f"{URL}?type=Room", headers={"NGSILD-Tenant": "nowhere"}), 404,
                  "NonexistentTenant")
    await problem(await client.get(f"{URL}?type=Room", headers={"NGSILD-Tenant": "bad tenant"}), 400,
                  "BadRequestData")
    assert len(await ids(client, "local=true")) == 5


async def test_post_query(client: TestClient) -> None:
    await seed(client)

    async def post(body: Any, query: str = "", **headers: str) -> Any:
        return await client.post(f"{POST_URL}{query}", data=orjson.dumps(body), headers={**JSON_CT, **headers})

    async def post_ids(body: Any, query: str = "") -> list[str]:
        resp = await post(body, query)
        assert resp.status == 200, await resp.text()
        return [e["id"] for e in await resp.json()]

    assert await post_ids({"type": "Query", "entities": [{"type": "Room"}], "q": "temperature>20"}) == [
        "urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert await post_ids({"type": "Query", "entities": [{"type": "Sensor"}, {"type": "Building"}]}) == [
        "urn:ngsi-ld:Building:A", "urn:ngsi-ld:Sensor:1"]
    two_ids = {"type": "Query", "entities": [{"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor"},
                                             {"id": "urn:ngsi-ld:Room:000", "type": "Room"},
                                             {"id": "urn:ngsi-ld:Room:001", "type": "Sensor"}]}
    assert await post_ids(two_ids) == ["urn:ngsi-ld:Room:000", "urn:ngsi-ld:Sensor:1"]
    assert await post_ids({"type": "Query", "entities": [{"idPattern": ".*:00[01]", "type": "Room"}]}) == [
        "urn:ngsi-ld:Room:000", "urn:ngsi-ld:Room:001"]
    assert await post_ids({"type": "Query", "entities": [{"id": "urn:ngsi-ld:Sensor:1"}]}) == [
        "urn:ngsi-ld:Sensor:1"]
    assert await post_ids({"type": "Query", "attrs": ["height"]}) == ["urn:ngsi-ld:Building:A"]
    assert await post_ids({"type": "Query", "scopeQ": "/Lisboa", "entities": [{"type": "Room"}]}) == [
        "urn:ngsi-ld:Room:000"]
    geo = {"type": "Query", "entities": [{"type": "Room"}],
           "geoQ": {"georel": "near;maxDistance==500", "geometry": "Point", "coordinates": [-8.59, 41.1]}}
    assert await post_ids(geo) == ["urn:ngsi-ld:Room:001"]
    resp = await post({"type": "Query", "entities": [{"type": "Room"}]}, "?limit=1&offset=1&count=true")
    assert [e["id"] for e in await resp.json()] == ["urn:ngsi-ld:Room:001"]
    assert resp.headers["NGSILD-Results-Count"] == "4"
    assert any('rel="next"' in v and "offset=2" in v for v in resp.headers.getall("Link"))
    resp = await post({"type": "Query", "entities": [{"type": "Sensor"}]}, "?options=keyValues")
    assert await resp.json() == [{"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "temperature": 30}]

    bad = [
        {"type": "Querx", "entities": [{"type": "Room"}]},
        {"entities": [{"type": "Room"}]},
        {"type": "Query"},
        {"type": "Query", "entities": []},
        {"type": "Query", "entities": [{}]},
        {"type": "Query", "entities": "Room"},
        {"type": "Query", "attrs": []},
        {"type": "Query", "attrs": ["id"]},
        {"type": "Query", "entities": [{"type": "Room"}], "q": "temperature=="},
        {"type": "Query", "entities": [{"type": "Room"}], "geoQ": {"georel": "within", "geometry": "Point"}},
        {"type": "Query", "entities": [{"id": "bad id", "type": "Room"}]},
        ["not", "an", "object"],
    ]
    for body in bad:
        await problem(await post(body), 400, "BadRequestData")
    await problem(await post({"type": "Query", "entities": [{"type": "Room"}]}, "?limit=5000"), 403,
                  "TooManyResults")
    await problem(await post({"type": "Query", "entities": [{"type": "Room"}]}, "?limit=1&foo=bar"), 400,
                  "InvalidRequest")  # an unknown URL parameter, as on GET /entities (clause 6.3.20)
    resp = await client.post(POST_URL, data=b"{", headers=JSON_CT)
    await problem(resp, 400, "InvalidRequest")
    resp = await client.post(POST_URL, data=b"{}", headers={"Content-Type": "text/plain"})
    await problem(resp, 415, "UnsupportedMediaType")


async def test_post_query_several_selectors(client: TestClient) -> None:
    """Several EntitySelectors (clause 5.7.2): an entity matches when it meets one of them whole
    (its id, idPattern and type together), then q, attrs, paging and count apply to the union."""
    await seed(client)

    async def post(body: Any, query: str = "") -> Any:
        return await client.post(f"{POST_URL}{query}", data=orjson.dumps(body), headers=JSON_CT)

    async def post_ids(entities: list[dict[str, str]], query: str = "", **members: Any) -> list[str]:
        resp = await post({"type": "Query", "entities": entities, **members}, query)
        assert resp.status == 200, await resp.text()
        return [e["id"] for e in await resp.json()]

    pattern_or_type = [{"idPattern": ".*:00[12]", "type": "Room"}, {"type": "Sensor"}]
    assert await post_ids(pattern_or_type) == ["urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002",
                                               "urn:ngsi-ld:Sensor:1"]
    assert await post_ids(pattern_or_type, q="temperature>22") == ["urn:ngsi-ld:Room:002", "urn:ngsi-ld:Sensor:1"]
    assert await post_ids([{"id": "urn:ngsi-ld:Room:000"}, {"idPattern": ".*Sensor.*"}]) == [
        "urn:ngsi-ld:Room:000", "urn:ngsi-ld:Sensor:1"]
    # each selector holds whole: an id under the wrong type, a pattern under the wrong type
    assert await post_ids([{"id": "urn:ngsi-ld:Room:000", "type": "Sensor"},
                           {"idPattern": ".*Sensor.*", "type": "Room"}]) == []
    assert await post_ids([{"idPattern": ".*:A", "type": "Building"}, {"idPattern": ".*:000", "type": "Room"}]) == [
        "urn:ngsi-ld:Room:000", "urn:ngsi-ld:Building:A"]  # the query order (creation), not the selectors'

    assert await post_ids([{"idPattern": ".*:A", "type": "Building"}, {"type": "Sensor"}],
                          attrs=["temperature"]) == ["urn:ngsi-ld:Sensor:1"]
    resp = await post({"type": "Query", "entities": pattern_or_type}, "?limit=1&offset=1&count=true")
    assert [e["id"] for e in await resp.json()] == ["urn:ngsi-ld:Room:002"]
    assert resp.headers["NGSILD-Results-Count"] == "3"
    assert any('rel="next"' in v and "offset=2" in v for v in resp.headers.getall("Link"))
    many = [{"idPattern": f".*:{n}", "type": "Room"} for n in range(100)] + [{"type": "Sensor"}]
    await problem(await post({"type": "Query", "entities": many}), 422, "OperationNotSupported")
    assert len(await post_ids(many[:99] + [{"type": "Sensor"}])) == 1  # 100 are served
    for entities in ([{"idPattern": "(", "type": "Room"}, {"type": "Sensor"}],
                     [{"id": "not a uri", "type": "Room"}, {"idPattern": ".*"}],
                     [{"idPattern": ".*", "type": "Room"}, {}]):
        await problem(await post({"type": "Query", "entities": entities}), 400, "BadRequestData")


async def test_language_tags_and_expand_values(client: TestClient) -> None:
    """``name[pt]`` reads one language of a LanguageProperty; ``expandValues`` expands the strings
    compared with VocabProperty attributes with the request's @context, as their values are stored."""
    from urllib.parse import quote

    await create(client, {"id": "urn:ngsi-ld:Bridge:1", "type": "Bridge",
                          "name": {"type": "LanguageProperty", "languageMap": {"en": "Bridge", "pt": "Ponte"}},
                          "category": {"type": "VocabProperty", "vocab": ["Residential", "Commercial"]}})
    await create(client, {"id": "urn:ngsi-ld:Bridge:2", "type": "Bridge",
                          "name": {"type": "LanguageProperty", "languageMap": {"en": "Ponte"}},
                          "category": {"type": "VocabProperty", "vocab": "Industrial"}})
    one, two = "urn:ngsi-ld:Bridge:1", "urn:ngsi-ld:Bridge:2"

    async def q(expr: str, extra: str = "") -> list[str]:
        return await ids(client, f"type=Bridge&q={quote(expr)}{extra}")

    assert await q('name=="Ponte"') == [one, two]  # any language
    assert await q('name[pt]=="Ponte"') == [one]
    assert await q('name[en]=="Ponte"') == [two]
    assert await q('name[fr]=="Ponte"') == []
    assert await q("name[pt]") == [one]
    assert await q('name[pt]~="(?i)^pon"') == [one]
    assert await q('name[en]!="Bridge"') == [two]

    assert await q('category=="Residential"') == []  # stored as an IRI
    assert await q('category=="https://uri.etsi.org/ngsi-ld/default-context/Residential"') == [one]
    assert await q('category=="Residential"', "&expandValues=category") == [one]
    assert await q("category==Industrial,Commercial", "&expandValues=category") == [one, two]
    assert await q('category!="Industrial"', "&expandValues=category") == [one]
    assert await q('category=="Residential";name[pt]=="Ponte"', "&expandValues=name,category") == [one]
    # only the listed attributes: name's strings stay literal
    assert await q('name=="Ponte"', "&expandValues=category") == [one, two]

    resp = await client.post(POST_URL, headers=JSON_CT, data=orjson.dumps(
        {"type": "Query", "entities": [{"type": "Bridge"}], "q": 'category=="Commercial"',
         "expandValues": ["category"]}))
    assert resp.status == 200 and [e["id"] for e in await resp.json()] == [one]
    resp = await client.post(f"{POST_URL}?expandValues=category", headers=JSON_CT, data=orjson.dumps(
        {"type": "Query", "entities": [{"type": "Bridge"}], "q": 'category=="Industrial"'}))
    assert resp.status == 200 and [e["id"] for e in await resp.json()] == [two]

    # a term of a user @context expands to its IRI, in the store and in the query
    ctx = {"@context": [{"Hospital": "https://example.org/ontology#Hospital"}, CORE]}
    resp = await client.post(URL, headers={"Content-Type": "application/ld+json"}, data=orjson.dumps(
        {"id": "urn:ngsi-ld:Bridge:3", "type": "Bridge",
         "category": {"type": "VocabProperty", "vocab": "Hospital"}, **ctx}))
    assert resp.status == 201, await resp.text()
    assert await q('category=="https://example.org/ontology#Hospital"') == ["urn:ngsi-ld:Bridge:3"]
    assert await q('category=="Hospital"', "&expandValues=category") == []  # another term under the core context
    resp = await client.post(POST_URL, headers={"Content-Type": "application/ld+json"}, data=orjson.dumps(
        {"type": "Query", "entities": [{"type": "Bridge"}], "q": 'category=="Hospital"',
         "expandValues": ["category"], **ctx}))
    assert resp.status == 200 and [e["id"] for e in await resp.json()] == ["urn:ngsi-ld:Bridge:3"]

    # past the size where the embedded store answers an equality term from its value index
    batch = [{"id": f"urn:ngsi-ld:Street:{n}", "type": "Street",
              "category": {"type": "VocabProperty", "vocab": "Residential" if n % 3 else "Commercial"},
              "name": {"type": "LanguageProperty", "languageMap": {"pt": f"Rua {n % 2}"}}} for n in range(90)]
    resp = await client.post("/ngsi-ld/v1/entityOperations/create", data=orjson.dumps(batch), headers=JSON_CT)
    assert resp.status == 201, await resp.text()
    for _ in range(2):  # the first query builds the index, the second uses it
        got = await ids(client, f"type=Street&limit=100&q={quote('category==Commercial')}&expandValues=category")
        assert got == sorted(f"urn:ngsi-ld:Street:{n}" for n in range(0, 90, 3))
        rua_1 = quote('name[pt]=="Rua 1"')
        got = await ids(client, f"type=Street&limit=100&q={rua_1}")
        assert got == sorted(f"urn:ngsi-ld:Street:{n}" for n in range(1, 90, 2))

    await problem(await client.get(f"{URL}?type=Bridge&q=category&expandValues="), 400, "BadRequestData")
    await problem(await client.get(f"{URL}?type=Bridge&q=category&expandValues=a%20b"), 400, "BadRequestData")


async def test_purge(client: TestClient) -> None:
    await seed(client)
    events: list[ChangeEvent] = []

    async def listen(batch: list[ChangeEvent]) -> None:
        events.extend(batch)

    client.server.app[BUS].subscribe(listen)
    await problem(await client.delete(URL), 400, "BadRequestData")
    for query in ("attrs=temperature", "limit=3", "invalidParams=invalidValue"):
        # not parameters of DELETE /entities (clause 6.4.3.3): InvalidRequest (ETSI 059_01_08)
        await problem(await client.delete(f"{URL}?{query}"), 400, "InvalidRequest")
    await problem(await client.delete(f"{URL}?type=Room&q=temperature%3D%3D"), 400, "BadRequestData")
    assert events == [] and len(await ids(client, "local=true")) == 5

    resp = await client.delete(f"{URL}?type=Room&q=temperature>20")
    assert resp.status == 204
    assert sorted(e.entity_id for e in events) == ["urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert all(e.kind == "delete" and e.before is not None for e in events)
    assert await ids(client, "type=Room") == ["urn:ngsi-ld:Building:A", "urn:ngsi-ld:Room:000"]
    resp = await client.delete(f"{URL}?type=Room&q=temperature>20")
    assert resp.status == 204  # nothing left to delete: still done
    resp = await client.delete(f"{URL}?id=urn:ngsi-ld:Sensor:1")
    assert resp.status == 204
    resp = await client.delete(f"{URL}?idPattern=urn:ngsi-ld:Room:.*")
    assert resp.status == 204
    assert await ids(client, "local=true") == ["urn:ngsi-ld:Building:A"]
    assert len(events) == 4


async def test_purge_attributes_with_drop_and_keep(client: TestClient) -> None:
    await seed(client)
    await problem(await client.delete(f"{URL}?type=Room&drop=temperature&keep=location"), 400, "BadRequestData")
    await problem(await client.delete(f"{URL}?type=Room&drop=id"), 400, "BadRequestData")
    resp = await client.delete(f"{URL}?type=Room&q=temperature>20&drop=temperature")
    assert resp.status == 204
    assert await ids(client, "type=Room") == ["urn:ngsi-ld:Building:A", "urn:ngsi-ld:Room:000",
                                              "urn:ngsi-ld:Room:001", "urn:ngsi-ld:Room:002"]
    assert await ids(client, "type=Room&attrs=temperature") == ["urn:ngsi-ld:Room:000"]
    resp = await client.delete(f"{URL}?type=Building&keep=height")
    assert resp.status == 204
    resp = await client.get(f"{URL}/urn:ngsi-ld:Building:A?options=keyValues")
    assert await resp.json() == {"id": "urn:ngsi-ld:Building:A", "type": ["Building", "Room"], "height": 30}

