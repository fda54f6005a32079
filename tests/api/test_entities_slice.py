"""The first vertical slice through HTTP: create, retrieve and delete, on both stores."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LINK = f'<{CORE}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ERR = "https://uri.etsi.org/ngsi-ld/errors/"

ROOM = {
    "id": "urn:ngsi-ld:Room:1",
    "type": "Room",
    "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL",
                    "observedAt": "2024-05-01T10:00:00Z",
                    "accuracy": {"type": "Property", "value": 0.5}},
    "isIn": {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-8.61, 41.15]}},
}


async def create(client: TestClient, body: dict, **headers: str) -> int:
    h = {"Content-Type": "application/json", **headers}
    resp = await client.post("/ngsi-ld/v1/entities", data=orjson.dumps(body), headers=h)
    return resp.status


async def problem(resp, status: int, type_name: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = await resp.json(content_type=None)
    assert body["type"] == ERR + type_name
    assert body["status"] == status
    return body


async def test_create_retrieve_delete(client: TestClient) -> None:
    resp = await client.post("/ngsi-ld/v1/entities", data=orjson.dumps(ROOM),
                             headers={"Content-Type": "application/json", "Link": LINK})
    assert resp.status == 201
    assert resp.headers["Location"] == "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"

    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers={"Link": LINK})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert CORE in resp.headers["Link"]
    body = await resp.json()
    expected = dict(ROOM)
    expected["temperature"] = {**ROOM["temperature"], "observedAt": "2024-05-01T10:00:00.000Z"}
    assert body == expected

    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=keyValues")
    assert await resp.json() == {"id": "urn:ngsi-ld:Room:1", "type": "Room", "temperature": 21.5,
                                 "isIn": "urn:ngsi-ld:Building:A",
                                 "location": {"type": "Point", "coordinates": [-8.61, 41.15]}}

    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?options=sysAttrs",
                            headers={"Accept": "application/ld+json"})
    body = await resp.json(content_type=None)
    assert resp.headers["Content-Type"].startswith("application/ld+json")
    assert body["@context"] == CORE
    assert body["createdAt"].endswith("Z") and body["temperature"]["modifiedAt"].endswith("Z")

    resp = await client.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    assert resp.status == 204
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    await problem(resp, 404, "ResourceNotFound")
    resp = await client.delete("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    await problem(resp, 404, "ResourceNotFound")


async def test_user_context_expands_and_compacts(client: TestClient) -> None:
    body = {**ROOM, "@context": [{"temperature": "https://example.org/temp", "Room": "https://example.org/Room"},
                                 CORE]}
    resp = await client.post("/ngsi-ld/v1/entities", data=orjson.dumps(body),
                             headers={"Content-Type": "application/ld+json"})
    assert resp.status == 201
    # Without the user context, the IRIs come back in full.
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    got = await resp.json()
    assert got["type"] == "https://example.org/Room"
    assert "https://example.org/temp" in got


async def test_bad_input_changes_nothing(client: TestClient) -> None:
    url = "/ngsi-ld/v1/entities"
    resp = await client.post(url, data=b"{not json", headers={"Content-Type": "application/json"})
    await problem(resp, 400, "InvalidRequest")
    resp = await client.post(url, data=orjson.dumps(ROOM), headers={"Content-Type": "text/plain"})
    await problem(resp, 415, "UnsupportedMediaType")
    resp = await client.post(url, data=orjson.dumps({**ROOM, "id": "not a uri"}),
                             headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    resp = await client.post(url, data=orjson.dumps({"id": "urn:x:1"}), headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    bad_attr = {**ROOM, "temperature": {"type": "Property"}}
    resp = await client.post(url, data=orjson.dumps(bad_attr), headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    bad_geo = {**ROOM, "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [500, 1]}}}
    resp = await client.post(url, data=orjson.dumps(bad_geo), headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    with_ctx = {**ROOM, "@context": CORE}
    resp = await client.post(url, data=orjson.dumps(with_ctx), headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    huge = {**ROOM, "blob": {"type": "Property", "value": "x" * (3 * 1024 * 1024)}}
    resp = await client.post(url, data=orjson.dumps(huge), headers={"Content-Type": "application/json"})
    await problem(resp, 413, "PayloadTooLarge")
    # nothing of the above was stored
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    await problem(resp, 404, "ResourceNotFound")


async def test_duplicate_and_accept(client: TestClient) -> None:
    assert await create(client, ROOM) == 201
    resp = await client.post("/ngsi-ld/v1/entities", data=orjson.dumps({**ROOM, "extra": 1}),
                             headers={"Content-Type": "application/json"})
    await problem(resp, 409, "AlreadyExists")
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    assert "extra" not in await resp.json()
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers={"Accept": "text/html"})
    await problem(resp, 406, "NotAcceptable")
    resp = await client.get("/ngsi-ld/v1/entities/not-a-uri")
    await problem(resp, 400, "BadRequestData")


async def test_tenants(client: TestClient) -> None:
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers={"NGSILD-Tenant": "porto"})
    await problem(resp, 404, "NonexistentTenant")
    assert await create(client, ROOM, **{"NGSILD-Tenant": "porto"}) == 201
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers={"NGSILD-Tenant": "porto"})
    assert resp.status == 200
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1")
    await problem(resp, 404, "ResourceNotFound")
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers={"NGSILD-Tenant": "bad tenant!"})
    await problem(resp, 400, "BadRequestData")


async def test_system_endpoints(client: TestClient) -> None:
    assert (await client.get("/health")).status == 200
    resp = await client.get("/ready")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"
    resp = await client.get("/version")
    body = await resp.json()
    assert body["name"] == "ngsild-broker" and body["store"]["backend"] in ("sqlite", "mongodb")
    resp = await client.get("/ngsi-ld/v1/nothing-here")
    await problem(resp, 404, "ResourceNotFound")
