"""A real agent stack per test: the broker app and the agents on free ports, the real store and Mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from agents.runtime import AgentRuntime, start_agents
from broker.api.keys import BUS
from broker.api.server import BrokerRunner
from broker.app import create_app
from broker.services.events import ChangeEvent
from tests.conftest import STORES, close_store, open_store, test_settings
from tests.services import Services, free_port

APIKEY = "4jggokgpepnvsb2uv4s40d59ov"
SERVICE = "openiot"
HEADERS = {"fiware-service": SERVICE, "fiware-servicepath": "/"}


@dataclass
class Stack:
    broker: str
    north: str
    south: str
    mqtt_url: str
    runtime: AgentRuntime
    app: web.Application
    session: aiohttp.ClientSession
    events: list[ChangeEvent] = field(default_factory=list)

    async def call(self, method: str, url: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, url, **kw) as r:
            text = await r.text()
            try:
                body: Any = await r.json(content_type=None) if text else None
            except ValueError:
                body = text
            return r.status, body

    async def provision_group(self, resource: str = "/iot/json", **extra: Any) -> None:
        group = {"apikey": APIKEY, "cbroker": "http://orion:1026", "entity_type": "Thing", "resource": resource,
                 **extra}
        status, body = await self.call("POST", self.north + "/iot/groups", json={"groups": [group]},
                                       headers=HEADERS)
        assert status == 201, body

    async def provision_devices(self, *devices: dict[str, Any]) -> None:
        status, body = await self.call("POST", self.north + "/iot/devices", json={"devices": list(devices)},
                                       headers=HEADERS)
        assert status == 201, body

    async def entity(self, entity_id: str, tenant: str = SERVICE) -> tuple[int, Any]:
        return await self.call("GET", f"{self.broker}/ngsi-ld/v1/entities/{entity_id}",
                               headers={"NGSILD-Tenant": tenant})


async def eventually(check: Callable[[], Awaitable[bool]], what: str, attempts: int = 400) -> None:
    """Poll a condition (the work is asynchronous); fails with ``what`` if it never holds."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"never happened: {what}")


async def open_stack(kind: str, services: Services, tmp_path: Any, **overrides: Any
                     ) -> tuple[Stack, Callable[[], Awaitable[None]]]:
    store = await open_store(kind, services, tmp_path)
    ports = (free_port(), free_port(), free_port())
    settings = test_settings(host="127.0.0.1", port=ports[0], iota_north_port=ports[1], iota_http_port=ports[2],
                             agents=True, **overrides)
    app = create_app(settings, store=store)
    runner = BrokerRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ports[0]).start()
    [rt] = await start_agents(app, settings, services.mqtt_url, share_group="t" + uuid.uuid4().hex[:8])
    assert rt.agents.mqtt is not None
    await rt.agents.mqtt.wait_ready()
    session = aiohttp.ClientSession()
    stack = Stack(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[2]}",
                  services.mqtt_url, rt, app, session)

    async def record(events: list[ChangeEvent]) -> None:
        stack.events.extend(events)

    app[BUS].subscribe(record)

    async def close() -> None:
        await session.close()
        await rt.cleanup()
        await runner.cleanup()
        if kind == "mongo":
            await close_store(await open_store("mongo", services, tmp_path, prefix=store.prefix))  # type: ignore[attr-defined]

    return stack, close


@pytest_asyncio.fixture(params=STORES)
async def stack(request: pytest.FixtureRequest, services: Services, tmp_path: Any) -> AsyncIterator[Stack]:
    s, close = await open_stack(request.param, services, tmp_path)
    try:
        yield s
    finally:
        await close()


@pytest_asyncio.fixture
async def lite(services: Services, tmp_path: Any) -> AsyncIterator[Stack]:
    """The embedded store only, for tests about protocol details rather than storage."""
    s, close = await open_stack("sqlite", services, tmp_path)
    try:
        yield s
    finally:
        await close()
