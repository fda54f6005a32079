"""The durable notification outbox: pending notifications live in the store until delivered.

The change listener writes the notifications of one published change-event list as a few
documents (at most ``CHUNK`` notifications each) before the write path answers, so a process
killed after a 2xx still has them. Delivery marks each one done; a document is deleted (by a
background flusher, off the delivery path) when all its notifications are done. At start-up every
document left over is delivered again: at-least-once, and receivers drop duplicates by the
notification ``id``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..periodic import stop
from ..store.base import Store

log = logging.getLogger(__name__)

OUTBOX = "outbox"
CHUNK = 200
_PROCESS = uuid.uuid4().hex[:8]
_COUNTER = itertools.count()


@dataclass(slots=True, frozen=True)
class Ref:
    """Where one pending notification is kept: tenant, outbox document key, position in it."""

    tenant: str
    key: str
    index: int


class Outbox:
    def __init__(self, store: Store, flush_interval: float = 0.05) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self._remaining: dict[tuple[str, str], int] = {}
        self._finished: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._flusher(), name="outbox-flusher")

    async def close(self) -> None:
        await stop(self._task)
        self._task = None
        await self._flush()

    async def add(self, tenant: str, items: list[dict[str, Any]]) -> list[tuple[Ref, dict[str, Any]]]:
        """Persist ``items`` (one store write per CHUNK); returns each with its reference."""
        out: list[tuple[Ref, dict[str, Any]]] = []
        docs: list[tuple[str, str, dict[str, Any]]] = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            key = f"{time.time_ns():020d}-{_PROCESS}{next(_COUNTER):08x}"  # oldest first; unique across processes
            docs.append((tenant, key, {"key": key, "items": chunk}))
            out.extend((Ref(tenant, key, i), item) for i, item in enumerate(chunk))
        # The embedded store commits the writes of one event-loop turn together (group commit), so the
        # outbox documents of concurrent write paths share one transaction; each waits for it here.
        for _, key, doc in docs:
            await self.store.put_doc(tenant, OUTBOX, key, doc)
        for _, key, doc in docs:
            self._remaining[(tenant, key)] = len(doc["items"])
        return out

    def done(self, ref: Ref) -> None:
        """One notification is finished (delivered, or failed for good); free its document when empty."""
        k = (ref.tenant, ref.key)
        left = self._remaining.get(k)
        if left is None:
            return
        if left <= 1:
            del self._remaining[k]
            self._finished.append(k)
            self._wake.set()
        else:
            self._remaining[k] = left - 1

    async def load(self, ref: Ref) -> dict[str, Any] | None:
        doc = await self.store.get_doc(ref.tenant, OUTBOX, ref.key)
        if doc is None:
            return None
        items = doc.get("items", [])
        return items[ref.index] if ref.index < len(items) else None

    async def recover(self, tenants: list[str]) -> list[tuple[Ref, dict[str, Any]]]:
        """Everything a previous run left undelivered, oldest first."""
        out: list[tuple[Ref, dict[str, Any]]] = []
        for tenant in tenants:
            for doc_key, doc in await self._list(tenant):
                items = doc.get("items", [])
                if not items:
                    self._finished.append((tenant, doc_key))
                    continue
                self._remaining[(tenant, doc_key)] = len(items)
                out.extend((Ref(tenant, doc_key, i), item) for i, item in enumerate(items))
        out.sort(key=lambda r: r[0].key)
        self._wake.set()
        return out

    async def _list(self, tenant: str) -> list[tuple[str, dict[str, Any]]]:
        docs = await self.store.list_docs(tenant, OUTBOX)
        return [(d["key"], d) for d in docs if "key" in d]

    @property
    def pending_documents(self) -> int:
        return len(self._remaining)

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except Exception:  # noqa: BLE001 - retried on the next wake-up
                log.exception("outbox cleanup failed")
            await asyncio.sleep(self.flush_interval)

    async def _flush(self) -> None:
        """Delete the finished documents: one statement per tenant and pass, not one per document."""
        finished, self._finished = self._finished, []
        by_tenant: dict[str, list[str]] = {}
        for tenant, key in finished:
            by_tenant.setdefault(tenant, []).append(key)
        pending = list(by_tenant.items())
        async with self.store.batch():
            for n, (tenant, keys) in enumerate(pending):
                try:
                    await self.store.delete_docs(tenant, OUTBOX, keys)
                except Exception:  # this tenant's and the rest: tried again on the next pass
                    self._finished.extend((t, k) for t, ks in pending[n:] for k in ks)
                    raise
