"""Fixtures of the @context tests: a real context server in the test process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.jsonld.context_server import ContextServer


@pytest_asyncio.fixture
async def ctx_server() -> AsyncIterator[ContextServer]:
    server = ContextServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
