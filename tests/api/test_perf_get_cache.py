"""The cache of GET /entities/{id} answers (``api/entities.RenderedCache``) never answers stale or
foreign data: every write is seen at once, and tenants, contexts, options and media types never share
an entry. Runs on both stores."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from broker.api.entities import RenderedCache
from broker.api.keys import ENTITIES as ENTITIES_SVC
from broker.api.keys import RENDERED
from broker.store.base import DEFAULT_TENANT
from tests.entities.helpers import ENTITIES, V, create, get, send, url

EID = "urn:ngsi-ld:Room:c1"
ROOM = {"id": EID, "type": "Room", "temperature": {"type": "Property", "value": 20},
        "isIn": {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"}}


def _cache(client: TestClient) -> RenderedCache:
    return client.server.app[RENDERED]


async def _kv(client: TestClient, **headers: str) -> dict:
    return await get(client, EID, "?options=keyValues", **headers)


async def test_every_write_is_seen(client: TestClient) -> None:
    await create(client, ROOM)
    assert (await _kv(client))["temperature"] == 20
    assert await _kv(client) == await _kv(client)
    assert len(_cache(client)) == 1
    for value in (21, 22, 23):
        resp = await send(client, "PATCH", url(EID, "attrs", "temperature"), {"value": value})
        assert resp.status == 204
        assert (await _kv(client))["temperature"] == value
    resp = await send(client, "PATCH", url(EID, "attrs"), {"temperature": {"type": "Property", "value": 30}})
    assert resp.status == 204
    assert (await _kv(client))["temperature"] == 30
    resp = await send(client, "PUT", url(EID), {"type": "Room", "humidity": 5})
    assert resp.status == 204
    assert await _kv(client) == {"id": EID, "type": "Room", "humidity": 5}
    # delete and re-create at once (same millisecond, same _v): the change events drop the old answer
    for temperature in (1, 2, 3):
        assert (await client.delete(url(EID))).status == 204
        assert (await client.get(url(EID))).status == 404
        await create(client, {**ROOM, "temperature": temperature})
        assert (await _kv(client))["temperature"] == temperature
    resp = await send(client, "POST", "/ngsi-ld/v1/entityOperations/upsert",
                      [{**ROOM, "temperature": 99}])
    assert resp.status in (201, 204), await resp.text()
    assert (await _kv(client))["temperature"] == 99
    resp = await client.delete(ENTITIES + "?type=Room")
    assert resp.status == 204
    assert (await client.get(url(EID))).status == 404


async def test_variants_never_share_an_answer(client: TestClient) -> None:
    await create(client, ROOM)
    await create(client, {**ROOM, "temperature": {"type": "Property", "value": 7}}, **{"NGSILD-Tenant": "other"})
    resp = await client.post("/ngsi-ld/v1/jsonldContexts", json={"@context": {"temp": V + "temperature"}})
    assert resp.status == 201, await resp.text()
    ctx_url = "http://some.host" + resp.headers["Location"]
    for _ in range(2):
        normalized = await get(client, EID)
        assert normalized["temperature"] == {"type": "Property", "value": 20}
        assert await get(client, EID, "?options=keyValues") == {
            "id": EID, "type": "Room", "temperature": 20, "isIn": "urn:ngsi-ld:Building:A"}
        assert (await get(client, EID, "?options=concise"))["temperature"] == 20
        assert "createdAt" in await get(client, EID, "?options=sysAttrs")
        assert list(await get(client, EID, "?attrs=isIn")) == ["id", "type", "isIn"]
        assert (await get(client, EID, "?options=keyValues", **{"NGSILD-Tenant": "other"}))["temperature"] == 7
        ld = await get(client, EID, "?options=keyValues", Accept="application/ld+json")
        assert "@context" in ld
        resp = await client.get(url(EID), headers={"Accept": "application/json"})
        assert "Link" in resp.headers and "@context" not in await resp.json()
        geo = await get(client, EID, "", Accept="application/geo+json")
        assert geo["type"] == "Feature"
        # another @context: other terms, another answer
        link = f'<{ctx_url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        assert (await _kv(client, Link=link))["temp"] == 20
        assert (await _kv(client))["temperature"] == 20
    # errors are never cached, and a bad parameter still wins over a missing entity
    for _ in range(2):
        assert (await client.get(url(EID) + "?options=bogus")).status == 400
        assert (await client.get(url("urn:ngsi-ld:Room:none") + "?options=bogus")).status == 400
        assert (await client.get(url("urn:ngsi-ld:Room:none"))).status == 404
        assert (await client.get(url(EID) + "?attrs=nothere")).status == 404


def test_cache_bounds_and_stamps() -> None:
    cache = RenderedCache(max_bytes=10_000, max_variants=2)
    e = {"id": "urn:x:1", "_v": 1, "createdAt": "c", "modifiedAt": "m"}
    tm = object()
    cache.put("t", e, (tm, "", "a"), (b"x" * 100, "application/json", None))  # type: ignore[arg-type]
    assert cache.get("t", e, (tm, "", "a")) is not None  # type: ignore[arg-type]
    assert cache.get("u", e, (tm, "", "a")) is None  # type: ignore[arg-type]
    assert cache.get("t", {**e, "_v": 2}, (tm, "", "a")) is None  # type: ignore[arg-type]
    assert cache.get("t", e, (tm, "", "a")) is None and cache.size == 0  # type: ignore[arg-type]
    assert cache.get("t", e, (object(), "", "a")) is None  # type: ignore[arg-type]
    for i in range(200):
        cache.put("t", {**e, "id": f"urn:x:{i}"}, (tm, "", "a"), (b"x" * 100, "j", None))  # type: ignore[arg-type]
    assert cache.size <= 10_000 and len(cache) < 200
    assert cache.get("t", {**e, "id": "urn:x:199"}, (tm, "", "a")) is not None  # type: ignore[arg-type]
    for q in ("a", "b", "c"):
        cache.put("t", e, (tm, q, "a"), (b"y", "j", None))  # type: ignore[arg-type]
    assert cache.get("t", e, (tm, "c", "a")) is not None  # type: ignore[arg-type]
    assert sum(s[2] for s in cache._slots.values()) == cache.size


async def test_same_stamp_recreate_is_not_served_stale(client: TestClient) -> None:
    """A delete and re-create within one millisecond gives the same (_v, createdAt, modifiedAt):
    only the change events tell the cache, so this writes through the service with fixed clocks."""
    service = client.server.app[ENTITIES_SVC]
    now = "2024-01-01T00:00:00.000Z"

    def stored(value: int) -> dict:
        inst = {"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}
        return {"id": EID, "type": [V + "Room"], "createdAt": now, "modifiedAt": now,
                "attrs": {V + "temperature": [inst]}}

    await service.create(DEFAULT_TENANT, stored(1))
    assert (await _kv(client))["temperature"] == 1
    for value in (2, 3):
        await service.remove(DEFAULT_TENANT, EID)
        await service.create(DEFAULT_TENANT, stored(value))
        assert (await _kv(client))["temperature"] == value


async def test_render_cache_mb_sizes_the_cache_and_zero_turns_it_off() -> None:
    from aiohttp.test_utils import TestClient as Client

    from broker.app import create_app
    from tests.conftest import BrokerTestServer
    from tests.conftest import test_settings as broker_settings

    assert create_app(broker_settings())[RENDERED].max_bytes == 256 << 20
    async with Client(BrokerTestServer(create_app(broker_settings(render_cache_mb=0)))) as off:
        await create(off, ROOM)
        assert (await _kv(off))["temperature"] == 20
        assert (await _kv(off))["temperature"] == 20  # answered twice, kept never
        assert len(_cache(off)) == 0 and _cache(off).size == 0
