"""The broker's HTTP/1.1 server (``broker.api.server``) spoken to byte by byte over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from broker.api import server as http_server
from broker.api.server import BrokerRunner
from broker.app import create_app
from tests.conftest import test_settings as broker_settings

ENTITIES = "/ngsi-ld/v1/entities"
MAX_BODY = 4096


class Raw:
    """One client connection; reads whole responses (Content-Length bodies) off the stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        size = int(headers.get("content-length", "0"))
        body = b"" if head_only else await asyncio.wait_for(self.reader.readexactly(size), 5)
        return status, headers, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    def close(self) -> None:
        self.writer.close()


class Served:
    def __init__(self, port: int, app: web.Application) -> None:
        self.port, self.app = port, app

    async def connect(self) -> Raw:
        return Raw(*await asyncio.open_connection("127.0.0.1", self.port))


async def _slow(request: Any) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "0.3")))
    return web.json_response({"slept": True})


async def _bad_header(request: Any) -> web.Response:
    return web.Response(body=b"{}", content_type="application/json", headers={"X-Bad": "a\r\nInjected: yes"})


async def _start(app: web.Application) -> tuple[BrokerRunner, int]:
    runner = BrokerRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _app() -> web.Application:
    app = create_app(broker_settings(max_body_bytes=MAX_BODY))
    app.router.add_get("/test/slow", _slow)
    app.router.add_get("/test/bad-header", _bad_header)
    return app


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    app = _app()
    runner, port = await _start(app)
    try:
        yield Served(port, app)
    finally:
        await runner.cleanup()


def entity(n: int, pad: str = "") -> bytes:
    return orjson.dumps({"id": f"urn:ngsi-ld:Room:{n}", "type": "Room",
                         "name": {"type": "Property", "value": "room" + pad}})


def request(method: str, path: str, body: bytes = b"", *extra: str) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: test"]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += list(extra)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_keep_alive_and_pipelined_requests_answered_in_order(served: Served) -> None:
    conn = await served.connect()
    await conn.send(request("POST", ENTITIES, entity(1)))
    status, headers, body = await conn.response()
    assert status == 201, body
    assert headers["location"] == f"{ENTITIES}/urn:ngsi-ld:Room:1"
    assert headers["content-length"] == "0" and "date" in headers and "connection" not in headers
    # three requests in one segment: create, read, delete; answers come back in that order
    await conn.send(request("POST", ENTITIES, entity(2)) + request("GET", f"{ENTITIES}/urn:ngsi-ld:Room:2")
                    + request("DELETE", f"{ENTITIES}/urn:ngsi-ld:Room:1"))
    assert (await conn.response())[0] == 201
    status, headers, body = await conn.response()
    assert status == 200 and orjson.loads(body)["name"]["value"] == "room"
    assert headers["content-type"] == "application/json"
    assert (await conn.response())[0] == 204
    await conn.send(request("GET", f"{ENTITIES}/urn:ngsi-ld:Room:1"))
    status, headers, body = await conn.response()
    assert status == 404 and headers["content-type"] == "application/problem+json"
    assert orjson.loads(body)["type"].endswith("ResourceNotFound")
    conn.close()


async def test_head_answers_the_get_headers_without_a_body(served: Served) -> None:
    conn = await served.connect()
    await conn.send(request("GET", "/health"))
    _, get_headers, get_body = await conn.response()
    await conn.send(request("HEAD", "/health") + request("GET", "/health"))
    status, headers, _ = await conn.response(head_only=True)
    assert status == 200 and headers["content-length"] == str(len(get_body)) == get_headers["content-length"]
    # the next answer starts right after the HEAD's headers: no stray body bytes in between
    status, _, body = await conn.response()
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    conn.close()


async def test_expect_100_continue_and_chunked_bodies(served: Served) -> None:
    conn = await served.connect()
    body = entity(3)
    await conn.send(request("POST", ENTITIES, b"", "Content-Type: application/json",
                            f"Content-Length: {len(body)}", "Expect: 100-continue"))
    interim = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    await conn.send(body)
    assert (await conn.response())[0] == 201
    chunked = entity(4)
    await conn.send(request("POST", ENTITIES, b"", "Content-Type: application/json", "Transfer-Encoding: chunked")
                    + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, chunked[:10], len(chunked) - 10, chunked[10:]))
    status, _, body = await conn.response()
    assert status == 201, body
    await conn.send(request("POST", ENTITIES, entity(5), "Expect: something-else"))
    status, headers, body = await conn.response()
    assert status == 417 and headers["content-type"] == "application/problem+json"
    assert await conn.closed()
    conn = await served.connect()
    await conn.send(request("GET", f"{ENTITIES}/urn:ngsi-ld:Room:5"))
    assert (await conn.response())[0] == 404
    conn.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_bodies_over_the_limit_are_413_and_change_nothing(served: Served, chunked: bool) -> None:
    big = entity(6, pad="x" * MAX_BODY)
    conn = await served.connect()
    if chunked:
        data = request("POST", ENTITIES, b"", "Content-Type: application/json", "Transfer-Encoding: chunked")
        data += b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 1000]), big[i:i + 1000]) for i in range(0, len(big), 1000))
        await conn.send(data + b"0\r\n\r\n")
    else:
        await conn.send(request("POST", ENTITIES, big))
    status, headers, body = await conn.response()
    assert status == 413, body
    assert headers["content-type"] == "application/problem+json"
    assert orjson.loads(body)["status"] == 413
    # the connection still serves, and nothing was written
    await conn.send(request("GET", f"{ENTITIES}/urn:ngsi-ld:Room:6"))
    assert (await conn.response())[0] == 404
    conn.close()


async def test_http_1_0_and_connection_close_end_the_connection(served: Served) -> None:
    conn = await served.connect()
    await conn.send(b"GET /health HTTP/1.0\r\n\r\n")
    status, headers, body = await conn.response()
    assert status == 200 and headers["connection"] == "close" and orjson.loads(body) == {"status": "ok"}
    assert await conn.closed()
    conn = await served.connect()
    await conn.send(request("GET", "/health", b"", "Connection: close"))
    assert (await conn.response())[1]["connection"] == "close"
    assert await conn.closed()
    # HTTP/1.0 with keep-alive (ab -k): the answer says so, and the connection serves on
    conn = await served.connect()
    for _ in range(2):
        await conn.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = await conn.response()
        assert status == 200 and headers["connection"].lower() == "keep-alive"
    conn.close()


async def test_protocol_faults_are_problems(served: Served) -> None:
    cases = [(b"NOT-HTTP\r\n\r\n", 400),
             (request("GET", "/health", b"", *[f"X-H{i}: v" for i in range(http_server.MAX_HEADERS + 1)]), 431),
             (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (http_server.MAX_HEAD_BYTES + 10), 431)]
    for data, expected in cases:
        conn = await served.connect()
        await conn.send(data)
        status, headers, body = await conn.response()
        assert status == expected, (data[:40], body)
        assert headers["content-type"] == "application/problem+json" and headers["connection"] == "close"
        assert orjson.loads(body)["status"] == expected
        assert await conn.closed()


async def test_a_response_that_cannot_be_sent_is_a_500_and_the_connection_serves_on(served: Served) -> None:
    conn = await served.connect()
    await conn.send(request("GET", "/test/bad-header"))
    status, headers, body = await conn.response()
    assert status == 500 and "injected" not in headers
    assert orjson.loads(body)["type"].endswith("InternalError")
    await conn.send(request("GET", "/health"))
    assert (await conn.response())[0] == 200
    conn.close()


async def test_unknown_routes_and_methods(served: Served) -> None:
    conn = await served.connect()
    await conn.send(request("GET", "/nowhere") + request("PUT", "/health"))
    status, _, body = await conn.response()
    assert status == 404 and orjson.loads(body)["type"].endswith("ResourceNotFound")
    status, headers, body = await conn.response()
    assert status == 405 and "GET" in headers["allow"]
    conn.close()


async def test_a_client_that_leaves_mid_request_does_not_disturb_the_others(served: Served) -> None:
    gone = await served.connect()
    await gone.send(request("GET", "/test/slow?s=0.2"))
    gone.writer.transport.abort()
    half = await served.connect()
    await half.send(request("POST", ENTITIES, entity(7))[:-10])  # body cut short, then the client leaves
    half.writer.transport.abort()
    await asyncio.sleep(0.3)
    conn = await served.connect()
    await conn.send(request("GET", f"{ENTITIES}/urn:ngsi-ld:Room:7") + request("GET", "/health"))
    assert (await conn.response())[0] == 404
    assert (await conn.response())[0] == 200
    conn.close()


async def test_shutdown_finishes_the_request_in_flight_and_closes_idle_connections() -> None:
    runner, port = await _start(_app())
    busy = Raw(*await asyncio.open_connection("127.0.0.1", port))
    idle = Raw(*await asyncio.open_connection("127.0.0.1", port))
    await idle.send(request("GET", "/health"))
    assert (await idle.response())[0] == 200
    await busy.send(request("GET", "/test/slow?s=0.3"))
    await asyncio.sleep(0.05)
    cleanup = asyncio.create_task(runner.cleanup())
    status, headers, body = await busy.response()
    assert status == 200 and orjson.loads(body) == {"slept": True} and headers["connection"] == "close"
    assert await idle.closed() and await busy.closed()
    await cleanup
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_idle_connections_are_closed_after_the_keep_alive_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "KEEPALIVE_SECONDS", 0.5)
    monkeypatch.setattr(http_server, "REQUEST_SECONDS", 5.0)
    runner, port = await _start(_app())
    try:
        conn = Raw(*await asyncio.open_connection("127.0.0.1", port))
        await conn.send(request("GET", "/health"))
        assert (await conn.response())[0] == 200
        slow = Raw(*await asyncio.open_connection("127.0.0.1", port))
        await slow.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert await conn.closed() and await slow.closed()
    finally:
        await runner.cleanup()


async def test_a_half_closed_client_gets_every_pipelined_answer(served: Served) -> None:
    conn = await served.connect()
    await conn.send(request("POST", ENTITIES, entity(8)) + request("GET", f"{ENTITIES}/urn:ngsi-ld:Room:8")
                    + request("GET", "/health"))
    conn.writer.write_eof()
    assert (await conn.response())[0] == 201
    assert (await conn.response())[0] == 200
    status, headers, _ = await conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert await conn.closed()


async def test_a_request_trickling_in_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that sends a byte now and then never looks idle, but its request must arrive whole
    within REQUEST_SECONDS (slowloris)."""
    monkeypatch.setattr(http_server, "KEEPALIVE_SECONDS", 5.0)
    monkeypatch.setattr(http_server, "REQUEST_SECONDS", 0.6)
    runner, port = await _start(_app())
    try:
        slow = Raw(*await asyncio.open_connection("127.0.0.1", port))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises((ConnectionError, OSError)):
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                await slow.send(bytes([byte]))
                await asyncio.sleep(0.05)
                if slow.reader.at_eof():
                    raise ConnectionResetError("closed by the server")
        assert loop.time() - t0 < 3.0
        # a well-behaved client on the same server is served meanwhile
        conn = Raw(*await asyncio.open_connection("127.0.0.1", port))
        await conn.send(request("GET", "/health"))
        assert (await conn.response())[0] == 200
        conn.close()
    finally:
        await runner.cleanup()


async def test_answers_are_sent_without_nagle_delay() -> None:
    """TCP_NODELAY on every accepted connection: the last segment of an answer must not wait for the
    client's delayed ACK (aiohttp's server sets it too)."""
    import socket

    runner, port = await _start(_app())
    try:
        conn = Raw(*await asyncio.open_connection("127.0.0.1", port))
        await conn.send(request("GET", "/health"))
        assert (await conn.response())[0] == 200
        [served_conn] = runner.server.connections  # type: ignore[union-attr]
        sock = served_conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.close()
    finally:
        await runner.cleanup()


def test_header_values_beyond_ascii_are_sent_as_utf8() -> None:
    """Header text is sent as UTF-8, as aiohttp's server sent it (the broker's own Location headers are
    percent-encoded; a Link to an IRI context is not)."""
    from broker.api.server import serialize

    resp = web.Response(status=200, body=b"{}", content_type="application/json",
                        headers={"Link": "<https://example.org/caf\u00e9.jsonld>"})
    data = serialize(resp, head_only=False, close=False)
    assert "<https://example.org/caf\u00e9.jsonld>".encode() in data
    assert data.endswith(b"\r\n\r\n{}") and b"Content-Length: 2\r\n" in data
    head_only = serialize(resp, head_only=True, close=True)
    assert head_only.endswith(b"Connection: close\r\n\r\n") and b"Content-Length: 2\r\n" in head_only


async def test_garbage_on_the_wire_never_hangs_or_kills_the_server(served: Served) -> None:
    """Random and mangled request heads: each connection gets an answer or is closed, within seconds,
    and the server keeps serving."""
    import random

    rng = random.Random(1234)
    good = request("POST", ENTITIES, entity(9))
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    for _ in range(60):  # a valid request with a few bytes changed, dropped or repeated
        data = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(data))
            op = rng.randrange(3)
            if op == 0:
                data[i] = rng.randrange(256)
            elif op == 1:
                del data[i]
            else:
                data[i:i] = data[i:i + rng.randrange(1, 40)]
        samples.append(bytes(data))
    samples += [b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
                b"GET /he\x00alth HTTP/1.1\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n", b"\r\n\r\n\r\n",
                b"POST /ngsi-ld/v1/entities HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    for data in samples:
        conn = await served.connect()
        await conn.send(data)
        conn.writer.write_eof()
        reply = await asyncio.wait_for(conn.reader.read(), 5)  # an answer then the close, or the close
        assert reply == b"" or reply.startswith(b"HTTP/1.1 "), (data[:60], reply[:80])
        conn.close()
    conn = await served.connect()
    await conn.send(request("GET", "/health"))
    assert (await conn.response())[0] == 200
    conn.close()


async def test_a_fault_after_pipelined_requests_answers_them_then_closes(served: Served) -> None:
    """The requests before a malformed one are answered in order; then the connection ends."""
    conn = await served.connect()
    await conn.send(request("GET", "/test/slow?s=0.1") + request("GET", "/health") + b"NOT-HTTP\r\n\r\n")
    status, _, body = await conn.response()
    assert status == 200 and orjson.loads(body) == {"slept": True}
    status, headers, _ = await conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert await conn.closed()
    conn = await served.connect()
    await conn.send(request("GET", "/test/slow?s=0.1") + b"NOT-HTTP\r\n\r\n")
    status, headers, _ = await conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert await conn.closed()


async def test_an_upgrade_request_is_answered_as_plain_http_then_closed(served: Served) -> None:
    """No protocol switch (no WebSocket here): the request is served, then the connection ends."""
    conn = await served.connect()
    await conn.send(request("GET", "/health", b"", "Connection: Upgrade", "Upgrade: websocket"))
    status, headers, body = await conn.response()
    assert status == 200 and orjson.loads(body) == {"status": "ok"} and headers["connection"] == "close"
    assert await conn.closed()
