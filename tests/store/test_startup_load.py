"""Loading the embedded store at start-up: every tenant's entities back in query order, the cyclic
collector paused meanwhile, and a large load frozen out of its sight at once."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from broker import gctune
from broker.query.model import EntityQuery
from broker.store.sqlite import SqliteStore, _Tenant


def entity(n: int) -> dict:
    return {"id": f"urn:ngsi-ld:T:{n}", "type": ["urn:t:T"], "createdAt": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000Z",
            "attrs": {"urn:a:v": [{"type": "Property", "value": n, "createdAt": "x", "modifiedAt": "x"}]}}


async def fill(path: Path, per_tenant: int) -> None:
    store = SqliteStore(str(path))
    await store.start()
    for n in range(per_tenant):  # tenants interleaved on disk: rows of "" and "b" alternate
        await store.create_entity("", entity(n))
        await store.create_entity("b", entity(n + 1000))
    await store.close()


@pytest.mark.parametrize("threshold, frozen", [(50, True), (10_000, False)])
async def test_load_brings_back_every_tenant_and_freezes_only_a_large_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int, frozen: bool) -> None:
    path = tmp_path / "s.sqlite3"
    await fill(path, 60)
    monkeypatch.setattr(gctune, "FREEZE_LOADED", threshold)
    collecting: list[bool] = []
    add = _Tenant.add

    def recording_add(self: _Tenant, doc: dict) -> None:
        collecting.append(gc.isenabled())
        add(self, doc)

    monkeypatch.setattr(_Tenant, "add", recording_add)
    before = gc.get_freeze_count()
    store = SqliteStore(str(path))
    try:
        await store.start()
        assert len(collecting) == 120 and not any(collecting)  # the collector was off while loading
        assert gc.isenabled()  # and is on again
        assert (gc.get_freeze_count() > before + 120) is frozen  # 120 documents, each several objects
        for tenant, first in (("", 0), ("b", 1000)):
            ids = [e["id"] for e in (await store.query_entities(tenant, EntityQuery(limit=1000)))[0]]
            assert ids == [f"urn:ngsi-ld:T:{first + n}" for n in range(60)]  # query order is seq order here
            assert store._tenants[tenant].seq == 60
    finally:
        await store.close()
        gc.unfreeze()  # what this test froze goes back to the collector


async def test_a_disabled_collector_stays_disabled(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    await fill(path, 3)
    gc.disable()
    try:
        store = SqliteStore(str(path))
        await store.start()
        assert not gc.isenabled()
        await store.close()
    finally:
        gc.enable()
