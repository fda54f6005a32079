"""GET /entities/{id}: linked entity retrieval (join) and the GeoJSON Feature, on both stores."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient

JSON = {"Content-Type": "application/json"}
BUILDING = {"id": "urn:ngsi-ld:Building:A", "type": "Building",
            "name": {"type": "Property", "value": "Casa da Música"}}
ROOM = {"id": "urn:ngsi-ld:Room:1", "type": "Room",
        "temperature": {"type": "Property", "value": 21},
        "isIn": {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-8.63, 41.16]}}}


async def _seed(client: TestClient) -> None:
    for e in (BUILDING, ROOM):
        r = await client.post("/ngsi-ld/v1/entities", data=orjson.dumps(e), headers=JSON)
        assert r.status == 201, await r.text()


async def test_join_inline_and_flat(client: TestClient) -> None:
    await _seed(client)
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?join=inline")
    assert r.status == 200
    body = await r.json()
    assert body["isIn"]["entity"]["id"] == "urn:ngsi-ld:Building:A"
    assert body["isIn"]["entity"]["name"]["value"] == "Casa da Música"
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?join=flat")
    flat = await r.json()
    assert isinstance(flat, list) and {e["id"] for e in flat} == {"urn:ngsi-ld:Room:1", "urn:ngsi-ld:Building:A"}
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?join=sideways")
    assert r.status == 400


async def test_geojson_feature(client: TestClient) -> None:
    await _seed(client)
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1", headers={"Accept": "application/geo+json"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/geo+json")
    body = await r.json(content_type=None)
    assert body["type"] == "Feature" and body["id"] == "urn:ngsi-ld:Room:1"
    assert body["geometry"] == {"type": "Point", "coordinates": [-8.63, 41.16]}
    assert body["properties"]["temperature"]["value"] == 21
    assert "@context" in body
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1?attrs=nothing")
    assert r.status == 404


async def test_dataset_id_filter_still_applies(client: TestClient) -> None:
    e = {"id": "urn:ngsi-ld:Room:2", "type": "Room",
         "t": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:ds:b"}]}
    r = await client.post("/ngsi-ld/v1/entities", data=orjson.dumps(e), headers=JSON)
    assert r.status == 201
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2?datasetId=urn:ds:b")
    body = await r.json()
    assert body["t"]["value"] == 2 and body["t"]["datasetId"] == "urn:ds:b"
