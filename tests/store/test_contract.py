"""One contract, two stores: every test here runs against SQLite and against FerretDB."""

from __future__ import annotations

import pytest

from broker.errors import AlreadyExists
from broker.query.model import EntityQuery
from broker.store.base import Store
from tests.conftest import close_store, open_store

V = "https://example.org/vocab/"


def entity(eid: str, typ: str = "Room", **attrs: object) -> dict:
    e = {"id": eid, "type": [V + typ], "createdAt": "2024-01-01T00:00:00.000Z",
         "modifiedAt": "2024-01-01T00:00:00.000Z", "attrs": {}}
    for name, value in attrs.items():
        e["attrs"][V + name] = [{"type": "Property", "value": value, "createdAt": e["createdAt"],
                                 "modifiedAt": e["createdAt"]}]
    return e


def strip(e: dict | None) -> dict | None:
    return None if e is None else {k: v for k, v in e.items() if k != "_v"}


async def test_create_get_delete(store: Store) -> None:
    e = entity("urn:ngsi-ld:Room:1", temperature=21.5)
    await store.create_entity("", e)
    got = await store.get_entity("", "urn:ngsi-ld:Room:1")
    assert strip(got) == strip(e)
    assert got["_v"] == 1
    with pytest.raises(AlreadyExists):
        await store.create_entity("", entity("urn:ngsi-ld:Room:1"))
    deleted = await store.delete_entity("", "urn:ngsi-ld:Room:1")
    assert strip(deleted) == strip(e)
    assert await store.get_entity("", "urn:ngsi-ld:Room:1") is None
    assert await store.delete_entity("", "urn:ngsi-ld:Room:1") is None


async def test_keys_ferretdb_rejects_roundtrip(store: Store) -> None:
    """IRIs full of dots, keys starting with $ or holding %, nested arrays and polygons survive."""
    e = entity("urn:ngsi-ld:Odd:1", odd={"a.b": 1, "$where": 2, "50%": {"x.y": [[1, 2], [3, [4, 5]]]},
                                         "": "empty key"})
    e["attrs"]["https://uri.etsi.org/ngsi-ld/location"] = [{
        "type": "GeoProperty", "createdAt": "x", "modifiedAt": "x",
        "value": {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}}]
    e["attrs"][V + "multi"] = [
        {"type": "Property", "value": 1, "createdAt": "x", "modifiedAt": "x"},
        {"type": "Property", "value": 2, "datasetId": "urn:ds:2", "createdAt": "x", "modifiedAt": "x"}]
    await store.create_entity("", e)
    assert strip(await store.get_entity("", e["id"])) == strip(e)


async def test_replace_is_optimistic(store: Store) -> None:
    e = entity("urn:ngsi-ld:Room:2", temperature=1)
    await store.create_entity("", e)
    current = await store.get_entity("", e["id"])
    v = current["_v"]
    newer = entity("urn:ngsi-ld:Room:2", temperature=2)
    assert await store.replace_entity("", newer, v) is True
    stale = entity("urn:ngsi-ld:Room:2", temperature=3)
    assert await store.replace_entity("", stale, v) is False
    got = await store.get_entity("", e["id"])
    assert got["attrs"][V + "temperature"][0]["value"] == 2
    assert got["_v"] == v + 1
    assert await store.replace_entity("", entity("urn:ngsi-ld:Room:missing"), 1) is False


async def test_get_entities_and_tenants(store: Store) -> None:
    for i in range(3):
        await store.create_entity("city", entity(f"urn:ngsi-ld:Room:{i}"))
    got = await store.get_entities("city", ["urn:ngsi-ld:Room:0", "urn:ngsi-ld:Room:2", "urn:nope"])
    assert sorted(got) == ["urn:ngsi-ld:Room:0", "urn:ngsi-ld:Room:2"]
    assert await store.tenant_exists("city")
    assert not await store.tenant_exists("elsewhere")
    assert await store.get_entity("", "urn:ngsi-ld:Room:0") is None  # tenants are separate
    await store.drop_tenant("city")
    assert not await store.tenant_exists("city")
    assert await store.get_entity("city", "urn:ngsi-ld:Room:0") is None


async def test_query_by_ids_in_stable_order(store: Store) -> None:
    for i in range(5):
        e = entity(f"urn:ngsi-ld:Room:{i}")
        e["createdAt"] = f"2024-01-01T00:00:0{i}.000Z"
        await store.create_entity("", e)
    q = EntityQuery(ids=["urn:ngsi-ld:Room:3", "urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:4"], limit=2, count=True)
    page, count = await store.query_entities("", q)
    assert count == 3
    assert [e["id"] for e in page] == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:3"]
    q.offset = 2
    page, _ = await store.query_entities("", q)
    assert [e["id"] for e in page] == ["urn:ngsi-ld:Room:4"]
    all_ids = [e["id"] async for e in store.scan_entities("")]
    assert all_ids == [f"urn:ngsi-ld:Room:{i}" for i in range(5)]


async def test_documents(store: Store) -> None:
    doc = {"id": "urn:sub:1", "q": "a.b>1", "nested": [[1, 2]], "$x": {"k.k": 1}}
    await store.insert_doc("t1", "subscriptions", "urn:sub:1", doc)
    with pytest.raises(AlreadyExists):
        await store.insert_doc("t1", "subscriptions", "urn:sub:1", doc)
    assert await store.get_doc("t1", "subscriptions", "urn:sub:1") == doc
    await store.put_doc("t1", "subscriptions", "urn:sub:0", {"id": "urn:sub:0"})
    assert [d["id"] for d in await store.list_docs("t1", "subscriptions")] == ["urn:sub:0", "urn:sub:1"]
    assert await store.delete_doc("t1", "subscriptions", "urn:sub:1") is True
    assert await store.delete_doc("t1", "subscriptions", "urn:sub:1") is False
    assert await store.get_doc("t1", "subscriptions", "urn:sub:1") is None
    assert await store.tenant_exists("t1")
    for key in ("o1", "o2", "o3"):
        await store.put_doc("t1", "outbox", key, {"key": key})
    assert await store.list_docs("t1", "outbox", prefix="o2") == [{"key": "o2"}]
    await store.delete_docs("t1", "outbox", ["o1", "o3", "missing"])
    assert await store.list_docs("t1", "outbox") == [{"key": "o2"}]
    assert await store.list_docs("t1", "outbox", prefix="o1") == []


async def test_counters_add(store: Store) -> None:
    """Increments add up; ``maximum`` keeps the largest value; the document is created on first use.
    (Done one after another: FerretDB 1.24 loses concurrent updates of one document, MongoDB does not.)"""
    for i in range(20):
        await store.add_to_doc("", "status", "s1", {"timesSent": 1, "timesFailed": i % 2},
                               {"lastSuccess": f"2026-01-01T00:00:{i:02d}.000Z"})
    await store.add_to_doc("", "status", "s1", {}, {"lastSuccess": "2025-01-01T00:00:00.000Z",
                                                     "lastFailure": "2026-02-01T00:00:00.000Z"})
    assert await store.get_doc("", "status", "s1") == {
        "timesSent": 20, "timesFailed": 10, "lastSuccess": "2026-01-01T00:00:19.000Z",
        "lastFailure": "2026-02-01T00:00:00.000Z"}


@pytest.mark.parametrize("kind", ["sqlite", "mongo"])
async def test_data_survives_reopen(kind: str, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s1 = await open_store(kind, services, tmp_path)
    prefix = getattr(s1, "prefix", None)
    await s1.create_entity("", entity("urn:ngsi-ld:Room:kept", temperature=7))
    await s1.put_doc("", "contexts", "k", {"v": 1})
    await s1.close()
    s2 = await open_store(kind, services, tmp_path, prefix=prefix)
    try:
        got = await s2.get_entity("", "urn:ngsi-ld:Room:kept")
        assert got is not None and got["attrs"][V + "temperature"][0]["value"] == 7
        assert await s2.get_doc("", "contexts", "k") == {"v": 1}
    finally:
        await close_store(s2)


async def test_batch_groups_writes_and_keeps_them(store: Store, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Writes inside batch() are visible at once and durable when it ends, also when other tasks
    write meanwhile; a failing write inside a batch does not undo the others."""
    import asyncio

    async def other_writer() -> None:
        await store.create_entity("", entity("urn:ngsi-ld:Room:other"))

    async with store.batch():
        await store.create_entity("", entity("urn:ngsi-ld:Room:b1"))
        assert await store.get_entity("", "urn:ngsi-ld:Room:b1") is not None
        await asyncio.gather(other_writer())
        with pytest.raises(AlreadyExists):
            await store.create_entity("", entity("urn:ngsi-ld:Room:b1"))
        await store.create_entity("", entity("urn:ngsi-ld:Room:b2"))
        async with store.batch():  # nested: joins the outer batch
            await store.put_doc("", "outbox", "n1", {"n": 1})
    kind = "sqlite" if store.backend == "sqlite" else "mongo"
    reopened = await open_store(kind, services, tmp_path, prefix=getattr(store, "prefix", None))
    try:
        for eid in ("urn:ngsi-ld:Room:b1", "urn:ngsi-ld:Room:b2", "urn:ngsi-ld:Room:other"):
            assert await reopened.get_entity("", eid) is not None, eid
        assert await reopened.get_doc("", "outbox", "n1") == {"n": 1}
    finally:
        await reopened.close()
