"""At-least-once across a crash: the real broker process, SIGKILLed with a notification pending."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

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
from tests.subscriptions.receiver import Receiver


async def _post(url: str, body: dict) -> int:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status


@pytest.mark.parametrize("backend", ["sqlite", "mongo"])
async def test_notification_survives_sigkill(backend: str, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store_args = broker_store_args(backend, services.mongodb_url, tmp_path)
    port = free_port()
    receiver = Receiver()  # down: the broker cannot deliver
    base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
    proc = start_broker(port, store_args)
    try:
        await asyncio.to_thread(wait_port, port, proc, "broker", 30)
        sub = {"type": "Subscription", "entities": [{"type": "Room"}],
               "notification": {"endpoint": {"uri": receiver.url}}}
        assert await _post(f"{base}/subscriptions", sub) == 201
        entity = {"id": "urn:ngsi-ld:Room:crash", "type": "Room", "t": {"type": "Property", "value": 7}}
        assert await _post(f"{base}/entities", entity) == 201
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)
    await receiver.start()
    proc = start_broker(port, store_args)
    try:
        got = await receiver.next(timeout=30)
        assert got["body"]["data"][0]["id"] == "urn:ngsi-ld:Room:crash"
        assert got["body"]["data"][0]["t"]["value"] == 7
    finally:
        await receiver.stop()
        stop_broker(proc, timeout=20)
    await drop_broker_store(store_args)
