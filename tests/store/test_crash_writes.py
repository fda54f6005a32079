"""Writes across a crash: the real broker process SIGKILLed while creates, PATCHes and batch upserts
are in flight. After the restart every acknowledged write is there, and no entity is half written
(each one holds all the attributes of one write, acknowledged or not)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.services import (
    broker_store_args,
    drop_broker_store,
    free_port,
    start_broker,
    stop_broker,
    wait_port,
)

CTYPE = {"Content-Type": "application/json"}
ATTRS = ("a", "b", "c", "d")  # every write sets all four to the same number


def _entity(eid: str, n: int) -> dict[str, Any]:
    return {"id": eid, "type": "CrashTest", **{a: {"type": "Property", "value": n} for a in ATTRS}}


class Acked:
    """What the broker acknowledged before it was killed: entity id -> the least value it must hold."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def __call__(self, eid: str, n: int) -> None:
        self.values[eid] = max(n, self.values.get(eid, n))


async def _creates(s: aiohttp.ClientSession, base: str, k: int, acked: Acked) -> None:
    for i in range(100_000):
        eid = f"urn:ngsi-ld:CrashTest:c{k}-{i}"
        async with s.post(f"{base}/entities", json=_entity(eid, i), headers=CTYPE) as r:
            if r.status == 201:
                acked(eid, i)


async def _patches(s: aiohttp.ClientSession, base: str, k: int, acked: Acked) -> None:
    eid = f"urn:ngsi-ld:CrashTest:p{k}"
    async with s.post(f"{base}/entities", json=_entity(eid, 0), headers=CTYPE) as r:
        assert r.status == 201
    acked(eid, 0)
    for i in range(1, 1_000_000):
        body = {a: {"type": "Property", "value": i} for a in ATTRS}
        async with s.patch(f"{base}/entities/{eid}/attrs", json=body, headers=CTYPE) as r:
            if r.status == 204:
                acked(eid, i)


async def _upserts(s: aiohttp.ClientSession, base: str, k: int, acked: Acked) -> None:
    for i in range(100_000):
        batch = [_entity(f"urn:ngsi-ld:CrashTest:u{k}-{m}", i) for m in range(25)]
        async with s.post(f"{base}/entityOperations/upsert", json=batch, headers=CTYPE) as r:
            if r.status in (201, 204):
                for e in batch:
                    acked(e["id"], i)


async def _load(base: str, acked: Acked, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as s:
        tasks = [asyncio.create_task(f(s, base, k, acked))
                 for f in (_creates, _patches, _upserts) for k in range(3)]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _all(base: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as s:
        while True:
            url = f"{base}/entities?type=CrashTest&limit=1000&offset={len(out)}&options=keyValues"
            async with s.get(url) as r:
                assert r.status == 200, await r.text()
                page = await r.json()
            out += page
            if len(page) < 1000:
                return out


@pytest.mark.parametrize("backend", ["sqlite", "mongo"])
async def test_acknowledged_writes_survive_sigkill_and_none_is_half_written(
        backend: str, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store_args = broker_store_args(backend, services.mongodb_url, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
    acked = Acked()
    proc = start_broker(port, store_args)
    try:
        await asyncio.to_thread(wait_port, port, proc, "broker", 30)
        stop = asyncio.Event()
        load = asyncio.create_task(_load(base, acked, stop))
        for _ in range(200):  # until each kind of write has been acknowledged a few times
            await asyncio.sleep(0.05)
            kinds = {eid.rsplit(":", 1)[1][0] for eid, n in acked.values.items() if n >= 3}
            if kinds == {"c", "p", "u"}:
                break
        proc.send_signal(signal.SIGKILL)  # requests are in flight: the load never waits
        proc.communicate(timeout=20)
        stop.set()
        await load
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert {eid.rsplit(":", 1)[1][0] for eid in acked.values} == {"c", "p", "u"}, "the load did not get going"

    proc = start_broker(port, store_args)
    try:
        await asyncio.to_thread(wait_port, port, proc, "broker", 60)
        stored = {e["id"]: e for e in await _all(base)}
        for entity in stored.values():  # acknowledged or not: one write's attributes, all of them
            assert all(a in entity for a in ATTRS), entity
            assert {entity[a] for a in ATTRS} == {entity["a"]}, entity
        missing = [eid for eid in acked.values if eid not in stored]
        assert not missing, f"{len(missing)} acknowledged entities lost, e.g. {missing[:3]}"
        older = {eid: (stored[eid]["a"], n) for eid, n in acked.values.items() if stored[eid]["a"] < n}
        assert not older, f"acknowledged values rolled back: {list(older.items())[:3]}"
    finally:
        stop_broker(proc, timeout=30)
    await drop_broker_store(store_args)
