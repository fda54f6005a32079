"""A real HTTP server in the test process that serves @context documents, good and bad."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class ContextServer:
    """Serves /ctx (A1), /nested (list: ctx + B1), /import (@import ctx + C1), /big, /chunked (E1, in
    pieces), /deep, /slow, /text, /missing (404) and /flaky (503 until ``healthy`` is set); counts the
    requests per path."""

    max_bytes: int = 4096
    healthy: bool = False
    hits: Counter[str] = field(default_factory=Counter)
    server: TestServer | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    mutable_iri: str = "urn:test:old"  # what /mutable maps ``temp`` to: a test changes it, then reloads

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def app(self) -> web.Application:
        app = web.Application()

        async def handle(request: web.Request) -> web.StreamResponse:
            name = request.match_info["name"]
            self.hits[name] += 1
            if name == "ctx":
                return web.json_response({"@context": {"A1": "urn:test:A1", "shared": "urn:test:shared"}})
            if name == "nested":
                return web.json_response({"@context": [self.url("/ctx"), {"B1": "urn:test:B1"}]})
            if name == "import":
                return web.json_response({"@context": {"@import": self.url("/ctx"), "C1": "urn:test:C1"}})
            if name == "scoped":
                return web.json_response({"@context": {"D1": {"@id": "urn:test:D1",
                                                              "@context": self.url("/ctx")}}})
            if name == "big":
                filler = {f"t{i}": f"urn:test:t{i}" for i in range(self.max_bytes // 10)}
                return web.json_response({"@context": filler})
            if name == "bigstream":  # chunked, no Content-Length: the size limit must hold while reading
                resp = web.StreamResponse()
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                await resp.write(b'{"@context": {"pad": "')
                for _ in range(self.max_bytes // 512 + 2):
                    await resp.write(b"x" * 512)
                await resp.write(b'"}}')
                await resp.write_eof()
                return resp
            if name == "chunked":  # a valid context written in many small pieces (no Content-Length)
                resp = web.StreamResponse()
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                await resp.write(b'{"@context": {"E1": "urn:test:E1"')
                for i in range(2000):
                    await resp.write(b', "e%d": "urn:test:e%d"' % (i, i))
                    if i % 100 == 0:
                        await asyncio.sleep(0)
                await resp.write(b"}}")
                await resp.write_eof()
                return resp
            if name == "deep":
                return web.Response(body=b'{"@context": ' + b"[" * 300 + b"{}" + b"]" * 300 + b"}",
                                    content_type="application/ld+json")
            if name == "slow":
                await self.release.wait()
                return web.json_response({"@context": {}})
            if name == "text":
                return web.Response(text="<html>not a context</html>", content_type="text/html")
            if name == "nocontext":
                return web.json_response({"hello": "world"})
            if name == "mutable":
                return web.json_response({"@context": {"temp": self.mutable_iri}})
            if name == "flaky":
                if not self.healthy:
                    return web.Response(status=503)
                return web.json_response({"@context": {"F1": "urn:test:F1"}})
            return web.Response(status=404)

        app.router.add_get("/{name}", handle)
        return app

    async def start(self) -> None:
        self.server = TestServer(self.app())
        await self.server.start_server()

    async def close(self) -> None:
        self.release.set()
        if self.server is not None:
            await self.server.close()
