"""The NGSI-LD API's HTTP/1.1 server: httptools' parser under aiohttp's application.

aiohttp's own server costs ~90 µs of CPU a request on the reference machine, most of a cached GET
(uvicorn: ~70 µs; this one: ~15 µs). The application, its routes, middlewares, handlers and
``web.Response`` objects stay aiohttp's; only the connection handling is ours: parse with httptools
(llhttp, the parser of Node.js and uvicorn), resolve with the route table (``routing.py``), run the
middleware chain, serialize the response. ``BrokerRunner`` plugs it into aiohttp's runner and sites,
so start-up, clean-up, ``TCPSite`` and the test server work unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any

import httptools
from aiohttp import web
from aiohttp.web_exceptions import HTTPRequestEntityTooLarge
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from ..errors import InternalError, InvalidRequest, NgsiLdError
from .keys import SETTINGS
from .middleware import MAX_HEADER_BYTES, MAX_LINE_BYTES, problem_response
from .reply import Reply
from .routing import RouteTable

log = logging.getLogger("broker.api.server")

Handler = Callable[[Any], Awaitable[web.StreamResponse]]

MAX_HEADERS = 128
# what may arrive before the end of the headers: the request line, and a few maximal header lines
MAX_HEAD_BYTES = MAX_LINE_BYTES + 4 * MAX_HEADER_BYTES
KEEPALIVE_SECONDS = 75.0  # aiohttp's and nginx's default
REQUEST_SECONDS = 60.0  # a request must arrive whole within this, however it trickles in (slowloris)
PIPELINE_DEPTH = 16  # requests parsed ahead of the one being answered before reading pauses
_NO_BODY_STATUS = frozenset({204, 304})
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


class LiteRequest:
    """The part of ``aiohttp.web.Request`` the handlers use, built for a fraction of its cost."""

    __slots__ = ("app", "method", "raw_path", "headers", "version", "match_info", "_body", "_too_large",
                 "_max_body", "_url", "_sockname", "scheme")

    def __init__(self, app: web.Application, method: str, raw_path: str, headers: CIMultiDictProxy[str],
                 version: str, body: bytes, too_large: int, max_body: int, sockname: Any, scheme: str) -> None:
        self.app = app
        self.method = method
        self.raw_path = raw_path
        self.headers = headers
        self.version = version
        self.match_info: Any = None
        self._body = body
        self._too_large = too_large
        self._max_body = max_body
        self._url: URL | None = None
        self._sockname = sockname
        self.scheme = scheme

    @property
    def rel_url(self) -> URL:
        url = self._url
        if url is None:
            query = self.raw_path.partition("?")[2].partition("#")[0]
            url = self._url = URL.build(path=self._raw_path_only, query_string=query, encoded=True)
        return url

    @property
    def _raw_path_only(self) -> str:
        return self.raw_path.partition("?")[0].partition("#")[0]

    @property
    def path(self) -> str:
        path = self._raw_path_only
        return path if "%" not in path else self.rel_url.path  # nothing to decode: skip yarl

    @property
    def path_safe(self) -> str:
        """The path decoded except ``%2F`` and ``%25`` (what aiohttp's router matches)."""
        path = self._raw_path_only
        return path if "%" not in path else self.rel_url.path_safe

    @property
    def query(self) -> MultiDictProxy[str]:
        if "?" not in self.raw_path:
            return _NO_QUERY
        return self.rel_url.query

    @property
    def query_string(self) -> str:
        return self.rel_url.query_string

    @property
    def content_type(self) -> str:
        raw = self.headers.get("Content-Type")
        if not raw:
            return "application/octet-stream"
        return raw.split(";", 1)[0].strip().lower()

    @property
    def host(self) -> str:
        host = self.headers.get("Host")
        if host:
            return host
        name = self._sockname
        return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else "localhost"

    async def read(self) -> bytes:
        if self._too_large:
            raise HTTPRequestEntityTooLarge(max_size=self._max_body, actual_size=self._too_large)
        return self._body

    def __repr__(self) -> str:
        return f"<LiteRequest {self.method} {self.raw_path}>"


class _Date:
    """The ``Date`` header line, formatted once a second."""

    second = -1
    line = ""

    @classmethod
    def header(cls) -> str:
        t = int(time.time())
        if t != cls.second:
            cls.second = t
            cls.line = f"Date: {formatdate(t, usegmt=True)}\r\n"
        return cls.line


_STATUS_LINES = {code: f"HTTP/1.1 {code} {phrase}\r\n" for code, phrase in _REASONS.items()}


_MANAGED = frozenset({"content-length", "connection", "transfer-encoding", "date"})  # this server sets these


def serialize(resp: web.StreamResponse | Reply, head_only: bool, close: bool, keep_alive_1_0: bool = False) -> bytes:
    """Status line, headers and body of a ``Reply`` or a complete ``web.Response`` as one buffer."""
    ctype: str | None = None
    if type(resp) is Reply:
        status, body, ctype = resp.status, resp.body, resp.content_type
        first = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n"
    elif isinstance(resp, web.Response):  # its Content-Type is among its headers
        status, body = resp.status, resp.body
        if body is None:
            body = b""
        elif not isinstance(body, bytes | bytearray):
            raise TypeError(f"unsupported response body {type(body).__name__}")
        first = f"HTTP/1.1 {status} {resp.reason or _REASONS.get(status, 'Unknown')}\r\n"
    else:
        raise TypeError(f"unsupported response {type(resp).__name__}: only whole web.Response bodies are sent")
    parts = [first]
    has_type = False
    for name, value in resp.headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"newline in response header {name!r}")
        lname = name.lower()
        if lname in _MANAGED:
            continue
        if lname == "content-type":
            has_type = True
        parts.append(f"{name}: {value}\r\n")
    if status in _NO_BODY_STATUS or status < 200:
        body = b""
    else:
        if ctype is not None and not has_type:
            parts.append(f"Content-Type: {ctype}\r\n")
        elif body and not has_type:
            parts.append("Content-Type: application/octet-stream\r\n")
        parts.append(f"Content-Length: {len(body)}\r\n")
    parts.append(_Date.header())
    if close:
        parts.append("Connection: close\r\n")
    elif keep_alive_1_0:  # an HTTP/1.0 client keeps the connection only when told so (ab -k, old proxies)
        parts.append("Connection: keep-alive\r\n")
    parts.append("\r\n")
    head = "".join(parts).encode("utf-8", "surrogateescape")  # as aiohttp: a Location may hold an IRI
    return head if head_only or not body else head + body


class _ProtocolError(Exception):
    def __init__(self, err: NgsiLdError) -> None:
        super().__init__(err.detail)
        self.err = err


def _too_long(what: str, status: int) -> _ProtocolError:
    err = InvalidRequest(f"{what} is too long (the limits are {MAX_LINE_BYTES} bytes for the request line "
                         f"and {MAX_HEADER_BYTES} for a header)", title="Request too long")
    err.status = status
    return _ProtocolError(err)


class _Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them one after the other (pipelining allowed)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url_parts: list[bytes] = []
        self.url_len = 0
        self.header_list: list[tuple[str, str]] = []
        self.body_parts: list[bytes] = []
        self.body_len = 0
        self.too_large = 0
        self.head_bytes = 0
        self.in_head = False
        self.pending: collections.deque[tuple[LiteRequest, bool]] = collections.deque()
        self.busy = False
        self.closing = False
        self.reading_paused = False
        self.writable: asyncio.Future[None] | None = None
        self.last_active = time.monotonic()
        self.started: float | None = None  # when the request being received began
        self.sockname: Any = None
        self.scheme = "http"

    # -- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's transports do not subclass it
        self.sockname = transport.get_extra_info("sockname")
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # an answer is written whole: its last segment must not wait for the client's delayed ACK
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.pending.clear()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.transport = None

    def pause_writing(self) -> None:
        if self.writable is None or self.writable.done():
            self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closing = True  # no protocol switch here: answer what was parsed, then close
            if not self.busy and self.transport is not None:
                self.transport.close()
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # a callback's own exception comes back wrapped
            if isinstance(cause, _ProtocolError):
                self._fail(cause.err)
            else:
                self._fail(InvalidRequest(f"Malformed HTTP request: {exc}"))
        else:
            if self.in_head:  # still in a request's head after this chunk: count it against the limit
                self.head_bytes += len(data)
                if self.head_bytes > MAX_HEAD_BYTES:
                    self._fail(_too_long("The request head", 431).err)

    def eof_received(self) -> bool | None:
        # the client finished sending: answer what is queued, then close
        self.closing = True
        if not self.busy and self.transport is not None:
            self.transport.close()
        return True

    # -- parser callbacks
    def on_message_begin(self) -> None:
        self.url_parts = []
        self.url_len = 0
        self.header_list = []
        self.body_parts = []
        self.body_len = 0
        self.too_large = 0
        self.head_bytes = 0
        self.in_head = True
        self.started = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self.url_len += len(url)
        if self.url_len > MAX_LINE_BYTES:
            raise _too_long("The request line", 414)
        self.url_parts.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_HEADER_BYTES:
            raise _too_long("A header", 431)
        if len(self.header_list) >= MAX_HEADERS:
            err = InvalidRequest(f"More than {MAX_HEADERS} headers", title="Request too long")
            err.status = 431
            raise _ProtocolError(err)
        self.header_list.append((name.decode("utf-8", "surrogateescape"),
                                 value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self.in_head = False
        for name, value in self.header_list:
            if len(name) == 6 and name.lower() == "expect":
                self._expect(value)
            elif len(name) == 14 and name.lower() == "content-length":
                with contextlib.suppress(ValueError):
                    if int(value) > self.server.max_body:
                        self.too_large = int(value)

    def _expect(self, value: str) -> None:
        if value.strip().lower() != "100-continue":
            err = InvalidRequest(f"Unsupported Expect: {value}", title="Expectation failed")
            err.status = 417
            raise _ProtocolError(err)
        if self.parser.get_http_version() == "1.1" and not self.too_large and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            self.too_large = max(self.too_large, self.body_len + len(body))
            self.body_len += len(body)
            return
        self.body_len += len(body)
        if self.body_len > self.server.max_body:
            self.too_large = self.body_len
            self.body_parts = []
            return
        self.body_parts.append(body)

    def on_message_complete(self) -> None:
        self.started = None
        parser = self.parser
        parts = self.body_parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        raw_path = (self.url_parts[0] if len(self.url_parts) == 1 else b"".join(self.url_parts)).decode(
            "utf-8", "surrogateescape")
        request = LiteRequest(self.server.app, parser.get_method().decode("ascii", "replace"), raw_path,
                              CIMultiDictProxy(CIMultiDict(self.header_list)), parser.get_http_version(), body,
                              self.too_large, self.server.max_body, self.sockname, self.scheme)
        keep_alive = parser.should_keep_alive()
        if self.busy:
            self.pending.append((request, keep_alive))
            if len(self.pending) >= PIPELINE_DEPTH and self.transport is not None and not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
            return
        self.busy = True
        self.loop.create_task(self._serve(request, keep_alive))

    # -- answering
    async def _serve(self, request: LiteRequest, keep_alive: bool) -> None:
        server = self.server
        server.active += 1
        try:
            while True:
                head_only = request.method == "HEAD"
                close = not keep_alive
                try:
                    resp = await server.handle(request)
                    close = (close or resp.keep_alive is False or server.shutting_down
                             or (self.closing and not self.pending))
                    data = serialize(resp, head_only, close, request.version == "1.0")
                except Exception:  # noqa: BLE001 - a handler or serializer fault: answer 500, keep serving
                    log.exception("unanswerable response to %s %s", request.method, request.raw_path)
                    data = serialize(server.error_response(InternalError("Internal error; see the broker log")),
                                     head_only, close, request.version == "1.0")
                transport = self.transport
                if transport is None:
                    return
                transport.write(data)
                if close:
                    transport.close()
                    return
                if self.writable is not None and not self.writable.done():
                    await self.writable
                if not self.pending:
                    if self.closing and self.transport is not None:
                        self.transport.close()
                    return
                request, keep_alive = self.pending.popleft()
                if self.reading_paused and len(self.pending) < PIPELINE_DEPTH // 2 and self.transport is not None:
                    self.reading_paused = False
                    self.transport.resume_reading()
        finally:
            self.busy = False
            self.last_active = time.monotonic()
            server.active -= 1
            if server.active == 0 and server.idle is not None and not server.idle.done():
                server.idle.set_result(None)

    def _fail(self, err: NgsiLdError) -> None:
        """A request the parser refused: answer it (unless one is being answered) and close."""
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        if not self.busy and not self.pending:
            transport.write(serialize(self.server.error_response(err), False, True))
            transport.close()
        # else: the well-formed requests before it are answered, the last of them with the close

    def close_if_idle(self) -> bool:
        if not self.busy and self.transport is not None:
            self.transport.close()
            return True
        return False


class HttpServer:
    """The protocol factory aiohttp's sites call, and the connection set its runner shuts down."""

    def __init__(self, app: web.Application, *, max_body: int,
                 error_response: Callable[[NgsiLdError], web.Response | Reply] = problem_response) -> None:
        self.app = app
        self.max_body = max_body
        # the answer to a request refused before any handler runs (malformed, too long) or left
        # unanswered by one: problem+json here, the IoT Agent library's error body on the agents' ports
        self.error_response = error_response
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self.active = 0
        self.idle: asyncio.Future[None] | None = None
        self.shutting_down = False
        self.routes = RouteTable(app)
        self._chains = {h: self._chain(h) for h in self.routes.handlers()}
        self._sweeper = self.loop.call_later(min(KEEPALIVE_SECONDS, REQUEST_SECONDS) / 5, self._sweep)

    def __call__(self) -> _Connection:
        return _Connection(self)

    async def handle(self, request: LiteRequest) -> web.StreamResponse:
        handler, request.match_info = self.routes.resolve(request.method, request.path_safe)
        chain = self._chains.get(handler)
        if chain is None:  # 404 and 405: a new raising handler each time
            chain = self._chain(handler)
        return await chain(request)

    def _chain(self, handler: Handler) -> Handler:
        for middleware in reversed(self.app.middlewares):
            handler = partial(middleware, handler=handler)
        return handler

    def _sweep(self) -> None:
        """Close connections idle past the keep-alive time (slow or abandoned clients included)."""
        now = time.monotonic()
        idle_limit, request_limit = now - KEEPALIVE_SECONDS, now - REQUEST_SECONDS
        for conn in list(self.connections):
            if conn.transport is None or conn.busy:
                continue
            if conn.last_active < idle_limit or (conn.started is not None and conn.started < request_limit):
                conn.transport.close()
        self._sweeper = self.loop.call_later(min(KEEPALIVE_SECONDS, REQUEST_SECONDS) / 5, self._sweep)

    # -- what BaseRunner.cleanup calls
    def pre_shutdown(self) -> None:
        self.shutting_down = True
        for conn in list(self.connections):
            conn.closing = True
            conn.close_if_idle()

    async def shutdown(self, timeout: float | None = None) -> None:
        self._sweeper.cancel()
        if self.active:
            self.idle = self.loop.create_future()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.idle), timeout)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.connections.clear()


class BrokerRunner(web.AppRunner):
    """``web.AppRunner`` whose sites serve through ``HttpServer`` (start-up and clean-up are aiohttp's).

    ``max_body`` defaults to the broker settings' limit; ``error_response`` answers protocol faults."""

    error_response: Callable[[NgsiLdError], web.Response | Reply] = staticmethod(problem_response)

    def __init__(self, app: web.Application, *, max_body: int | None = None, **kwargs: Any) -> None:
        kwargs.pop("handler_cancellation", None)
        super().__init__(app, **kwargs)
        self.max_body = max_body

    async def _make_server(self) -> Any:
        await super()._make_server()  # the app's start-up and freeze
        max_body = self.max_body if self.max_body is not None else self._app[SETTINGS].max_body_bytes
        return HttpServer(self._app, max_body=max_body, error_response=self.error_response)


__all__ = ["BrokerRunner", "HttpServer", "LiteRequest", "Reply", "serialize"]
