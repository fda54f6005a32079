"""Batch operations over HTTP and in-process, with their 201/204/207 answers, per-entry errors and
one published event list per batch, on both stores."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from broker.api.batch import YIELD_EVERY
from broker.api.keys import BATCH, RESOLVER
from broker.entities.expand import Expander
from broker.timeutil import now_iso
from tests.entities.helpers import CORE, Recorder, create, get, names, problem, send, url

OPS = "/ngsi-ld/v1/entityOperations"
NULL = "urn:ngsi-ld:null"


def room(n: int, **attrs: object) -> dict:
    return {"id": f"urn:ngsi-ld:Room:{n}", "type": "Room", **attrs}


async def test_create(client: TestClient) -> None:
    rec = Recorder(client)
    resp = await send(client, "POST", f"{OPS}/create", [room(1, t=1), room(2, t=2)])
    assert resp.status == 201, await resp.text()
    assert await resp.json() == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    assert len(rec.calls) == 1 and [e.kind for e in rec.calls[0]] == ["create", "create"]
    rec.take()
    body = [room(2, t=5), room(3, t=3), {"id": "bad id", "type": "Room"}, {"type": "Room"}, "junk",
            room(4, t={"type": "Property"}), room(3, t=9)]
    resp = await send(client, "POST", f"{OPS}/create/", body)
    assert resp.status == 207
    result = await resp.json()
    assert result["success"] == ["urn:ngsi-ld:Room:3"]
    errors = {(e["entityId"], e["error"]["type"].rsplit("/", 1)[1]) for e in result["errors"]}
    assert errors == {("urn:ngsi-ld:Room:2", "AlreadyExists"), ("bad id", "BadRequestData"),
                      ("", "BadRequestData"), ("urn:ngsi-ld:Room:4", "BadRequestData"),
                      ("urn:ngsi-ld:Room:3", "AlreadyExists")}
    assert all(e["error"]["status"] in (400, 409) and e["error"]["detail"] for e in result["errors"])
    assert (await get(client, "urn:ngsi-ld:Room:2", "?options=keyValues"))["t"] == 2
    assert (await get(client, "urn:ngsi-ld:Room:3", "?options=keyValues"))["t"] == 3
    await problem(await client.get(url("urn:ngsi-ld:Room:4")), 404, "ResourceNotFound")
    [call] = rec.calls
    assert [e.entity_id for e in call] == ["urn:ngsi-ld:Room:3"]


async def test_upsert_replace_and_update(client: TestClient) -> None:
    await create(client, room(1, a=1, b=2))
    rec = Recorder(client)
    resp = await send(client, "POST", f"{OPS}/upsert", [room(1, a=10), room(2, a=20)])
    assert resp.status == 201
    assert await resp.json() == ["urn:ngsi-ld:Room:2"]
    assert await get(client, "urn:ngsi-ld:Room:1", "?options=keyValues") == room(1, a=10)  # replaced
    [call] = rec.calls
    assert {e.entity_id: e.kind for e in call} == {"urn:ngsi-ld:Room:1": "update", "urn:ngsi-ld:Room:2": "create"}
    assert names(call[0].deleted) == {"b"} and names(call[0].updated) == {"a"}
    rec.take()
    # options=update merges; trailing slash as iotagent-node-lib sends it; all existed -> 204
    resp = await send(client, "POST", f"{OPS}/upsert/?options=update", [room(1, c=3), room(2, a=21)])
    assert resp.status == 204, await resp.text()
    assert await get(client, "urn:ngsi-ld:Room:1", "?options=keyValues") == room(1, a=10, c=3)
    assert await get(client, "urn:ngsi-ld:Room:2", "?options=keyValues") == room(2, a=21)
    [call] = rec.calls
    assert names(call[0].created) == {"c"} and not call[0].deleted
    await problem(await send(client, "POST", f"{OPS}/upsert?options=update,replace", [room(1)]),
                  400, "BadRequestData")
    await problem(await send(client, "POST", f"{OPS}/upsert?options=noOverwrite", [room(1)]),
                  400, "BadRequestData")


async def test_upsert_same_id_applied_in_order_one_event(client: TestClient) -> None:
    rec = Recorder(client)
    body = [room(5, t=1), room(5, h=2), room(5, t=3)]
    resp = await send(client, "POST", f"{OPS}/upsert?options=update", body)
    assert resp.status == 201
    assert await resp.json() == ["urn:ngsi-ld:Room:5"]
    assert await get(client, "urn:ngsi-ld:Room:5", "?options=keyValues") == room(5, t=3, h=2)
    [[event]] = rec.calls
    assert event.kind == "create" and names(event.created) == {"t", "h"}
    rec.take()
    resp = await send(client, "POST", f"{OPS}/upsert?options=update", [room(5, t=4), room(5, t=5, x=1)])
    assert resp.status == 204
    assert await get(client, "urn:ngsi-ld:Room:5", "?options=keyValues") == room(5, t=5, h=2, x=1)
    [[event]] = rec.calls
    assert names(event.updated) == {"t"} and names(event.created) == {"x"}


async def test_update(client: TestClient) -> None:
    await create(client, room(1, a=1, b=2))
    rec = Recorder(client)
    resp = await send(client, "POST", f"{OPS}/update", [room(1, a=5, c=7)])
    assert resp.status == 204
    assert await get(client, "urn:ngsi-ld:Room:1", "?options=keyValues") == room(1, a=5, b=2, c=7)
    # noOverwrite: new attributes are appended, but an entity with a kept attribute is an error (ETSI 005_02)
    resp = await send(client, "POST", f"{OPS}/update?options=noOverwrite", [room(1, a=99, d=4)])
    assert resp.status == 207
    result = await resp.json()
    assert result["success"] == []
    [err] = result["errors"]
    assert err["entityId"] == "urn:ngsi-ld:Room:1" and err["error"]["type"].endswith("/BadRequestData")
    assert "default-context/a" in err["error"]["detail"]
    assert await get(client, "urn:ngsi-ld:Room:1", "?options=keyValues") == room(1, a=5, b=2, c=7, d=4)
    resp = await send(client, "POST", f"{OPS}/update?options=noOverwrite", [room(1, e=1)])
    assert resp.status == 204
    resp = await send(client, "POST", f"{OPS}/update/", [room(1, a=6), room(404, a=1), {"a": 1}])
    assert resp.status == 207
    result = await resp.json()
    assert result["success"] == ["urn:ngsi-ld:Room:1"]
    assert [(e["entityId"], e["error"]["status"]) for e in result["errors"]] == \
        [("", 400), ("urn:ngsi-ld:Room:404", 404)]
    assert len(rec.calls) == 4 and all(len(c) == 1 for c in rec.calls)


async def test_merge(client: TestClient) -> None:
    await create(client, room(1, a={"value": 1, "q": 0.5}, b=2))
    await create(client, room(2, a=1))
    rec = Recorder(client)
    body = [room(1, a={"value": 2}, b=NULL), room(2, z=9)]
    resp = await send(client, "POST", f"{OPS}/merge", body)
    assert resp.status == 204, await resp.text()
    got = await get(client, "urn:ngsi-ld:Room:1")
    assert got == {"id": "urn:ngsi-ld:Room:1", "type": "Room",
                   "a": {"type": "Property", "value": 2, "q": {"type": "Property", "value": 0.5}}}
    assert (await get(client, "urn:ngsi-ld:Room:2", "?options=keyValues"))["z"] == 9
    [call] = rec.calls
    assert [e.entity_id for e in call] == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    assert names(call[0].deleted) == {"b"} and names(call[0].updated) == {"a"}
    assert names(call[1].created) == {"z"}
    rec.take()
    resp = await send(client, "POST", f"{OPS}/merge/", [room(404, a=1), room(2, brandNew={"observedAt": "x"})])
    assert resp.status == 207
    result = await resp.json()
    assert result["success"] == []
    assert {e["entityId"]: e["error"]["status"] for e in result["errors"]} == \
        {"urn:ngsi-ld:Room:404": 404, "urn:ngsi-ld:Room:2": 400}
    assert rec.calls == []


async def test_delete(client: TestClient) -> None:
    await create(client, room(1))
    await create(client, room(2))
    rec = Recorder(client)
    resp = await send(client, "POST", f"{OPS}/delete", ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"])
    assert resp.status == 204
    [call] = rec.calls
    assert [e.kind for e in call] == ["delete", "delete"]
    await create(client, room(3))
    resp = await send(client, "POST", f"{OPS}/delete/", ["urn:ngsi-ld:Room:3", "urn:ngsi-ld:Room:1", 5, "no id"])
    assert resp.status == 207
    result = await resp.json()
    assert result["success"] == ["urn:ngsi-ld:Room:3"]
    assert [(e["entityId"], e["error"]["status"]) for e in result["errors"]] == \
        [("", 400), ("no id", 400), ("urn:ngsi-ld:Room:1", 404)]


async def test_request_level_errors_change_nothing(client: TestClient) -> None:
    rec = Recorder(client)
    for op in ("create", "upsert", "update", "merge", "delete"):
        await problem(await send(client, "POST", f"{OPS}/{op}", room(1)), 400, "BadRequestData")
        await problem(await send(client, "POST", f"{OPS}/{op}", []), 400, "BadRequestData")
        await problem(await send(client, "POST", f"{OPS}/{op}", [room(1)], "text/plain"), 415,
                      "UnsupportedMediaType")
        resp = await client.post(f"{OPS}/{op}", data=b"[{", headers={"Content-Type": "application/json"})
        await problem(resp, 400, "InvalidRequest")
    too_many = [room(i) for i in range(1001)]
    await problem(await send(client, "POST", f"{OPS}/create", too_many), 400, "BadRequestData")
    await problem(await send(client, "POST", f"{OPS}/upsert", too_many), 400, "BadRequestData")
    await problem(await client.get(url("urn:ngsi-ld:Room:1")), 404, "ResourceNotFound")
    assert rec.events == []


async def test_json_ld_contexts_per_entity(client: TestClient) -> None:
    ctx_a = [{"t": "https://a.example/temp"}, CORE]
    ctx_b = [{"t": "https://b.example/temp"}, CORE]
    body = [{**room(1, t=1), "@context": ctx_a}, {**room(2, t=2), "@context": ctx_b},
            {**room(3, t=3), "@context": ctx_a}, room(4, t=4)]
    resp = await send(client, "POST", f"{OPS}/create", body, "application/ld+json")
    assert resp.status == 207
    result = await resp.json()
    assert result["success"] == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2", "urn:ngsi-ld:Room:3"]
    assert [e["entityId"] for e in result["errors"]] == ["urn:ngsi-ld:Room:4"]
    assert (await get(client, "urn:ngsi-ld:Room:1"))["https://a.example/temp"]["value"] == 1
    assert (await get(client, "urn:ngsi-ld:Room:2"))["https://b.example/temp"]["value"] == 2
    # application/json: the Link header applies, an inline @context is an entry error
    resp = await send(client, "POST", f"{OPS}/upsert", [room(5, t=5), {**room(6), "@context": CORE}])
    assert resp.status == 207
    assert [e["entityId"] for e in (await resp.json())["errors"]] == ["urn:ngsi-ld:Room:6"]


async def test_in_process_upsert_entities(client: TestClient) -> None:
    app = client.server.app
    rec = Recorder(client)
    tm = await app[RESOLVER].resolve(None)
    ex = Expander(tm, now_iso())
    service = app[BATCH]
    first = [ex.entity(room(1, t=1, u=1)), ex.entity(room(2, t=2))]
    result = await service.upsert_entities("porto", first, source="iota")
    assert result.success == result.created == ["urn:ngsi-ld:Room:1", "urn:ngsi-ld:Room:2"]
    assert result.errors == []
    result = await service.upsert_entities("porto", [ex.entity(room(1, t=5))], mode="update", source="iota")
    assert result.created == [] and result.success == ["urn:ngsi-ld:Room:1"]
    got = await get(client, "urn:ngsi-ld:Room:1", "?options=keyValues", **{"NGSILD-Tenant": "porto"})
    assert got == room(1, t=5, u=1)
    result = await service.upsert_entities("porto", [ex.entity(room(1, t=6))])
    got = await get(client, "urn:ngsi-ld:Room:1", "?options=keyValues", **{"NGSILD-Tenant": "porto"})
    assert got == room(1, t=6)
    assert [len(c) for c in rec.calls] == [2, 1, 1]
    assert {e.source for e in rec.events} == {"iota", "api"}


async def test_large_batch_lets_other_requests_run_while_it_is_expanded(client: TestClient) -> None:
    """Expansion yields to the event loop every YIELD_EVERY entries (nothing is written before it
    ends), so a request arriving meanwhile is answered before the batch is."""
    entities = [room(5000 + n, temperature={"type": "Property", "value": n, "observedAt": "2024-01-01T00:00:00Z"},
                     **{f"a{k}": {"type": "Property", "value": k} for k in range(30)})
                for n in range(1000)]
    assert len(entities) > 5 * YIELD_EVERY
    order: list[str] = []

    async def batch() -> None:
        resp = await send(client, "POST", "/ngsi-ld/v1/entityOperations/create", entities)
        assert resp.status == 201, await resp.text()
        order.append("batch")

    async def probe() -> None:
        await asyncio.sleep(0.02)  # the batch is being expanded by now (1000 entities take ~0.2 s)
        resp = await client.get("/ngsi-ld/v1/types")
        assert resp.status == 200
        order.append("probe")

    await asyncio.gather(batch(), probe())
    assert order == ["probe", "batch"]
    assert (await get(client, "urn:ngsi-ld:Room:5999"))["a29"]["value"] == 29
