"""MQTT southbound through Mosquitto: measures, command results and configuration requests in, commands out.

Topics (leading ``/`` and the ``json/`` / ``ul/`` prefix optional, as in iotagent-json and iotagent-ul):
``{apikey}/{deviceId}/attrs[/{attr}]``, ``.../cmdexe``, ``.../configuration/commands``; the agent publishes
commands on ``/{apikey}/{deviceId}/cmd`` and configuration on ``/{apikey}/{deviceId}/configuration/values``.
Without a prefix the payload decides: JSON objects/arrays are IoTA-JSON, ``k|v`` text is UltraLight.

Scale-out: MQTT v5 shared subscriptions (``$share/<group>/...``), so every agent process sharing the group
gets a part of the traffic. Delivery: QoS 1 subscriptions, a message is acknowledged only after the write
that carried it finished (or it was refused for good), on the connection that received it, so an agent
that dies mid-write gets it redelivered on its persistent session. The session's Receive Maximum bounds
the unacknowledged messages Mosquitto sends us, which is the backpressure: when the write queue is full
the consumer waits, acks stop, and Mosquitto holds back; the socket is not read while too many received
messages wait for the consumer. A supervisor reconnects with exponential backoff and jitter. The MQTT
client is :mod:`agents.mqttclient` (why: see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from agents import iotajson, mqttclient, ultralight
from agents.command_payload import is_ultralight
from agents.commands import Commands
from agents.errors import IotaError, PayloadError
from agents.metrics import AgentMetrics
from agents.southbound import JSON, UL, Southbound

log = logging.getLogger("agents.mqtt")

TRANSPORT = "mqtt"
TURN = 200  # messages handled before the consumer lets the writer and the socket reader run
INBOX_HIGH = 5000  # received, not yet handled: stop reading the socket (bounds QoS 0 bursts too)
INBOX_LOW = 1000  # ... and read again below this
KINDS = ("attrs", "cmdexe", "configuration")
FILTERS = (
    "+/+/attrs", "+/+/attrs/+", "+/+/+/attrs", "+/+/+/attrs/+", "+/+/+/+/attrs", "+/+/+/+/attrs/+",
    "+/+/cmdexe", "+/+/+/cmdexe", "+/+/+/+/cmdexe",
    "+/+/configuration/commands", "+/+/+/configuration/commands", "+/+/+/+/configuration/commands",
)


@dataclass(frozen=True, slots=True)
class Topic:
    prefix: str  # "json", "ul" or ""
    apikey: str
    device_id: str
    kind: str  # attrs, cmdexe, configuration
    attr: str | None = None


def parse_topic(topic: str) -> Topic | None:
    """``[/][json/|ul/]{apikey}/{id}/{attrs[/attr]|cmdexe|configuration/commands}``; None if not ours."""
    parts = topic[1:].split("/") if topic.startswith("/") else topic.split("/")
    prefix = ""
    if len(parts) >= 4 and parts[0] in ("json", "ul") and parts[3] in KINDS:
        prefix, parts = parts[0], parts[1:]
    if len(parts) < 3 or not parts[0] or not parts[1]:
        return None
    apikey, device_id, kind, rest = parts[0], parts[1], parts[2], parts[3:]
    if kind == "attrs" and len(rest) <= 1:
        return Topic(prefix, apikey, device_id, kind, rest[0] if rest else None)
    if kind == "cmdexe" and not rest:
        return Topic(prefix, apikey, device_id, kind)
    if kind == "configuration" and rest == ["commands"]:
        return Topic(prefix, apikey, device_id, kind)
    return None


def looks_like_json(payload: bytes) -> bool:
    head = payload.lstrip()[:1]
    return head in (b"{", b"[")


def config_dt(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


Inbound = tuple[mqttclient.Connection, str, bytes, int, int]  # connection, topic, payload, qos, mid


class MqttTransport:
    def __init__(self, url: str, south: Southbound, commands: Commands, metrics: AgentMetrics, *,
                 share_group: str = "iota", identifier: str | None = None, receive_maximum: int = 10000,
                 session_expiry: int = 300, max_backoff: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.username = parts.username
        self.password = parts.password
        self.south = south
        self.commands = commands
        self.metrics = metrics
        self.share_group = share_group
        self.identifier = identifier or f"iota-{socket.gethostname()}-{random.getrandbits(32):08x}"
        self.receive_maximum = receive_maximum
        self.session_expiry = session_expiry
        self.max_backoff = max_backoff
        self.client: mqttclient.Connection | None = None
        self.connected = False
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._inbox: deque[Inbound] = deque()
        self._wake = asyncio.Event()
        self._paused: set[mqttclient.Connection] = set()
        self._pending: set[asyncio.Future[Any]] = set()
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.south.ingestor.upstream.append(self._inbox.__len__)
        self._consumer = asyncio.create_task(self._consume(), name="iota-mqtt-consumer")
        self._task = asyncio.create_task(self._supervise(), name="iota-mqtt")

    async def wait_ready(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def close(self) -> None:
        """Handle what was received, finish the writes in flight (so their messages get acked), then end
        the session for good."""
        self._closing = True
        with contextlib.suppress(ValueError):
            self.south.ingestor.upstream.remove(self._inbox.__len__)
        for _ in range(500):
            if not self._inbox or self._consumer is None or self._consumer.done():
                break
            await asyncio.sleep(0.01)
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=10)
        client = self.client
        if client is not None:
            # everything acked: end the session so Mosquitto keeps nothing for us. Otherwise the
            # session stays (its expiry interval) and the unacked messages come back on restart.
            await client.disconnect(0 if not self._pending and not self._inbox else None)
        for task in (self._task, self._consumer):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._task is not None and not self._task.cancelled() and self._task.exception() is not None:
            log.warning("MQTT supervisor ended with %r", self._task.exception())

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._closing:
            try:
                client = await mqttclient.connect(
                    self.host, self.port, self.identifier, self._received, clean_start=False, keepalive=30,
                    session_expiry=self.session_expiry, receive_maximum=self.receive_maximum,
                    username=self.username, password=self.password)
                try:
                    self.client = client
                    await client.subscribe([(f"$share/{self.share_group}/{f}", 1) for f in FILTERS])
                    if self._closing:
                        return
                    self.connected = True
                    self._ready.set()
                    backoff = 0.5
                    log.info("MQTT agent subscribed", extra={"fields": {"broker": f"{self.host}:{self.port}",
                                                                        "group": self.share_group}})
                    await client.closed
                    if not self._closing:
                        log.warning("MQTT connection lost; reconnecting in ~%.1fs", backoff)
                finally:
                    self.connected = False
                    self._ready.clear()
                    if self.client is client:
                        self.client = None
                    client.abort()
            except asyncio.CancelledError:
                raise
            except mqttclient.MqttError as exc:
                if self._closing:
                    return
                log.warning("MQTT connection failed (%s); reconnecting in ~%.1fs", exc, backoff)
            except Exception:  # noqa: BLE001 - the supervisor never dies
                log.exception("MQTT consumer failed; reconnecting in ~%.1fs", backoff)
            if self._closing:
                return
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, self.max_backoff)

    # ------------------------------------------------------------------ outbound
    async def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish (commands, configuration answers); QoS 1 returns once Mosquitto acknowledged it."""
        await self.wait_ready()
        assert self.client is not None
        if self.client in self._paused:  # its PUBACK must be read even while the inbox is full
            self._paused.discard(self.client)
            self.client.resume_reading()
        data = payload.encode() if isinstance(payload, str) else payload
        await self.client.publish(topic, data, qos=qos, retain=retain)

    # ------------------------------------------------------------------ inbound
    def _received(self, conn: mqttclient.Connection, topic: str, payload: bytes, qos: int, mid: int) -> None:
        """Called by the connection for each PUBLISH, in order: queue it for the consumer."""
        self._inbox.append((conn, topic, payload, qos, mid))
        if len(self._inbox) >= INBOX_HIGH and conn not in self._paused:
            self._paused.add(conn)
            conn.pause_reading()
        self._wake.set()

    async def _consume(self) -> None:
        """One consumer, so a device's measures are mapped and queued in arrival order."""
        inbox = self._inbox
        while True:
            if not inbox:
                self._wake.clear()
                await self._wake.wait()
            for _ in range(TURN):
                if not inbox:
                    break
                if self._paused and len(inbox) < INBOX_LOW:
                    for conn in self._paused:
                        conn.resume_reading()
                    self._paused.clear()
                try:
                    await self._handle(*inbox.popleft())
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - _handle already answered for the message
                    log.exception("MQTT consumer error")
            await asyncio.sleep(0)

    @staticmethod
    def _ack(client: mqttclient.Connection, qos: int, mid: int) -> None:
        if qos:
            client.ack(mid)

    def _ack_when_done(self, client: mqttclient.Connection, topic: str, qos: int, mid: int,
                       future: asyncio.Future[Any]) -> None:
        self._pending.add(future)

        def done(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if not f.cancelled() and f.exception() is not None:
                exc = f.exception()
                log.warning("MQTT measure on %s not written: %s", topic, getattr(exc, "message", repr(exc)))
            if qos:
                client.ack(mid)  # dropped if that connection is gone: Mosquitto redelivers

        future.add_done_callback(done)

    async def _handle(self, client: mqttclient.Connection, name: str, payload: bytes, qos: int, mid: int) -> None:
        topic = parse_topic(name)
        if topic is None:
            self._ack(client, qos, mid)
            return
        try:
            if topic.kind == "attrs":
                future = await self._measures(topic, payload)
            elif topic.kind == "cmdexe":
                future = await self._command_result(topic, payload)
            else:
                await self._configuration(topic, payload)
                future = None
        except IotaError as exc:
            if isinstance(exc, PayloadError):
                self.metrics.received[TRANSPORT] += 1
                self.south.reject(TRANSPORT, exc, 1, f"MQTT payload on {name}")
            self._ack(client, qos, mid)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a poison message must not loop through reconnects forever
            log.exception("MQTT message on %s could not be handled", name)
            self.metrics.received[TRANSPORT] += 1
            self.metrics.reject(TRANSPORT, "INTERNAL_ERROR")
            self._ack(client, qos, mid)
            return
        if future is None:
            self._ack(client, qos, mid)
        else:
            self._ack_when_done(client, name, qos, mid, future)

    def _is_ul(self, topic: Topic, payload: bytes) -> bool:
        if topic.prefix:
            return topic.prefix == "ul"
        return not looks_like_json(payload) and b"|" in payload

    async def _measures(self, topic: Topic, payload: bytes) -> asyncio.Future[None]:
        ul = self._is_ul(topic, payload)
        if topic.attr is not None:
            if ul:
                value = ultralight.cast_value(payload.decode("utf-8", errors="replace"))
            else:
                value = iotajson.parse_single_attribute(payload)
            groups = [iotajson.attribute_measure(topic.attr, value)]
        elif ul:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise ultralight.UltralightParseError("payload is not UTF-8") from None
            groups = ultralight.parse_measures(text)
        else:
            groups = iotajson.parse_measures(payload)
        return await self.south.measures(TRANSPORT, UL if ul else JSON, topic.apikey, topic.device_id, groups)

    async def _command_result(self, topic: Topic, payload: bytes) -> asyncio.Future[None]:
        if self._is_ul(topic, payload) or (not topic.prefix and b"@" in payload and not looks_like_json(payload)):
            res = ultralight.parse_command_result(payload.decode("utf-8", errors="replace"))
            results = {res.command: res.result}
        else:
            results = iotajson.parse_command_results(payload)
        return await self.south.command_results(TRANSPORT, topic.apikey, topic.device_id, results)

    async def _configuration(self, topic: Topic, payload: bytes) -> None:
        ul = self._is_ul(topic, payload) or (not topic.prefix and not looks_like_json(payload))
        if ul:
            req = ultralight.parse_configuration_request(payload.decode("utf-8", errors="replace"))
            fields = req.attributes
        else:
            jreq = iotajson.parse_configuration_request(payload)
            fields = jreq.fields
        dev = await self.south.device(TRANSPORT, UL if ul else JSON, topic.apikey, topic.device_id,
                                      autoprovision=False)
        values = await self.south.configuration(dev, fields)
        if ul or is_ultralight(dev):
            out: str = ultralight.format_configuration(dev.device_id, values, config_dt())
        else:
            out = iotajson.format_configuration(values, config_dt())
        await self.publish(f"/{topic.apikey}/{topic.device_id}/configuration/values", out, 1)
