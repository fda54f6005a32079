"""A real HTTP notification receiver (an aiohttp server in the test process) that can go down and up."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tests.services import free_port


class Receiver:
    """Collects every POST; ``status`` sets the answer, ``stop``/``start`` simulate an outage."""

    def __init__(self, port: int | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.port = port or free_port()
        self.tls = tls  # serve HTTPS with this server context
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.status = 200
        self.before_answer: Callable[[], Awaitable[None]] | None = None  # runs before the answer is sent
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/notify"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await self.received.put({"headers": dict(request.headers), "path": request.path,
                                 "body": orjson.loads(body) if body else None})
        if self.before_answer is not None:
            await self.before_answer()
        return web.Response(status=self.status)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.tls).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), timeout)
