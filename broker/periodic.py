"""Background tasks of the services: a periodic loop that survives failures, and a clean stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def every(interval: float, action: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
    """Run ``action`` every ``interval`` seconds until cancelled; a failure (a store hiccup) is
    logged and the next round runs as usual, so one error never ends the loop."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the next round retries
                log.exception("%s failed; retrying in %.1fs", name, interval)

    return asyncio.create_task(loop(), name=name)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended.

    The cancellation is repeated until the task is done: a library awaited inside the task may
    swallow one ``CancelledError`` (PyMongo's async client was seen to, during a delete), and the
    task would then go back to waiting for work and never end, hanging shutdown."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s ended with an error while stopping", task.get_name(), exc_info=task.exception())
