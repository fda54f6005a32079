"""GeoJSON representation (Accept: application/geo+json) of query answers, on both stores."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient

from broker.entities.geojson import render_feature
from broker.entities.render import SIMPLIFIED, Renderer, RenderOptions
from broker.jsonld.termmap import TermMap

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
URL = "/ngsi-ld/v1/entities"
GEO = {"Accept": "application/geo+json"}
POINT = {"type": "Point", "coordinates": [13.3986, 52.5547]}
OTHER = {"type": "Point", "coordinates": [11.1111, 11.1111]}

BUILDING = {"id": "urn:ngsi-ld:Building:1", "type": "Building",
            "name": {"type": "Property", "value": "Eiffel Tower"},
            "location": {"type": "GeoProperty", "value": POINT},
            "observationSpace": {"type": "GeoProperty", "value": OTHER}}
VEHICLE = {"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle", "brandName": {"type": "Property", "value": "M"}}


async def seed(client: TestClient) -> None:
    for body in (BUILDING, VEHICLE):
        resp = await client.post(URL, data=orjson.dumps(body), headers={"Content-Type": "application/json"})
        assert resp.status == 201


async def test_feature_collection(client: TestClient) -> None:
    await seed(client)
    resp = await client.get(f"{URL}?type=Building,Vehicle", headers=GEO)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/geo+json")
    body = await resp.json(content_type=None)
    assert body == {
        "type": "FeatureCollection",
        "features": [
            {"id": "urn:ngsi-ld:Building:1", "type": "Feature", "geometry": POINT,
             "properties": {k: v for k, v in BUILDING.items() if k != "id"}},
            {"id": "urn:ngsi-ld:Vehicle:1", "type": "Feature", "geometry": None,
             "properties": {k: v for k, v in VEHICLE.items() if k != "id"}},
        ],
        "@context": CORE,
    }
    resp = await client.get(f"{URL}?type=Building&options=keyValues&geometryProperty=observationSpace",
                            headers=GEO)
    [feature] = (await resp.json(content_type=None))["features"]
    assert feature == {"id": "urn:ngsi-ld:Building:1", "type": "Feature", "geometry": OTHER,
                       "properties": {"type": "Building", "name": "Eiffel Tower", "location": POINT,
                                      "observationSpace": OTHER}}
    resp = await client.get(f"{URL}?type=Building&geometryProperty=nothingHere&attrs=name&count=true",
                            headers={"Accept": "application/geo+json, application/json;q=0.5"})
    body = await resp.json(content_type=None)
    assert resp.headers["NGSILD-Results-Count"] == "1"
    assert body["features"] == [{"id": "urn:ngsi-ld:Building:1", "type": "Feature", "geometry": None,
                                 "properties": {"type": "Building", "name": BUILDING["name"]}}]
    # the POST query answers the same way
    resp = await client.post("/ngsi-ld/v1/entityOperations/query",
                             data=orjson.dumps({"type": "Query", "entities": [{"type": "Building"}]}),
                             headers={"Content-Type": "application/json", **GEO})
    body = await resp.json(content_type=None)
    assert body["type"] == "FeatureCollection" and body["features"][0]["geometry"] == POINT
    resp = await client.get(f"{URL}?type=Nothing", headers=GEO)
    assert await resp.json(content_type=None) == {"type": "FeatureCollection", "features": [], "@context": CORE}
    resp = await client.get(f"{URL}?type=Building&geometryProperty=bad%20name", headers=GEO)
    assert resp.status == 400


async def test_render_feature_for_a_single_entity() -> None:
    tm = TermMap(b"k", None, {"name": {"@id": "https://example.org/name"}}, None)
    stored = {"id": "urn:x:1", "type": ["https://example.org/T"], "attrs": {
        "https://example.org/name": [{"type": "Property", "value": "n"}],
        "https://uri.etsi.org/ngsi-ld/location": [
            {"type": "GeoProperty", "value": OTHER, "datasetId": "urn:ds:1"},
            {"type": "GeoProperty", "value": POINT}]}}
    out = render_feature(stored, Renderer(tm, RenderOptions(format=SIMPLIFIED)),
                         "https://uri.etsi.org/ngsi-ld/location", ["ctx"])
    assert out["type"] == "Feature" and out["id"] == "urn:x:1" and out["@context"] == ["ctx"]
    assert out["geometry"] == POINT  # the default instance wins over datasetIds
    assert out["properties"]["name"] == "n" and "id" not in out["properties"]
