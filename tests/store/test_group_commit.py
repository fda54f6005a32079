"""The embedded store commits the writes of one event-loop turn together (group commit), and a write
returns only once it is committed: another connection sees it at once, and a crash cannot lose it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from broker.errors import AlreadyExists
from broker.store.sqlite import SqliteStore

T0 = "2024-01-01T00:00:00.000Z"


def _entity(n: int) -> dict:
    return {"id": f"urn:ngsi-ld:T:{n}", "type": ["https://example.org/T"], "createdAt": T0, "modifiedAt": T0,
            "attrs": {}}


def _committed_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as other:  # a second connection sees committed rows only
        return {r[0] for r in other.execute("SELECT id FROM entities")}


async def test_concurrent_writes_share_a_commit_and_are_durable_on_return(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    store = SqliteStore(str(path))
    await store.start()
    commits: list[str] = []
    store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    try:
        await asyncio.gather(*(store.create_entity("", _entity(n)) for n in range(20)))
        assert _committed_ids(path) == {f"urn:ngsi-ld:T:{n}" for n in range(20)}
        assert 1 <= len(commits) < 20  # 20 writers, far fewer commits

        # a lone write is committed before it returns, too
        commits.clear()
        await store.put_doc("", "c", "k", {"a": 1})
        assert commits == ["COMMIT"]
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT count(*) FROM docs WHERE key='k'").fetchone() == (1,)

        # a refused write (duplicate) fails alone; the others of its turn are still committed
        results = await asyncio.gather(store.create_entity("", _entity(0)), store.create_entity("", _entity(99)),
                                       return_exceptions=True)
        assert isinstance(results[0], AlreadyExists) and results[1] is None
        assert "urn:ngsi-ld:T:99" in _committed_ids(path)
    finally:
        await store.close()


async def test_batch_and_lone_writes_interleave(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    store = SqliteStore(str(path))
    await store.start()
    try:
        gate = asyncio.Event()

        async def batch() -> None:
            async with store.batch():
                await store.create_entity("", _entity(1))
                await gate.wait()  # a lone write of another task happens meanwhile
                await store.create_entity("", _entity(2))

        task = asyncio.create_task(batch())
        await asyncio.sleep(0)
        await store.create_entity("", _entity(3))
        # the lone write did not wait for the batch: it (and what the batch wrote so far) is committed
        assert {"urn:ngsi-ld:T:1", "urn:ngsi-ld:T:3"} <= _committed_ids(path)
        gate.set()
        await task
        assert _committed_ids(path) == {f"urn:ngsi-ld:T:{n}" for n in (1, 2, 3)}
    finally:
        await store.close()
    reopened = SqliteStore(str(path))
    await reopened.start()
    try:
        assert {e["id"] async for e in reopened.scan_entities("")} == {f"urn:ngsi-ld:T:{n}" for n in (1, 2, 3)}
    finally:
        await reopened.close()


@pytest.mark.parametrize("n", [1, 50])
async def test_writes_survive_close_and_reopen(tmp_path: Path, n: int) -> None:
    path = tmp_path / "c.sqlite3"
    store = SqliteStore(str(path))
    await store.start()
    await asyncio.gather(*(store.create_entity("", _entity(i)) for i in range(n)))
    await store.close()
    assert len(_committed_ids(path)) == n


async def test_checkpoints_run_off_the_event_loop_and_keep_the_wal_small(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The writing connection never checkpoints (that fsync paid milliseconds on the loop); a worker
    thread copies the WAL into the database file every CHECKPOINT_SECONDS, so the WAL is reused."""
    from broker.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SECONDS", 0.05)
    path = tmp_path / "w.sqlite3"
    store = SqliteStore(str(path))
    await store.start()
    try:
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        sizes = []
        for rnd in range(4):
            await asyncio.gather(*(store.create_entity("", _entity(rnd * 1000 + i)) for i in range(200)))
            for _ in range(100):
                await asyncio.sleep(0.02)
                if store._commits == 0 and store._ckpt_running is not None and store._ckpt_running.done():
                    break
            busy, frames, copied = store._ckpt_running.result()  # type: ignore[union-attr]
            assert busy == 0 and frames == copied > 0  # every frame of the WAL is in the database file
            sizes.append((path.parent / (path.name + "-wal")).stat().st_size)
        assert max(sizes) == sizes[0]  # the WAL is reused from the start, not grown round after round
        # what the checkpoints copied is in the database file itself: read it without the WAL
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as other:
            assert other.execute("SELECT count(*) FROM entities").fetchone()[0] == 800
    finally:
        await store.close()
    assert len(_committed_ids(path)) == 800


async def test_under_steady_writes_the_wal_still_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes that never pause keep every worker pass from reaching the WAL's end, and SQLite restarts
    the WAL only after a pass that does. Past WAL_CATCH_UP a second worker pass, then the writing
    connection, copy what is left: the WAL file is reused instead of growing with every write. The
    worker flushes the database file after each pass (an unfinished pass leaves it unsynced, and the
    finishing pass on the loop would flush everything at once)."""
    import os
    import threading

    from broker.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SECONDS", 0.02)
    monkeypatch.setattr(sqlite_store, "WAL_CATCH_UP", 256 << 10)
    flushes: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        flushes.append(threading.get_ident())
        real_fdatasync(fd)

    monkeypatch.setattr(sqlite_store.os, "fdatasync", fdatasync)
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(str(path))
    await store.start()
    loop_passes: list[str] = []
    store.db.set_trace_callback(lambda sql: loop_passes.append(sql) if "wal_checkpoint" in sql else None)
    written = 0
    try:
        n = 0
        while written < 40 * sqlite_store.WAL_CATCH_UP:  # 10 MiB through a 256 KiB threshold
            e = _entity(n)
            e["attrs"] = {"https://example.org/blob": [{"type": "Property", "value": "x" * 2000}]}
            await store.create_entity("", e)
            written += 2100
            n += 1
        wal = (path.parent / (path.name + "-wal")).stat().st_size
        assert loop_passes, "the writing connection never finished a checkpoint"
        # each write adds table and index pages to the WAL: ~70 MiB in all, were it never restarted
        assert wal < 32 * sqlite_store.WAL_CATCH_UP, wal
        assert flushes and threading.get_ident() not in flushes  # flushed, and never on the loop
    finally:
        await store.close()
    assert len(_committed_ids(path)) == n
