"""Requests exactly as third-party NGSI-LD clients send them (ngsi-go, ngsildclient), on both stores.

docs/clients.md says which client sends what; each test names the client and the command.
"""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient

URL = "/ngsi-ld/v1/entities"
LEGACY_CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CORE_18 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LINK_18 = f'<{CORE_18}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
LD = {"Content-Type": "application/ld+json"}


async def _sensors(client: TestClient, n: int) -> None:
    body = [{"id": f"urn:ngsi-ld:TemperatureSensor:{i:03d}", "type": "TemperatureSensor",
             "temperature": {"type": "Property", "value": 20 + i}} for i in range(n)]
    resp = await client.post("/ngsi-ld/v1/entityOperations/create", data=orjson.dumps(body),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()


async def test_ngsi_go_list_entities_sends_options_count(client: TestClient) -> None:
    """`ngsi list entities --type T` pages with ``options=count&limit=100&offset=N`` (Orion-LD accepts it)."""
    await _sensors(client, 3)
    resp = await client.get(f"{URL}?type=TemperatureSensor&options=count&limit=100&offset=0",
                            headers={"Link": LINK_18})
    assert resp.status == 200, await resp.text()
    assert resp.headers["NGSILD-Results-Count"] == "3"
    assert len(await resp.json()) == 3
    # `--keyValues -q ...` adds to the same options value
    resp = await client.get(f"{URL}?type=TemperatureSensor&options=keyValues,count&limit=100&offset=0"
                            "&q=temperature>20")
    assert resp.status == 200, await resp.text()
    assert resp.headers["NGSILD-Results-Count"] == "2"
    assert all(isinstance(e["temperature"], int) for e in await resp.json())
    # like count=true, it allows limit=0
    resp = await client.get(f"{URL}?type=TemperatureSensor&options=count&limit=0")
    assert resp.status == 200 and resp.headers["NGSILD-Results-Count"] == "3"
    assert await resp.json() == []
    # POST /entityOperations/query takes it too
    resp = await client.post("/ngsi-ld/v1/entityOperations/query?options=count&limit=1",
                             data=orjson.dumps({"type": "Query", "entities": [{"type": "TemperatureSensor"}]}),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200 and resp.headers["NGSILD-Results-Count"] == "3"
    # other undefined options values stay InvalidRequest (ETSI 018_16)
    resp = await client.get(f"{URL}?type=TemperatureSensor&options=count,invalid")
    assert resp.status == 400
    assert (await resp.json())["type"].endswith("/InvalidRequest")


async def test_ngsi_go_geo_query_sends_coords(client: TestClient) -> None:
    """`ngsi list entities --georel ... --geometry Point --coords [..]` names the coordinates ``coords``
    (NGSIv2's parameter), which Orion-LD also takes on NGSI-LD queries."""
    body = [{"id": f"urn:ngsi-ld:Building:{n}", "type": "Building",
             "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": lonlat}}}
            for n, lonlat in (("near", [13.3903, 52.5075]), ("far", [13.3986, 52.5547]))]
    resp = await client.post("/ngsi-ld/v1/entityOperations/create", data=orjson.dumps(body),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    query = ("type=Building&georel=near%3BmaxDistance%3D%3D2000&geometry=Point"
             "&coords=%5B13.3777%2C52.5162%5D&options=count&limit=100&offset=0")
    resp = await client.get(f"{URL}?{query}")
    assert resp.status == 200, await resp.text()
    assert [e["id"] for e in await resp.json()] == ["urn:ngsi-ld:Building:near"]
    # coordinates wins when both are there; coords alone is still validated
    resp = await client.get(f"{URL}?{query}&coordinates=%5B13.3986%2C52.5547%5D")
    assert [e["id"] for e in await resp.json()] == ["urn:ngsi-ld:Building:far"]
    resp = await client.get(f"{URL}?type=Building&georel=near%3BmaxDistance%3D%3D2000&geometry=Point&coords=oops")
    assert resp.status == 400


async def test_ngsi_go_version_at_orion_ld_path(client: TestClient) -> None:
    """`ngsi version --host <ld broker>` calls Orion-LD's ``/ngsi-ld/ex/v1/version``."""
    resp = await client.get("/ngsi-ld/ex/v1/version")
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "ngsild-broker" and "version" in body


async def test_ngsildclient_entity_with_unversioned_core_context(client: TestClient) -> None:
    """ngsildclient's Entity builder puts the unversioned (v1.0) core URL in ``@context``; its
    ``name`` / ``description`` must come back as plain terms and be queryable without a Link."""
    entity = {
        "id": "urn:ngsi-ld:Building:farm001", "type": "Building", "@context": [LEGACY_CORE],
        "name": {"type": "Property", "value": "Victory Farm"},
        "description": {"type": "Property", "value": "A farm"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [13.39, 52.5]}},
    }
    resp = await client.post(f"{URL}/", data=orjson.dumps(entity), headers=LD)
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"{URL}/urn:ngsi-ld:Building:farm001", headers={"Accept": "application/ld+json"})
    got = await resp.json()
    assert got["name"]["value"] == "Victory Farm" and got["description"]["value"] == "A farm"
    assert "ngsi-ld:name" not in got
    # the same entity through the Link header of the default core, and a query on name
    resp = await client.get(f'{URL}?type=Building&q=name=="Victory Farm"', headers={"Link": LINK_18})
    assert [e["id"] for e in await resp.json()] == ["urn:ngsi-ld:Building:farm001"]
    resp = await client.get(f'{URL}?type=Building&q=name=="Victory Farm"')
    assert len(await resp.json()) == 1
    # asking with the v1.0 URL as Link compacts the same way
    link = f'<{LEGACY_CORE}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    resp = await client.get(f"{URL}/urn:ngsi-ld:Building:farm001?options=keyValues", headers={"Link": link})
    got = await resp.json()
    assert got["name"] == "Victory Farm" and got["description"] == "A farm"


async def test_ngsildclient_trailing_slash_paths(client: TestClient) -> None:
    """ngsildclient posts to ``/entities/``, ``/entityOperations/<op>/`` and ``/subscriptions/``."""
    resp = await client.post(f"{URL}/", data=orjson.dumps(
        {"id": "urn:ngsi-ld:Room:1", "type": "Room", "@context": [LEGACY_CORE]}), headers=LD)
    assert resp.status == 201, await resp.text()
    resp = await client.post("/ngsi-ld/v1/entityOperations/upsert/", data=orjson.dumps(
        [{"id": "urn:ngsi-ld:Room:2", "type": "Room", "@context": [LEGACY_CORE]}]), headers=LD)
    assert resp.status in (201, 204), await resp.text()
    resp = await client.post("/ngsi-ld/v1/subscriptions/", data=orjson.dumps(
        {"type": "Subscription", "entities": [{"type": "Room"}], "@context": LEGACY_CORE,
         "notification": {"format": "normalized",
                          "endpoint": {"uri": "http://localhost:9/notify", "accept": "application/ld+json"}}}),
        headers=LD)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"].startswith("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:")
