"""A small MQTT 5 client on an asyncio ``Protocol``: what the agents need, at a few µs per message.

Why not aiomqtt/paho: paho parses one packet per socket wake-up in Python and aiomqtt adds futures and
tasks per message; together ~250–450 µs of CPU per received message, more than the agents' own work.
gmqtt is faster but acks from a per-message task on whatever connection is current, so a delayed ack
could land on a reconnected session with a reused packet id. Here a connection parses every complete
packet of a read in one pass and hands messages to a callback synchronously, acks are explicit and
belong to the :class:`Connection` that received the message (an ack for a closed connection is dropped,
so Mosquitto redelivers), and PUBACKs written in the same loop iteration go out in one write.

Scope (all the agents use): CONNECT with Clean Start / Session Expiry / Receive Maximum, SUBSCRIBE
(MQTT 5 options byte, shared subscriptions are just filters), PUBLISH in and out at QoS 0/1, PUBACK,
keep-alive PINGREQ, DISCONNECT with a Session Expiry. No QoS 2, no topic aliases (we announce none,
so the server sends none), no AUTH exchange, no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

# property id → size (int) or kind; used to read CONNACK/SUBACK properties (PUBLISH ones are skipped)
_PROPS: dict[int, int | str] = {
    0x01: 1, 0x17: 1, 0x19: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1,
    0x13: 2, 0x21: 2, 0x22: 2, 0x23: 2, 0x02: 4, 0x11: 4, 0x18: 4, 0x27: 4, 0x0B: "varint",
    0x03: "str", 0x08: "str", 0x12: "str", 0x15: "str", 0x1A: "str", 0x1C: "str", 0x1F: "str",
    0x09: "str", 0x16: "str", 0x26: "pair",
}
SESSION_EXPIRY, RECEIVE_MAXIMUM, SERVER_KEEP_ALIVE, REASON_STRING = 0x11, 0x21, 0x13, 0x1F

OnMessage = Callable[["Connection", str, bytes, int, int], None]


class MqttError(Exception):
    """Refused connection or subscription, protocol error, or the connection is gone."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None if the buffer ends first."""
    value = shift = 0
    while pos < len(buf):
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise MqttError("malformed variable byte integer")
    return None


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def _properties(props: dict[int, int]) -> bytes:
    out = bytearray()
    for pid, value in props.items():
        size = _PROPS[pid]
        out.append(pid)
        out += value.to_bytes(size, "big") if isinstance(size, int) else _varint(value)
    return _varint(len(out)) + bytes(out)


def parse_properties(data: bytes, pos: int) -> tuple[dict[int, Any], int]:
    """The property block at ``pos``: ({id: value}, position after it)."""
    got = _read_varint(data, pos)
    if got is None:
        raise MqttError("truncated properties")
    length, pos = got
    end = pos + length
    props: dict[int, Any] = {}
    while pos < end:
        pid = data[pos]
        pos += 1
        kind = _PROPS.get(pid)
        if isinstance(kind, int):
            props[pid] = int.from_bytes(data[pos:pos + kind], "big")
            pos += kind
        elif kind == "varint":
            got = _read_varint(data, pos)
            if got is None:
                raise MqttError("truncated property")
            props[pid], pos = got
        elif kind in ("str", "pair"):
            for _ in range(2 if kind == "pair" else 1):
                n = int.from_bytes(data[pos:pos + 2], "big")
                props[pid] = bytes(data[pos + 2:pos + 2 + n]).decode(errors="replace")
                pos += 2 + n
        else:
            raise MqttError(f"unknown property 0x{pid:02x}")
    return props, end


def connect_packet(client_id: str, *, clean_start: bool, keepalive: int, session_expiry: int,
                   receive_maximum: int, username: str | None = None, password: str | None = None) -> bytes:
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    props = {SESSION_EXPIRY: session_expiry, RECEIVE_MAXIMUM: receive_maximum}
    body = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + _properties(props) + _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _str(password)
    return _packet(CONNECT, 0, body)


def publish_packet(topic: str, payload: bytes, qos: int, retain: bool, mid: int = 0) -> bytes:
    body = _str(topic) + (struct.pack("!H", mid) if qos else b"") + b"\x00" + payload
    return _packet(PUBLISH, qos << 1 | int(retain), body)


class Connection(asyncio.Protocol):
    """One MQTT session over one TCP connection. ``on_message(conn, topic, payload, qos, mid)`` runs in
    ``data_received`` for each PUBLISH, in arrival order; QoS 1 messages wait for :meth:`ack`."""

    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.session_present = False
        self.server_receive_maximum = 65535
        self.keepalive = 0
        self._buf = bytearray()
        self._connack: asyncio.Future[tuple[int, dict[int, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting: dict[tuple[int, int], asyncio.Future[list[int]]] = {}  # (SUBACK|PUBACK, mid) → future
        self._next_mid = 0
        self._out = bytearray()  # acks batched within one loop iteration
        self._flush_scheduled = False
        self._sent_at = 0.0
        self._pong_due: float | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._publish_slots: asyncio.Semaphore | None = None

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = MqttError(f"connection lost: {exc!r}" if exc else "connection closed")
        if not self.closed.done():
            self.closed.set_result(None)
        for fut in [self._connack, *self._waiting.values()]:
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # nobody may be waiting any more: mark the exception retrieved
        self._waiting.clear()
        if self._pinger is not None:
            self._pinger.cancel()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
            data = bytes(buf)
        pos, end = 0, len(data)
        try:
            while pos + 2 <= end:
                header = data[pos]
                got = _read_varint(data, pos + 1)
                if got is None:
                    break
                length, start = got
                stop = start + length
                if stop > end:
                    break
                if header >> 4 == PUBLISH:
                    qos = header >> 1 & 3
                    tlen = data[start] << 8 | data[start + 1]
                    p = start + 2 + tlen
                    topic = data[start + 2:p].decode(errors="replace")
                    mid = 0
                    if qos:
                        mid = data[p] << 8 | data[p + 1]
                        p += 2
                    plen = data[p]
                    if plen < 0x80:
                        p += 1 + plen
                    else:
                        got = _read_varint(data, p)
                        assert got is not None
                        p = got[0] + got[1]
                    self.on_message(self, topic, data[p:stop], qos, mid)
                else:
                    self._control(header, data[start:stop])
                pos = stop
        except MqttError:
            self.abort()
            return
        if pos == end:
            buf.clear()
        else:
            self._buf = bytearray(data[pos:])

    def _control(self, header: int, body: bytes) -> None:
        kind = header >> 4
        if kind == CONNACK:
            self.session_present = bool(body[0] & 1)
            props, _ = parse_properties(body, 2)
            if not self._connack.done():
                self._connack.set_result((body[1], props))
        elif kind in (PUBACK, SUBACK):
            mid = body[0] << 8 | body[1]
            fut = self._waiting.pop((kind, mid), None)
            if fut is not None and not fut.done():
                if kind == PUBACK:
                    fut.set_result([body[2]] if len(body) > 2 else [0])
                else:
                    _, pos = parse_properties(body, 2)
                    fut.set_result(list(body[pos:]))
        elif kind == PINGRESP:
            self._pong_due = None
        elif kind == DISCONNECT:
            self.abort()
        else:
            raise MqttError(f"unexpected packet type {kind}")

    # ------------------------------------------------------------------ session
    async def handshake(self, packet: bytes, timeout: float) -> None:
        self._send(packet)
        code, props = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        if code >= 0x80:
            raise MqttError(f"connection refused: reason 0x{code:02x} {props.get(REASON_STRING, '')}".rstrip())
        self.server_receive_maximum = props.get(RECEIVE_MAXIMUM, 65535)
        self._publish_slots = asyncio.Semaphore(self.server_receive_maximum)
        self.keepalive = props.get(SERVER_KEEP_ALIVE, self.keepalive)
        if self.keepalive:
            self._pinger = asyncio.get_running_loop().create_task(self._ping(), name="mqtt-keepalive")

    async def _ping(self) -> None:
        loop = asyncio.get_running_loop()
        while self.transport is not None:
            await asyncio.sleep(self.keepalive / 2)
            now = loop.time()
            if self._pong_due is not None and now > self._pong_due:
                self.abort()  # no PINGRESP within a keep-alive period: the server or the path is gone
                return
            if now - self._sent_at >= self.keepalive / 2 and self._pong_due is None:
                self._pong_due = now + self.keepalive
                self._send(b"\xc0\x00")

    def _mid(self) -> int:
        for _ in range(65535):
            self._next_mid = self._next_mid % 65535 + 1
            if (PUBACK, self._next_mid) not in self._waiting and (SUBACK, self._next_mid) not in self._waiting:
                return self._next_mid
        raise MqttError("no free packet identifier")

    async def subscribe(self, filters: list[tuple[str, int]], timeout: float = 10.0) -> list[int]:
        """SUBSCRIBE (options byte = maximum QoS); MqttError when the server refuses a filter."""
        mid = self._mid()
        body = struct.pack("!H", mid) + b"\x00" + b"".join(_str(f) + bytes([qos]) for f, qos in filters)
        fut = self._expect(SUBACK, mid)
        self._send(_packet(SUBSCRIBE, 2, body))
        codes = await asyncio.wait_for(fut, timeout)
        refused = [f for (f, _), c in zip(filters, codes, strict=False) if c >= 0x80]
        if refused:
            raise MqttError(f"subscription refused: {', '.join(refused)}")
        return codes

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                      timeout: float = 10.0) -> None:
        """QoS 0: written; QoS 1: returns when the server acknowledged (its Receive Maximum respected)."""
        if not qos:
            self._send(publish_packet(topic, payload, 0, retain))
            return
        assert self._publish_slots is not None, "handshake() first"
        async with self._publish_slots:
            mid = self._mid()
            fut = self._expect(PUBACK, mid)
            self._send(publish_packet(topic, payload, 1, retain, mid))
            [code] = await asyncio.wait_for(fut, timeout)
        if code >= 0x80:
            raise MqttError(f"publish to {topic} refused: reason 0x{code:02x}")

    def ack(self, mid: int) -> None:
        """PUBACK a QoS 1 message of this connection; dropped when the connection is gone (redelivery)."""
        if self.transport is None:
            return
        self._out += b"\x40\x02" + mid.to_bytes(2, "big")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def disconnect(self, session_expiry: int | None = None) -> None:
        """DISCONNECT (normal); ``session_expiry=0`` ends the session on the server now."""
        if self.transport is not None:
            props = _properties({SESSION_EXPIRY: session_expiry}) if session_expiry is not None else b"\x00"
            self._send(_packet(DISCONNECT, 0, b"\x00" + props))
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), 5)

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT (what a network failure looks like)."""
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ plumbing
    def _expect(self, kind: int, mid: int) -> asyncio.Future[list[int]]:
        if self.transport is None:
            raise MqttError("not connected")
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiting[(kind, mid)] = fut
        return fut

    def _send(self, packet: bytes) -> None:
        if self.transport is None:
            raise MqttError("not connected")
        self._flush()
        self.transport.write(packet)
        self._sent_at = asyncio.get_running_loop().time()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None:
            self.transport.write(bytes(self._out))
            self._sent_at = asyncio.get_running_loop().time()
        self._out.clear()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


async def connect(host: str, port: int, client_id: str, on_message: OnMessage, *, clean_start: bool = True,
                  keepalive: int = 60, session_expiry: int = 0, receive_maximum: int = 65535,
                  username: str | None = None, password: str | None = None, timeout: float = 10.0) -> Connection:
    """Open a TCP connection (TCP_NODELAY: small packets must not wait for Nagle) and complete CONNECT."""
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(loop.create_connection(lambda: Connection(on_message), host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise MqttError(f"cannot connect to {host}:{port}: {exc!r}") from None
    conn.keepalive = keepalive
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:
        import socket

        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await conn.handshake(connect_packet(client_id, clean_start=clean_start, keepalive=keepalive,
                                            session_expiry=session_expiry, receive_maximum=receive_maximum,
                                            username=username, password=password), timeout)
    except (MqttError, TimeoutError) as exc:
        conn.abort()
        raise exc if isinstance(exc, MqttError) else MqttError("no CONNACK") from None
    return conn
