"""The background loop of the services: a failing round does not end it, and stop() ends it."""

from __future__ import annotations

import asyncio

from broker.periodic import every, stop


async def test_every_survives_failures_and_stops() -> None:
    calls = 0

    async def action() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store hiccup")

    task = every(0.01, action, "test-loop")
    while calls < 3:
        await asyncio.sleep(0.01)
    assert not task.done()  # the first failure did not end it
    await stop(task)
    assert task.cancelled()
    await stop(None)  # nothing to stop is fine


async def test_stop_ends_a_task_that_swallowed_one_cancellation() -> None:
    """A library inside the task may eat a CancelledError; stop() must still end the task."""
    wake = asyncio.Event()
    swallowed = 0

    async def worker() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # eaten once, as PyMongo's async client was seen to
            await wake.wait()

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop(task), timeout=5)
    assert swallowed == 1 and task.done()
