"""/types and /attributes on both stores: multi-typed entities, tenants, compaction, 404s."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
V1 = "/ngsi-ld/v1"
EX = "https://example.org/"
CTX = {"Building": EX + "Building", "Shop": EX + "Shop", "name": EX + "name", "floors": EX + "floors",
       "owner": EX + "owner"}
LD = {"Content-Type": "application/ld+json"}
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


async def create(client: TestClient, body: dict[str, Any], **headers: str) -> None:
    resp = await client.post(f"{V1}/entities", data=orjson.dumps({**body, "@context": [CTX, CORE]}),
                             headers={**LD, **headers})
    assert resp.status == 201, await resp.text()


async def seed(client: TestClient) -> None:
    await create(client, {"id": "urn:ngsi-ld:Building:1", "type": "Building",
                          "name": {"type": "Property", "value": "A"},
                          "floors": {"type": "Property", "value": 3}})
    await create(client, {"id": "urn:ngsi-ld:Building:2", "type": ["Building", "Shop"],
                          "name": [{"type": "Property", "value": "B"},
                                   {"type": "Property", "value": "b", "datasetId": "urn:ds:1"}],
                          "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}})
    await create(client, {"id": "urn:ngsi-ld:Shop:1", "type": "Shop",
                          "owner": {"type": "Property", "value": "me"}})


def link(ctx_url: str) -> dict[str, str]:
    return {"Link": f'<{ctx_url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'}


async def get(client: TestClient, path: str, **headers: str) -> Any:
    resp = await client.get(f"{V1}{path}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json(content_type=None)


async def test_types(client: TestClient) -> None:
    await seed(client)
    body = await get(client, "/types")
    assert body["type"] == "EntityTypeList" and body["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert body["typeList"] == [EX + "Building", EX + "Shop"]  # no user context: full IRIs
    details = await get(client, "/types?details=true")
    assert details == [
        {"id": EX + "Building", "type": "EntityType", "typeName": EX + "Building",
         "attributeNames": [EX + "floors", EX + "name", EX + "owner"]},
        {"id": EX + "Shop", "type": "EntityType", "typeName": EX + "Shop",
         "attributeNames": [EX + "name", EX + "owner"]},
    ]
    info = await get(client, "/types/https%3A%2F%2Fexample.org%2FShop")
    assert info == {"id": EX + "Shop", "type": "EntityTypeInfo", "typeName": EX + "Shop", "entityCount": 2,
                    "attributeDetails": [
                        {"id": EX + "name", "type": "Attribute", "attributeName": EX + "name",
                         "attributeTypes": ["Property"]},
                        {"id": EX + "owner", "type": "Attribute", "attributeName": EX + "owner",
                         "attributeTypes": ["Property", "Relationship"]}]}
    building = await get(client, "/types/https%3A%2F%2Fexample.org%2FBuilding")
    assert building["entityCount"] == 2
    resp = await client.get(f"{V1}/types/Building")  # the core context maps it elsewhere
    assert resp.status == 404
    assert (await resp.json(content_type=None))["type"] == ERR + "ResourceNotFound"
    resp = await client.get(f"{V1}/types?details=true", headers={"Accept": "application/ld+json"})
    assert all(t["@context"] == CORE for t in await resp.json(content_type=None))


async def test_attributes(client: TestClient) -> None:
    await seed(client)
    body = await get(client, "/attributes")
    assert body["type"] == "AttributeList" and body["id"].startswith("urn:ngsi-ld:AttributeList:")
    assert body["attributeList"] == [EX + "floors", EX + "name", EX + "owner"]
    details = await get(client, "/attributes?details=true")
    assert [a["id"] for a in details] == [EX + "floors", EX + "name", EX + "owner"]
    name = details[1]
    # the details list carries no attributeCount / attributeTypes (ETSI 026_01); /attributes/{id} does
    assert name == {"id": EX + "name", "type": "Attribute", "attributeName": EX + "name",
                    "typeNames": [EX + "Building", EX + "Shop"]}
    owner = await get(client, "/attributes/https%3A%2F%2Fexample.org%2Fowner")
    assert owner["attributeCount"] == 2 and owner["attributeTypes"] == ["Property", "Relationship"]
    assert owner["typeNames"] == [EX + "Building", EX + "Shop"]
    resp = await client.get(f"{V1}/attributes/owner")  # owner is not in the core context
    assert resp.status == 404
    assert (await resp.json(content_type=None))["type"] == ERR + "ResourceNotFound"


async def test_compaction_with_the_request_context(client: TestClient) -> None:
    """Names come back compacted with the @context of the request (served by the broker itself)."""
    await seed(client)
    resp = await client.post(f"{V1}/entities", data=orjson.dumps(
        {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "colour": {"type": "Property", "value": "red"}}),
        headers={"Content-Type": "application/json"})
    assert resp.status == 201
    body = await get(client, "/types")
    assert body["typeList"] == ["Thing", EX + "Building", EX + "Shop"]
    attrs = await get(client, "/attributes")
    assert "colour" in attrs["attributeList"]
    info = await get(client, "/types/Thing")
    assert info["id"] == DEFAULT_VOCAB + "Thing" and info["typeName"] == "Thing"
    assert info["attributeDetails"] == [{"id": DEFAULT_VOCAB + "colour", "type": "Attribute",
                                         "attributeName": "colour", "attributeTypes": ["Property"]}]


async def test_tenants_and_errors(client: TestClient) -> None:
    await seed(client)
    await create(client, {"id": "urn:ngsi-ld:Shop:9", "type": "Shop", "floors": {"type": "Property", "value": 1}},
                 **{"NGSILD-Tenant": "porto"})
    porto = {"NGSILD-Tenant": "porto"}
    assert (await get(client, "/types", **porto))["typeList"] == [EX + "Shop"]
    assert (await get(client, "/attributes", **porto))["attributeList"] == [EX + "floors"]
    shop = await get(client, "/types/https%3A%2F%2Fexample.org%2FShop", **porto)
    assert shop["entityCount"] == 1
    for path in ("/types", "/types?details=true", "/types/Shop", "/attributes", "/attributes/name"):
        resp = await client.get(f"{V1}{path}", headers={"NGSILD-Tenant": "nowhere"})
        assert resp.status == 404, path
        assert (await resp.json(content_type=None))["type"] == ERR + "NonexistentTenant"
    resp = await client.get(f"{V1}/types", headers={"Accept": "text/html"})
    assert resp.status == 406
    resp = await client.get(f"{V1}/types?details=maybe")
    assert resp.status == 400
    resp = await client.get(f"{V1}/attributes/bad%20name")
    assert resp.status == 400
    # an empty tenant (the default one, before any write) answers empty lists
    await client.delete(f"{V1}/entities?local=true")
    assert (await get(client, "/types"))["typeList"] == []
    assert await get(client, "/attributes?details=true") == []
