"""Shared fixtures: the real services (FerretDB, Mosquitto) and both stores behind one API."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from broker.api.server import BrokerRunner
from broker.app import create_app
from broker.config import Settings
from broker.store.base import Store
from tests.jsonld.context_server import ContextServer
from tests.services import Services

STORES = ("sqlite", "mongo")
_services = Services()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("NGSILD_TEST_NO_SERVICES"):
        return
    _services.start()
    os.environ["TEST_MONGODB_URL"] = _services.mongodb_url
    os.environ["TEST_MQTT_URL"] = _services.mqtt_url


def pytest_unconfigure(config: pytest.Config) -> None:
    _services.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["services: " + d for d in _services.descriptions] or ["services: none started"]


@pytest.fixture(scope="session")
def services() -> Services:
    if not _services.mongodb_url:
        pytest.fail("services were not started (NGSILD_TEST_NO_SERVICES is set)")
    return _services


async def open_store(kind: str, services: Services, tmp_path, prefix: str | None = None) -> Store:  # type: ignore[no-untyped-def]
    """A started store; the same ``tmp_path`` (sqlite) or ``prefix`` (mongo) reopens the same data."""
    if kind == "sqlite":
        from broker.store.sqlite import SqliteStore

        store: Store = SqliteStore(str(tmp_path / "store.sqlite3"))
    else:
        from broker.store.mongo import MongoStore

        store = MongoStore(services.mongodb_url, prefix=prefix or "t" + uuid.uuid4().hex[:10])
    await store.start()
    return store


async def close_store(store: Store) -> None:
    for tenant in await store.tenants():
        await store.drop_tenant(tenant)
    await store.close()


@pytest_asyncio.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, services: Services, tmp_path) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    s = await open_store(request.param, services, tmp_path)
    try:
        yield s
    finally:
        await close_store(s)


class BrokerTestServer(TestServer):
    """aiohttp's test server on the broker's own HTTP server (the one ``make run`` starts)."""

    async def _make_runner(self, **kwargs: object) -> BrokerRunner:  # type: ignore[override]
        return BrokerRunner(self.app, **kwargs)


def test_settings(**overrides: object) -> Settings:
    base = {"agents": False, "sqlite_path": ":memory:", "context_fetch_timeout": 2.0}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest_asyncio.fixture(params=STORES)
async def client(request: pytest.FixtureRequest, services: Services, tmp_path) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """An HTTP client on a broker app backed by each store in turn."""
    s = await open_store(request.param, services, tmp_path)
    app = create_app(test_settings(), store=s)
    server = BrokerTestServer(app)
    c = TestClient(server)
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()
        # the app's cleanup closed the store; reopen to drop what the test wrote
        if request.param == "mongo":
            await close_store(await open_store("mongo", services, tmp_path, prefix=s.prefix))  # type: ignore[attr-defined]


@pytest_asyncio.fixture
async def ctx_server() -> AsyncIterator[ContextServer]:
    """A real HTTP server in the test process that serves @context documents."""
    server = ContextServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
