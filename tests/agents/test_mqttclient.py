"""The agents' MQTT 5 client against the real Mosquitto: subscribe, QoS 1 in and out, acks that belong
to their connection, redelivery on a resumed session, shared subscriptions, keep-alive."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest

from agents import mqttclient
from tests.services import Services

Received = list[tuple[str, bytes, int, int]]


def _address(services: Services) -> tuple[str, int]:
    u = urlsplit(services.mqtt_url)
    return u.hostname or "127.0.0.1", u.port or 1883


async def _open(services: Services, client_id: str, got: Received, *, ack: bool = False,
                **kw: object) -> mqttclient.Connection:
    def on_message(conn: mqttclient.Connection, topic: str, payload: bytes, qos: int, mid: int) -> None:
        got.append((topic, payload, qos, mid))
        if ack and qos:
            conn.ack(mid)

    host, port = _address(services)
    return await mqttclient.connect(host, port, client_id, on_message, **kw)  # type: ignore[arg-type]


async def _until(check: object, what: str) -> None:
    for _ in range(300):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def test_qos1_round_trip_and_ack(services: Services) -> None:
    topic = f"t/{uuid.uuid4().hex}"
    got: Received = []
    sub = await _open(services, "sub-" + uuid.uuid4().hex, got, ack=True)
    pub = await _open(services, "pub-" + uuid.uuid4().hex, [])
    try:
        assert await sub.subscribe([(topic + "/#", 1)]) == [1]
        await pub.publish(topic + "/a", b"one", qos=1)  # returns after Mosquitto's PUBACK
        await pub.publish(topic + "/b", b"two", qos=0)
        await pub.publish(topic + "/c", b"x" * 300_000, qos=1)  # a packet over several reads
        await _until(lambda: len(got) == 3, "three messages")
        assert [(t, p[:5], q) for t, p, q, _ in got] == [(topic + "/a", b"one", 1), (topic + "/b", b"two", 0),
                                                          (topic + "/c", b"xxxxx", 1)]
        assert len(got[2][1]) == 300_000
    finally:
        await sub.disconnect(0)
        await pub.disconnect()


async def test_unacked_messages_come_back_on_the_resumed_session(services: Services) -> None:
    """At-least-once: what was received but not acked is redelivered after a network failure; an ack
    sent for the dead connection is dropped, not written to the next one."""
    topic, client_id = f"t/{uuid.uuid4().hex}", "agent-" + uuid.uuid4().hex
    got: Received = []
    first = await _open(services, client_id, got, clean_start=True, session_expiry=60)
    pub = await _open(services, "pub-" + uuid.uuid4().hex, [])
    try:
        await first.subscribe([(topic, 1)])
        for i in range(3):
            await pub.publish(topic, b"%d" % i, qos=1)
        await _until(lambda: len(got) == 3, "three messages")
        first.ack(got[0][3])  # only the first one was "written"
        await asyncio.sleep(0.1)
        first.abort()
        await first.closed
        first.ack(got[1][3])  # too late: dropped
        again: Received = []
        second = await _open(services, client_id, again, clean_start=False, session_expiry=60)
        assert second.session_present
        await _until(lambda: len(again) == 2, "the two unacked messages redelivered")
        assert [p for _, p, _, _ in again] == [b"1", b"2"]
        for _, _, _, mid in again:
            second.ack(mid)
        await asyncio.sleep(0.1)
        second.abort()
        third_got: Received = []
        third = await _open(services, client_id, third_got, clean_start=False, session_expiry=60)
        await asyncio.sleep(0.3)
        assert third_got == []  # everything was acked
        await third.disconnect(0)  # ends the session
    finally:
        await pub.disconnect()


async def test_shared_subscription_splits_the_traffic(services: Services) -> None:
    topic, group = f"t/{uuid.uuid4().hex}", "g" + uuid.uuid4().hex[:6]
    a_got: Received = []
    b_got: Received = []
    a = await _open(services, "a-" + uuid.uuid4().hex, a_got, ack=True)
    b = await _open(services, "b-" + uuid.uuid4().hex, b_got, ack=True)
    pub = await _open(services, "pub-" + uuid.uuid4().hex, [])
    try:
        await a.subscribe([(f"$share/{group}/{topic}/+", 1)])
        await b.subscribe([(f"$share/{group}/{topic}/+", 1)])
        await asyncio.gather(*(pub.publish(f"{topic}/{i}", b"m", qos=1) for i in range(100)))
        await _until(lambda: len(a_got) + len(b_got) == 100, "100 messages in all")
        assert a_got and b_got
        assert sorted(t for t, *_ in a_got + b_got) == sorted(f"{topic}/{i}" for i in range(100))
    finally:
        for c in (a, b, pub):
            await c.disconnect()


async def test_keepalive_and_refusals(services: Services) -> None:
    conn = await _open(services, "ka-" + uuid.uuid4().hex, [], keepalive=1)
    try:
        await asyncio.sleep(2.5)  # PINGREQs keep it open past 1.5 keep-alive periods
        assert conn.transport is not None and not conn.closed.done()
    finally:
        await conn.disconnect()
    with pytest.raises(mqttclient.MqttError):
        await conn.publish("t/x", b"", qos=1)
    host, _ = _address(services)
    from tests.services import free_port

    with pytest.raises(mqttclient.MqttError):
        await mqttclient.connect(host, free_port(), "nobody", lambda *a: None, timeout=2)


def test_packet_encoding() -> None:
    assert mqttclient._varint(0) == b"\x00" and mqttclient._varint(321) == b"\xc1\x02"  # noqa: SLF001
    assert mqttclient._read_varint(b"\xc1\x02", 0) == (321, 2)  # noqa: SLF001
    assert mqttclient._read_varint(b"\xc1", 0) is None  # noqa: SLF001
    pkt = mqttclient.publish_packet("a/b", b"hi", 1, False, 7)
    assert pkt == b"\x32\x0a\x00\x03a/b\x00\x07\x00hi"
    props, end = mqttclient.parse_properties(b"\x08\x21\x00\x14\x13\x00\x3c\x24\x01", 0)
    assert props == {0x21: 20, 0x13: 60, 0x24: 1} and end == 9
