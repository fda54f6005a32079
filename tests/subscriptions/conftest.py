"""Fixtures for notification tests: a broker app on each store with short retries, and receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from broker.api.keys import DELIVERY
from broker.app import create_app
from tests.conftest import STORES, BrokerTestServer, close_store, open_store
from tests.conftest import test_settings as broker_settings
from tests.subscriptions.receiver import Receiver


@pytest_asyncio.fixture(params=STORES)
async def nclient(request: pytest.FixtureRequest, services, tmp_path) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """A broker app (each store in turn) that gives up on a notification after 3 attempts."""
    s = await open_store(request.param, services, tmp_path)
    app = create_app(broker_settings(notify_max_retries=3, subscription_sync_interval=0.2), store=s)
    app[DELIVERY].retry_base, app[DELIVERY].retry_cap = 0.05, 0.2  # retries in tenths of seconds
    c = TestClient(BrokerTestServer(app))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()
        if request.param == "mongo":
            await close_store(await open_store("mongo", services, tmp_path, prefix=s.prefix))  # type: ignore[attr-defined]


@pytest_asyncio.fixture(scope="module")
async def shared_client(services, tmp_path_factory) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """One broker app (SQLite) for a module's requests that must change nothing (validation cases)."""
    s = await open_store("sqlite", services, tmp_path_factory.mktemp("shared"))
    c = TestClient(BrokerTestServer(create_app(broker_settings(), store=s)))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()
