"""The keep-alive HTTP/1.1 client of plain-http notifications, against real sockets answering in every framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from broker.services.delivery import DeliveryError, HttpSender


class RawServer:
    """A TCP server that reads one request at a time and answers with ``reply`` (then maybe closes)."""

    def __init__(self, reply: bytes, close_after: bool = False, answer: bool = True) -> None:
        self.reply = reply
        self.close_after = close_after
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                if not self.answer:
                    await asyncio.sleep(3600)
                writer.write(self.reply)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/notify?x=1"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest_asyncio.fixture
async def sender() -> AsyncIterator[HttpSender]:
    s = HttpSender()
    await s.start()
    try:
        yield s
    finally:
        await s.close()


HEADERS = {"Content-Type": "application/json", "Link": '<http://x/c>; rel="ctx"'}


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
], ids=["204", "content-length", "chunked", "interim-100"])
async def test_keep_alive_reuses_one_connection(sender: HttpSender, reply: bytes) -> None:
    server = RawServer(reply)
    url = await server.start()
    try:
        for n in range(5):
            await sender.send(url, HEADERS, b'{"n": %d}' % n, timeout=5)
        assert server.connections == 1 and len(server.requests) == 5
        first = server.requests[0]
        assert first.startswith(b"POST /notify?x=1 HTTP/1.1\r\n")
        assert b"\r\nContent-Type: application/json\r\n" in first and first.endswith(b'{"n": 0}')
        assert f"\r\nHost: 127.0.0.1:{url.split(':')[2].split('/')[0]}\r\n".encode() in first
    finally:
        await server.stop()


@pytest.mark.parametrize("reply", [
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close",   # length from the close
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",                           # closed while idle
], ids=["http1.0-close-delimited", "closed-after-answer"])
async def test_servers_that_close_connections(sender: HttpSender, reply: bytes) -> None:
    server = RawServer(reply, close_after=True)
    url = await server.start()
    try:
        for _ in range(3):
            await sender.send(url, HEADERS, b"{}", timeout=5)
        assert len(server.requests) == 3
    finally:
        await server.stop()


async def test_errors_are_delivery_errors(sender: HttpSender) -> None:
    failing = RawServer(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    silent = RawServer(b"", answer=False)
    url, silent_url = await failing.start(), await silent.start()
    try:
        with pytest.raises(DeliveryError, match="HTTP 500"):
            await sender.send(url, HEADERS, b"{}", timeout=5)
        with pytest.raises(DeliveryError, match="Timeout"):
            await sender.send(silent_url, HEADERS, b"{}", timeout=0.2)
        with pytest.raises(DeliveryError, match="line break"):
            await sender.send(url, {"X-Evil": "a\r\nInjected: 1"}, b"{}", timeout=5)
        await failing.stop()
        failing.server = None
        with pytest.raises(DeliveryError):  # nothing listens any more
            await sender.send("http://127.0.0.1:9/notify", HEADERS, b"{}", timeout=5)
    finally:
        await failing.stop()
        await silent.stop()
