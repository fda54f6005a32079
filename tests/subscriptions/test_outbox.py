"""The outbox on the embedded store's group commit: one transaction for a turn's writers, every
writer told of the outcome, a cancelled writer not cancelling the others."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from broker.services.outbox import OUTBOX, Outbox
from broker.store.sqlite import SqliteStore


async def _store(path: Path) -> SqliteStore:
    store = SqliteStore(str(path))
    await store.start()
    return store


async def test_writers_of_one_turn_share_a_commit_and_are_durable(tmp_path: Path) -> None:
    store = await _store(tmp_path / "s.sqlite3")
    outbox = Outbox(store)
    commits: list[str] = []
    store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    added = await asyncio.gather(*(outbox.add("", [{"n": i}, {"n": i + 100}]) for i in range(5)))
    assert [[item["n"] for _, item in refs] for refs in added] == [[i, i + 100] for i in range(5)]
    assert outbox.pending_documents == 5
    assert len(commits) == 1  # five writers, one commit
    await store.close()
    reopened = await _store(tmp_path / "s.sqlite3")  # committed before add() returned
    try:
        docs = await reopened.list_docs("", OUTBOX)
        assert sorted(d["items"][0]["n"] for d in docs) == list(range(5))
    finally:
        await reopened.close()


async def test_a_failed_group_commit_fails_every_writer(tmp_path: Path) -> None:
    store = await _store(tmp_path / "s.sqlite3")
    outbox = Outbox(store)
    try:
        store.db.execute("ALTER TABLE docs RENAME TO docs_away")  # every outbox write now fails
        results = await asyncio.gather(*(outbox.add("", [{"n": i}]) for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        assert outbox.pending_documents == 0  # nothing is queued for delivery that is not stored
        store.db.execute("ALTER TABLE docs_away RENAME TO docs")
        await outbox.add("", [{"n": 9}])  # the next group works again
        assert [d["items"] for d in await store.list_docs("", OUTBOX)] == [[{"n": 9}]]
    finally:
        await store.close()


async def test_a_cancelled_writer_does_not_cancel_the_group(tmp_path: Path) -> None:
    store = await _store(tmp_path / "s.sqlite3")
    outbox = Outbox(store)
    try:
        tasks = [asyncio.create_task(outbox.add("", [{"n": i}])) for i in range(3)]
        await asyncio.sleep(0)  # all three joined the group
        tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        assert [len(await t) for t in tasks[1:]] == [1, 1]
        assert len(await store.list_docs("", OUTBOX)) == 3  # the cancelled writer's document is written too
    finally:
        await store.close()
