"""Grouped writes with backpressure: many measures, few store writes, nothing accepted is lost.

Transports ``enqueue`` already-mapped entities and get a future that resolves once the write that carried
them finished. One worker takes what is queued, waits ``window`` seconds for more (longer, up to
``max_wait``, while a transport reports a backlog of received messages; at most ``max_entities``), and
issues one write per (tenant, servicepath) in arrival order, so a device's measures stay ordered (with
``coalesce``, an entity's fragments are first merged into their in-order result). The queue is bounded: when it is full ``enqueue`` waits, which stalls the MQTT consumer (and
with it Mosquitto, through MQTT v5 flow control) and HTTP requests, instead of dropping anything.
An HTTP request is answered and an MQTT message acknowledged only after its future resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.errors import InvalidMeasure, IotaError, Overloaded, WriteFailed
from agents.metrics import AgentMetrics
from agents.writer import Writer

log = logging.getLogger("agents.ingest")

WRITE_ATTEMPTS = 3


@dataclass(slots=True)
class _Item:
    tenant: str
    servicepath: str
    entities: list[dict[str, Any]]
    measures: int
    transport: str
    future: asyncio.Future[None]


class Ingestor:
    def __init__(self, writer: Writer, metrics: AgentMetrics, *, window: float = 0.002, max_entities: int = 5000,
                 max_wait: float = 0.25, queue_size: int = 20000,
                 coalesce: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None) -> None:
        self.writer = writer
        self.coalesce = coalesce
        self.upstream: list[Callable[[], int]] = []  # transports' received-but-not-yet-queued counts
        self.backlog = 200
        self.metrics = metrics
        self.window = window
        self.max_wait = max_wait
        self.max_entities = max_entities
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        metrics.queue_depth = self.queue.qsize

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="iota-ingest")

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop; the rest fails."""
        if self._task is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.queue.empty() and not self._task.done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Overloaded())

    async def enqueue(self, tenant: str, servicepath: str, entities: list[dict[str, Any]], measures: int,
                      transport: str) -> asyncio.Future[None]:
        """Queue entities for writing (waits while the queue is full); the future resolves when written."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not entities:
            future.set_result(None)
            return future
        await self.queue.put(_Item(tenant, servicepath, entities, measures, transport, future))
        return future

    async def submit(self, tenant: str, servicepath: str, entities: list[dict[str, Any]], measures: int,
                     transport: str) -> None:
        """Enqueue and wait for the write (HTTP answers only after this)."""
        await await_future(await self.enqueue(tenant, servicepath, entities, measures, transport))

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            count = len(first.entities)
            count = self._drain(batch, count)
            # Wait ``window`` for more. While a transport holds a backlog of received messages (waiting
            # for those costs no latency) keep collecting, up to ``max_entities`` / ``max_wait``:
            # the repeated measures of an entity then share one store write.
            deadline = time.perf_counter() + self.max_wait
            stalled = False  # behind, but the last turn brought nothing: do not spin
            while count < self.max_entities and self.window > 0:
                await asyncio.sleep(self.window if stalled or not self._behind() else 0)
                before, count = count, self._drain(batch, count)
                if count == before and not self._behind():
                    break
                stalled = count == before
                if time.perf_counter() >= deadline:
                    break
            try:
                await self._flush(batch)
            except Exception as exc:  # noqa: BLE001 - keep the worker alive whatever happens
                log.exception("agent write failed")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(WriteFailed(repr(exc)))

    def _behind(self) -> bool:
        """A transport holds a backlog: more received messages than it handles in one turn (a few
        arriving every loop iteration under steady load is not one, and must not stretch the batch)."""
        return any(pending() > self.backlog for pending in self.upstream)

    def _drain(self, batch: list[_Item], count: int) -> int:
        while count < self.max_entities:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            batch.append(item)
            count += len(item.entities)
        return count

    async def _flush(self, batch: list[_Item]) -> None:
        groups: dict[tuple[str, str], list[_Item]] = {}
        for item in batch:
            groups.setdefault((item.tenant, item.servicepath), []).append(item)
        for (tenant, servicepath), items in groups.items():
            entities = [e for item in items for e in item.entities]
            if self.coalesce is not None:
                entities = self.coalesce(entities)
            started = time.perf_counter()
            error: IotaError | None = None
            outcome = None
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    outcome = await self.writer.write(tenant, servicepath, entities)
                    error = None
                    break
                except WriteFailed as exc:
                    error = exc
                    if exc.status < 500:
                        break
                except Exception as exc:  # noqa: BLE001 - a store error: retry, then report
                    error = WriteFailed(repr(exc))
                if attempt + 1 < WRITE_ATTEMPTS:
                    await asyncio.sleep(0.05 * 2**attempt)
            self.metrics.observe_write(time.perf_counter() - started)
            for item in items:
                if error is not None:
                    self.metrics.reject(item.transport, error.code, item.measures)
                    item.future.set_exception(error)
                    continue
                assert outcome is not None
                refused = [outcome.failed[e["id"]] for e in item.entities if e["id"] in outcome.failed]
                if refused:
                    self.metrics.reject(item.transport, InvalidMeasure.code, item.measures)
                    item.future.set_exception(InvalidMeasure(refused[0]))
                else:
                    self.metrics.accepted[item.transport] += item.measures
                    item.future.set_result(None)


async def await_future(future: asyncio.Future[None]) -> None:
    await future
