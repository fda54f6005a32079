"""Delivery of notifications over HTTP(S) and MQTT(S): per-subscription workers, retries, counters.

Each subscription has its own worker and queue, so notifications of one subscription keep their
order and a slow or dead endpoint only holds up its own subscription; a semaphore bounds the
deliveries in flight overall. In-memory queues are bounded: beyond ``max_queue`` a notification
stays only in the outbox (its reference is kept) and is read back when the queue drains.
Failed attempts are retried with exponential backoff and jitter; after the last attempt the
notification counts as failed. Counters are kept in memory and written to the store in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import aiomqtt
import orjson

from ..periodic import stop
from ..store.base import DEFAULT_TENANT, Store
from ..timeutil import now_iso
from .outbox import Outbox, Ref

log = logging.getLogger(__name__)

STATUS = "subscription_status"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
JSONLD = "application/ld+json"
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class DeliveryError(Exception):
    """One attempt failed (connection, timeout, non-2xx answer, broker refused)."""


# ------------------------------------------------------------------------------------- wire form


def _pairs(pairs: list[dict[str, str]] | None) -> dict[str, str]:
    return {kv["key"]: kv["value"] for kv in pairs or ()}


def link_url(context: Any, default: str) -> str:
    """The one URL a Link header can carry for a subscription's @context (a lone URL in a list counts)."""
    if isinstance(context, list) and len(context) == 1:
        context = context[0]
    return context if isinstance(context, str) else default


def wire_headers(item: dict[str, Any], core_context: str = "") -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of a notification as the endpoint's ``accept`` asks for."""
    endpoint = item["endpoint"]
    accept = endpoint.get("accept", "application/json")
    body = item["notification"]
    headers = {"Content-Type": accept}
    context = item.get("context")
    if accept == JSONLD:
        body = {**body, "@context": context}
        if isinstance(body.get("data"), list):  # each entity is a JSON-LD document of its own (5.8.6)
            body["data"] = [{**e, "@context": context} for e in body["data"]]
    else:
        url = link_url(context, core_context)
        headers["Link"] = f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
    if item["tenant"] != DEFAULT_TENANT:
        headers["NGSILD-Tenant"] = item["tenant"]
    headers.update(_pairs(endpoint.get("receiverInfo")))
    return headers, body


# ------------------------------------------------------------------------------------- senders


def notify_tls_context(ca_file: str = "", insecure: bool = False) -> ssl.SSLContext:
    """The TLS client context of https:// and mqtts:// notifications: the system's CAs plus
    ``ca_file`` (a receiver with a private CA), or no verification at all when ``insecure``."""
    ctx = ssl.create_default_context()
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"NOTIFY_CA_FILE {ca_file!r}: {exc}") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx



class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time.

    Plain-http notifications go through this small client instead of aiohttp's: at a thousand
    notifications a second aiohttp's per-request machinery was the largest cost of delivery.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep_alive = True
        self.until_close: int | None = None  # status of a response whose body ends with the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done() and self.until_close is None:
            try:
                status = self._parse()
            except ValueError as exc:
                self.waiter.set_exception(DeliveryError(f"malformed HTTP response: {exc}"))
                return
            if status is not None:
                self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.until_close is not None:
                self.waiter.set_result(self.until_close)
            else:
                self.waiter.set_exception(ConnectionResetError("connection closed before the response"))

    def _parse(self) -> int | None:
        """The status once a whole response is buffered (and consumed), else None."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
        if 100 <= status < 200:  # an interim answer: drop it and wait for the real one
            del buf[:end + 4]
            return self._parse()
        length: int | None = None
        chunked = False
        close = version == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.strip().lower() == "close"
        start = end + 4
        if chunked:
            pos = start
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                if size == 0:
                    tail = buf.find(b"\r\n\r\n", nl)
                    if tail < 0:
                        return None
                    consumed = tail + 4
                    break
                pos = nl + 2 + size + 2
                if pos > len(buf):
                    return None
        elif length is not None:
            consumed = start + length
            if len(buf) < consumed:
                return None
        elif status in (204, 304):
            consumed = start
        else:  # no length: the body runs until the server closes
            self.until_close = status
            self.keep_alive = False
            return None
        del buf[:consumed]
        self.keep_alive = not close
        return status


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no response in time"))


class HttpSender:
    """POSTs notifications: keep-alive connections pooled per host for http, aiohttp for the rest."""

    MAX_IDLE = 64  # idle connections kept per host

    def __init__(self, limit: int = 256, tls: ssl.SSLContext | None = None) -> None:
        self.limit = limit
        self.tls = tls or notify_tls_context()
        self.session: aiohttp.ClientSession | None = None
        self.idle: dict[tuple[str, int], list[_HttpConnection]] = {}

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, ttl_dns_cache=300, ssl=self.tls),
            json_serialize=lambda o: orjson.dumps(o).decode())

    async def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.close()
        self.idle.clear()
        if self.session is not None:
            await self.session.close()

    async def send(self, uri: str, headers: dict[str, str], body: bytes, timeout: float) -> None:
        if uri[:7].lower() == "http://" and "@" not in uri[7:].split("/", 1)[0]:  # no credentials
            await self._send_plain(uri, headers, body, timeout)
            return
        assert self.session is not None
        try:
            async with self.session.post(uri, data=body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    raise DeliveryError(f"HTTP {resp.status} from {uri}")
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError, ValueError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _target(uri: str) -> tuple[str, int, str]:
        """(host, port, request line and Host header) of a plain-http endpoint, parsed once per URI."""
        parts = urlsplit(uri)
        host = parts.hostname or ""
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise DeliveryError(f"invalid endpoint: {exc}") from None
        target = quote(parts.path or "/", safe=_PATH_SAFE) + (f"?{parts.query}" if parts.query else "")
        host_header = f"[{host}]" if ":" in host else host
        if port != 80:
            host_header += f":{port}"
        return host, port, f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: ngsild-broker"

    async def _send_plain(self, uri: str, headers: dict[str, str], body: bytes, timeout: float) -> None:
        host, port, start = self._target(uri)
        head = [start, f"Content-Length: {len(body)}"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise DeliveryError(f"header {name!r} has a line break")
            head.append(f"{name}: {value}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body
        key = (host, port)
        try:
            status = await self._exchange(key, request, timeout)
        except DeliveryError:
            raise
        except (TimeoutError, OSError, ValueError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc} ({uri})") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status} from {uri}")

    async def _exchange(self, key: tuple[str, int], request: bytes, timeout: float) -> int:
        """Send on an idle connection (once more on a fresh one if the server had closed it);
        the whole exchange, connecting included, within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle = self.idle.setdefault(key, [])
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                return await self._roundtrip(key, conn, request, deadline)
            except ConnectionResetError:
                continue  # closed by the server while idle: nothing was processed, retry
        async with asyncio.timeout_at(deadline):
            _, conn = await loop.create_connection(_HttpConnection, key[0], key[1])
        return await self._roundtrip(key, conn, request, deadline)

    async def _roundtrip(self, key: tuple[str, int], conn: _HttpConnection, request: bytes, deadline: float) -> int:
        assert conn.transport is not None
        loop = asyncio.get_running_loop()
        waiter = conn.waiter = loop.create_future()
        # a timer on the response future instead of asyncio.timeout: one handle, no task bookkeeping
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            conn.transport.write(request)
            status = await waiter
        except BaseException:
            conn.transport.close()
            raise
        finally:
            timer.cancel()
            conn.waiter = None
        idle = self.idle[key]
        if conn.keep_alive and not conn.closed and len(idle) < self.MAX_IDLE:
            idle.append(conn)
        else:
            conn.transport.close()
        return status


@dataclass(slots=True)
class _MqttConnection:
    client: aiomqtt.Client | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0
    retry_at: float = 0.0


class MqttSender:
    """One connection per MQTT broker address (and protocol version), reconnected with backoff."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls or notify_tls_context()
        self.connections: dict[tuple[Any, ...], _MqttConnection] = {}

    async def close(self) -> None:
        for conn in self.connections.values():
            await self._drop(conn)
        self.connections.clear()

    @staticmethod
    async def _drop(conn: _MqttConnection) -> None:
        client, conn.client = conn.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _client(self, key: tuple[Any, ...], timeout: float) -> aiomqtt.Client:
        conn = self.connections.setdefault(key, _MqttConnection())
        async with conn.lock:
            if conn.client is not None:
                return conn.client
            if time.monotonic() < conn.retry_at:
                raise DeliveryError(f"MQTT broker {key[1]}:{key[2]} unreachable; reconnect backing off")
            scheme, host, port, user, password, version = key
            tls = scheme == "mqtts"
            client = aiomqtt.Client(host, port, username=user, password=password,
                                    tls_context=self.tls if tls else None,
                                    tls_insecure=(not self.tls.check_hostname) if tls else None,
                                    protocol=aiomqtt.ProtocolVersion.V5 if version == "mqtt5.0"
                                    else aiomqtt.ProtocolVersion.V311, timeout=timeout)
            try:
                await asyncio.wait_for(client.__aenter__(), timeout)
            except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
                conn.failures += 1
                conn.retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** (conn.failures - 1))
                raise DeliveryError(f"MQTT connect to {host}:{port} failed: {exc}") from None
            conn.failures = 0
            conn.client = client
            return client

    async def send(self, uri: str, notifier: dict[str, str], payload: bytes, timeout: float) -> None:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        port = parts.port or (8883 if scheme == "mqtts" else 1883)
        version = notifier.get("MQTT-Version", "mqtt3.1.1")
        qos = int(notifier.get("MQTT-QoS", "0"))
        key = (scheme, parts.hostname, port, unquote(parts.username) if parts.username else None,
               unquote(parts.password) if parts.password else None, version)
        topic = unquote(parts.path.lstrip("/"))
        client = await self._client(key, timeout)
        try:
            await asyncio.wait_for(client.publish(topic, payload, qos=qos), timeout)
        except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
            await self._drop(self.connections[key])
            raise DeliveryError(f"MQTT publish to {parts.hostname}:{port} failed: {exc}") from None


# ------------------------------------------------------------------------------------- workers


@dataclass(slots=True)
class _Worker:
    tenant: str
    sub_id: str
    queue: deque[tuple[Ref, dict[str, Any]]] = field(default_factory=deque)
    spill: deque[Ref] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Stats:
    timesSent: int = 0  # noqa: N815 - NGSI-LD member names
    timesFailed: int = 0  # noqa: N815
    lastNotification: str | None = None  # noqa: N815
    lastSuccess: str | None = None  # noqa: N815
    lastFailure: str | None = None  # noqa: N815

    def absorb(self, other: Stats) -> None:
        self.timesSent += other.timesSent
        self.timesFailed += other.timesFailed
        for key in _LAST:
            setattr(self, key, max(filter(None, (getattr(self, key), getattr(other, key))), default=None))

    def merged(self, stored: dict[str, Any] | None) -> dict[str, Any]:
        s = stored or {}
        out: dict[str, Any] = {"timesSent": s.get("timesSent", 0) + self.timesSent,
                               "timesFailed": s.get("timesFailed", 0) + self.timesFailed}
        for key in ("lastNotification", "lastSuccess", "lastFailure"):
            values = [v for v in (s.get(key), getattr(self, key)) if v]
            if values:
                out[key] = max(values)
        return out


IsLive = Callable[[str, str], bool]


class DeliveryService:
    def __init__(self, store: Store, outbox: Outbox, *, timeout: float = 10.0, max_attempts: int = 8,
                 retry_base: float = 0.5, retry_cap: float = 30.0, max_queue: int = 1000,
                 concurrency: int = 256, stats_interval: float = 1.0, core_context: str = "",
                 tls: ssl.SSLContext | None = None) -> None:
        self.store = store
        self.outbox = outbox
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_queue = max_queue
        self.stats_interval = stats_interval
        self.core_context = core_context
        self.http = HttpSender(concurrency, tls)
        self.mqtt = MqttSender(tls)
        self.slots = asyncio.Semaphore(concurrency)
        self.workers: dict[tuple[str, str], _Worker] = {}
        self.stats: dict[tuple[str, str], Stats] = {}
        # when each subscription last sent (monotonic): throttling outlives the idle workers
        self.last_sent: dict[tuple[str, str], float] = {}
        self.is_live: IsLive = lambda tenant, sub_id: True
        # counters are stored per process (one document each, summed when read): no two processes
        # ever update the same document, so no increment is lost even where updates are not atomic
        self.instance = uuid.uuid4().hex[:16]
        self._stats_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await self.http.start()
        self._stats_task = asyncio.create_task(self._stats_loop(), name="notification-stats")

    async def close(self) -> None:
        self._closing = True
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            await stop(t)
        await stop(self._stats_task)
        await self.flush_stats()
        await self.http.close()
        await self.mqtt.close()

    # ------------------------------------------------------------ queueing
    def enqueue(self, refs: list[tuple[Ref, dict[str, Any]]]) -> None:
        for ref, item in refs:
            key = (ref.tenant, item["subscriptionId"])
            w = self.workers.get(key)
            if w is None:
                w = self.workers[key] = _Worker(ref.tenant, item["subscriptionId"])
            if len(w.queue) >= self.max_queue or w.spill:
                w.spill.append(ref)  # kept in the outbox only; read back when the queue drains
            else:
                w.queue.append((ref, item))
            if w.task is None:
                w.task = asyncio.create_task(self._run(w), name=f"notify-{w.sub_id}")

    @property
    def pending(self) -> int:
        return sum(len(w.queue) + len(w.spill) for w in self.workers.values())

    async def _refill(self, w: _Worker) -> None:
        while w.spill and len(w.queue) < self.max_queue:
            ref = w.spill.popleft()
            item = await self.outbox.load(ref)
            if item is None:
                self.outbox.done(ref)
            else:
                w.queue.append((ref, item))

    async def _run(self, w: _Worker) -> None:
        try:
            while not self._closing:
                if not w.queue:
                    if w.spill:
                        await self._refill(w)
                        continue
                    break
                throttling = w.queue[0][1].get("throttling")
                if throttling:
                    wait = self.last_sent.get((w.tenant, w.sub_id), 0.0) + throttling - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        await self._refill(w)
                    batch = list(w.queue)
                    w.queue.clear()
                else:
                    batch = [w.queue.popleft()]
                if not self.is_live(w.tenant, w.sub_id):  # subscription deleted meanwhile
                    for ref, _ in batch:
                        self.outbox.done(ref)
                    continue
                try:
                    await self._deliver(w, batch)
                except Exception:  # noqa: BLE001 - a bug in one notification must not stop the worker
                    log.exception("notification delivery crashed", extra={"fields": {"subscription": w.sub_id}})
                    for ref, _ in batch:
                        self.outbox.done(ref)
        finally:
            w.task = None
            if not w.queue and not w.spill and self.workers.get((w.tenant, w.sub_id)) is w:
                del self.workers[(w.tenant, w.sub_id)]

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: base·2^attempt, capped, times a random 0.5–1."""
        return min(self.retry_cap, self.retry_base * 2 ** attempt) * (0.5 + random.random() / 2)

    async def _deliver(self, w: _Worker, batch: list[tuple[Ref, dict[str, Any]]]) -> None:
        item = merge_items([it for _, it in batch])
        error = ""
        for attempt in range(self.max_attempts):
            item["notification"]["notifiedAt"] = now = now_iso()
            try:
                async with self.slots:
                    if attempt == 0:
                        self._count_sent(w, now)
                    await self.send(item)
            except DeliveryError as exc:
                error = str(exc)
                self._count(w, ok=False, final=attempt == self.max_attempts - 1, now=now)
                if attempt < self.max_attempts - 1:
                    await asyncio.sleep(self.backoff(attempt))
                continue
            self.last_sent[(w.tenant, w.sub_id)] = time.monotonic()
            self._count(w, ok=True, final=True, now=now)
            break
        else:
            log.warning("notification failed for good", extra={"fields": {
                "subscription": w.sub_id, "tenant": w.tenant, "id": item["notification"]["id"],
                "attempts": self.max_attempts, "error": error}})
            self.last_sent[(w.tenant, w.sub_id)] = time.monotonic()
        for ref, _ in batch:
            self.outbox.done(ref)

    async def send(self, item: dict[str, Any]) -> None:
        endpoint = item["endpoint"]
        uri: str = endpoint["uri"]
        timeout = self.timeout
        if endpoint.get("timeout"):
            timeout = min(timeout, endpoint["timeout"] / 1000)
        headers, body = wire_headers(item, self.core_context)
        if uri[:4].lower() == "mqtt":
            payload = orjson.dumps({"metadata": headers, "body": body})
            await self.mqtt.send(uri, _pairs(endpoint.get("notifierInfo")), payload, timeout)
        else:
            await self.http.send(uri, headers, orjson.dumps(body), timeout)

    # ------------------------------------------------------------ counters
    def _count_sent(self, w: _Worker, now: str) -> None:
        """A notification counts as sent when its first attempt goes out (as in Orion-LD), not when
        the receiver's answer is read: a receiver that reads the subscription as soon as it has the
        notification must already see it counted. Retries do not count again."""
        s = self.stats.setdefault((w.tenant, w.sub_id), Stats())
        s.timesSent += 1
        s.lastNotification = now

    def _count(self, w: _Worker, ok: bool, final: bool, now: str) -> None:
        """The outcome of an attempt: its time, and a failure for good once the last one failed."""
        s = self.stats.setdefault((w.tenant, w.sub_id), Stats())
        s.lastNotification = now
        if ok:
            s.lastSuccess = now
        else:
            s.lastFailure = now
            if final:
                s.timesFailed += 1

    def unflushed(self, tenant: str, sub_id: str) -> Stats | None:
        return self.stats.get((tenant, sub_id))

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            try:
                await self.flush_stats()
            except Exception:  # noqa: BLE001 - kept in memory and retried
                log.exception("cannot persist notification counters")

    async def flush_stats(self) -> None:
        """Add the in-memory counters to this process's stored share (one ``$inc``/``$max`` each)."""
        pending, self.stats = self.stats, {}
        async with self.store.batch():  # one commit for all subscriptions (SQLite)
            await self._flush_stats(pending)

    def _shard(self, sub_id: str) -> str:
        return f"{sub_id} {self.instance}"  # a space never occurs in a subscription id (a URI)

    async def _flush_stats(self, pending: dict[tuple[str, str], Stats]) -> None:
        items = list(pending.items())
        for n, ((tenant, sub_id), s) in enumerate(items):
            inc = {k: v for k, v in (("timesSent", s.timesSent), ("timesFailed", s.timesFailed)) if v}
            latest = {k: getattr(s, k) for k in _LAST if getattr(s, k)}
            try:
                await self.store.add_to_doc(tenant, STATUS, self._shard(sub_id), inc,
                                            {**latest, "key": self._shard(sub_id)})
            except Exception:
                for key, left in items[n:]:  # kept for the next flush
                    self.stats.setdefault(key, Stats()).absorb(left)
                raise

    async def _stored(self, tenant: str, sub_id: str) -> dict[str, Any]:
        """The counters of every process (one document each) added up."""
        docs = await self.store.list_docs(tenant, STATUS, prefix=f"{sub_id} ")
        legacy = await self.store.get_doc(tenant, STATUS, sub_id)  # written before counters were per process
        return combine([legacy, *docs] if legacy else docs)

    async def status_of(self, tenant: str, sub_id: str) -> dict[str, Any]:
        stored = await self._stored(tenant, sub_id)
        local = self.stats.get((tenant, sub_id))
        return local.merged(stored) if local else stored

    async def forget(self, tenant: str, sub_id: str) -> None:
        self.stats.pop((tenant, sub_id), None)
        self.last_sent.pop((tenant, sub_id), None)
        shards = await self.store.list_docs(tenant, STATUS, prefix=f"{sub_id} ")
        await self.store.delete_docs(tenant, STATUS, [sub_id, *(d["key"] for d in shards if "key" in d)])


_LAST = ("lastNotification", "lastSuccess", "lastFailure")


def combine(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counter documents added up: sums of the counts, the latest of each timestamp."""
    out: dict[str, Any] = {}
    for d in docs:
        for key in ("timesSent", "timesFailed"):
            if d.get(key):
                out[key] = out.get(key, 0) + d[key]
        for key in _LAST:
            if d.get(key) and d[key] > out.get(key, ""):
                out[key] = d[key]
    return out


def merge_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Several pending notifications of one subscription as one: the latest state of each entity."""
    if len(items) == 1:
        return {**items[0], "notification": dict(items[0]["notification"])}
    last = items[-1]
    note = dict(last["notification"])
    data = note["data"]
    if isinstance(data, dict):  # GeoJSON FeatureCollection
        features: dict[Any, Any] = {}
        for it in items:
            for f in it["notification"]["data"].get("features", []):
                features.pop(f.get("id"), None)
                features[f.get("id")] = f
        note["data"] = {**data, "features": list(features.values())}
    else:
        entities: dict[Any, Any] = {}
        for it in items:
            for e in it["notification"]["data"]:
                entities.pop(e.get("id"), None)
                entities[e.get("id")] = e
        note["data"] = list(entities.values())
    return {**last, "notification": note}
