"""Same-entity fragments of a grouped write are merged with the result of writing them in order; every
measure is still counted and acknowledged, and the entity gets one change event per write."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from agents.coalesce import coalesce
from broker.services.entities import UpdateResult, append_mutation
from tests.agents.conftest import APIKEY, SERVICE, Stack, eventually
from tests.agents.test_southbound import mqtt_client

A, B, C = "https://x/a", "https://x/b", "https://x/c"
T = "https://uri.etsi.org/ngsi-ld/default-context/Thing"


def inst(value: Any, at: str, ds: str | None = None) -> dict[str, Any]:
    out = {"type": "Property", "value": value, "observedAt": at, "createdAt": at, "modifiedAt": at}
    if ds:
        out["datasetId"] = ds
    return out


def frag(eid: str, at: str, types: list[str] | None = None, **attrs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": eid, "type": types or [T], "createdAt": at, "modifiedAt": at, "attrs": attrs}


def applied(stored: dict[str, Any], frags: list[dict[str, Any]], now: str) -> dict[str, Any]:
    entity = copy.deepcopy(stored)
    for f in frags:
        append_mutation(f, False, UpdateResult(), {})(entity, now)
    return entity


def test_merge_equals_writes_in_order() -> None:
    stored = {"id": "urn:e:1", "type": [T], "attrs": {C: [inst(0, "2026-01-01T00:00:00.000Z")],
                                                      A: [inst(0, "2026-01-01T00:00:00.000Z", "urn:ds:1")]}}
    frags = [
        frag("urn:e:1", "t1", **{A: [inst(1, "t1")], B: [inst(10, "t1")]}),
        frag("urn:e:2", "t1", **{A: [inst(5, "t1")]}),
        frag("urn:e:1", "t2", types=[T, "https://x/Other"], **{A: [inst(2, "t2"), inst(3, "t2", "urn:ds:2")]}),
        frag("urn:e:1", "t3", **{A: [inst(4, "t3", "urn:ds:1")], C: [inst(7, "t3")]}),
    ]
    merged = coalesce(copy.deepcopy(frags))
    assert [f["id"] for f in merged] == ["urn:e:1", "urn:e:2"]
    ones = [f for f in frags if f["id"] == "urn:e:1"]
    [one] = [f for f in merged if f["id"] == "urn:e:1"]
    assert applied(stored, [one], "now") == applied(stored, ones, "now")
    # a new entity: created from the merged fragment, its instances keep the first createdAt
    assert one["attrs"][A][0]["value"] == 2 and one["attrs"][A][0]["createdAt"] == "t1"
    assert one["modifiedAt"] == "t3" and one["type"] == [T, "https://x/Other"]
    # the inputs are not modified
    assert frags[0]["attrs"][A] == [inst(1, "t1")]


def test_fragments_with_other_members_stay_apart_and_in_order() -> None:
    odd = {**frag("urn:e:1", "t2", **{A: [inst(2, "t2")]}), "scope": ["/x"]}
    frags = [frag("urn:e:1", "t1", **{A: [inst(1, "t1")]}), odd, frag("urn:e:1", "t3", **{A: [inst(3, "t3")]})]
    assert [f.get("scope") for f in coalesce(frags)] == [None, ["/x"], None]
    assert coalesce(frags[:1]) == frags[:1]


async def test_measures_held_in_one_write_are_merged_and_all_counted(lite: Stack) -> None:
    agents = lite.runtime.agents
    await lite.provision_group("/iot/json")
    worker = agents.ingestor._task  # noqa: SLF001 - hold the writer so the measures share one write
    assert worker is not None
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    before = agents.metrics.accepted["mqtt"]
    async with mqtt_client(lite) as c:
        await c.publish(f"/json/{APIKEY}/co1/attrs", b'{"a": 1, "b": 1}', qos=1)
        await c.publish(f"/json/{APIKEY}/co1/attrs", b'{"a": 2, "TimeInstant": "2026-01-01T10:00:00Z"}', qos=1)
        await c.publish(f"/json/{APIKEY}/co1/attrs", b'{"c": 3}', qos=1)

    async def queued() -> bool:
        return agents.ingestor.queue.qsize() == 3

    await eventually(queued, "three measures queued")
    lite.events.clear()
    await agents.ingestor.start()

    async def written() -> bool:
        return agents.metrics.accepted["mqtt"] == before + 3

    await eventually(written, "all three measures counted")
    _, entity = await lite.entity("urn:ngsi-ld:Thing:co1", SERVICE)
    assert entity["a"]["value"] == 2 and entity["a"]["observedAt"] == "2026-01-01T10:00:00.000Z"
    assert entity["b"]["value"] == 1 and entity["b"]["observedAt"] != entity["a"]["observedAt"]
    assert entity["c"]["value"] == 3
    events = [e for e in lite.events if e.entity_id == "urn:ngsi-ld:Thing:co1"]
    assert len(events) == 1  # one write, one event (as BatchService folds a batch)
