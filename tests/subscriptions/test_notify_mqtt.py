"""MQTT notifications to the real Mosquitto, read back by a real aiomqtt subscriber."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiomqtt
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.subscriptions.test_notify_http import create, room, subscribe


@asynccontextmanager
async def mqtt_listener(url: str, topic: str, version: aiomqtt.ProtocolVersion) -> AsyncIterator[aiomqtt.Client]:
    parts = urlsplit(url)
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883, protocol=version) as client:
        await client.subscribe(topic, qos=1)
        yield client


async def next_message(client: aiomqtt.Client, timeout: float = 10.0) -> aiomqtt.Message:
    async def first() -> aiomqtt.Message:
        async for message in client.messages:
            return message
        raise AssertionError("MQTT subscription ended")

    return await asyncio.wait_for(first(), timeout)


@pytest.mark.parametrize("version,qos", [("mqtt3.1.1", "0"), ("mqtt5.0", "1"), ("mqtt3.1.1", "2")])
async def test_mqtt_notification(nclient: TestClient, services, version: str, qos: str) -> None:  # type: ignore[no-untyped-def]
    topic = f"notify/{uuid.uuid4().hex}"
    parts = urlsplit(services.mqtt_url)
    uri = f"mqtt://{parts.hostname}:{parts.port}/{topic}"
    proto = aiomqtt.ProtocolVersion.V5 if version == "mqtt5.0" else aiomqtt.ProtocolVersion.V311
    async with mqtt_listener(services.mqtt_url, topic, proto) as listener:
        sub_id = await subscribe(nclient, uri, headers={"NGSILD-Tenant": "mq"}, notification={"endpoint": {
            "uri": uri, "receiverInfo": [{"key": "X-Origin", "value": "test"}],
            "notifierInfo": [{"key": "MQTT-Version", "value": version}, {"key": "MQTT-QoS", "value": qos}]}})
        await create(nclient, room(1), {"NGSILD-Tenant": "mq"})
        message = await next_message(listener)
    payload = orjson.loads(message.payload)  # type: ignore[arg-type]
    assert payload["metadata"]["Content-Type"] == "application/json"
    assert payload["metadata"]["X-Origin"] == "test"
    assert payload["metadata"]["NGSILD-Tenant"] == "mq"
    assert "json-ld#context" in payload["metadata"]["Link"]
    body = payload["body"]
    assert body["type"] == "Notification" and body["subscriptionId"] == sub_id
    assert body["data"] == [room(1)]
    assert message.qos == min(int(qos), 1)  # the listener subscribed with QoS 1


async def test_mqtt_broker_down_then_up_is_retried(nclient: TestClient, services) -> None:  # type: ignore[no-untyped-def]
    """An unreachable MQTT broker counts as a failure; the subscription keeps working afterwards."""
    from tests.services import free_port

    dead = f"mqtt://127.0.0.1:{free_port()}/t"
    sub_id = await subscribe(nclient, dead)
    await create(nclient, room(2))
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        got = await (await nclient.get(f"/ngsi-ld/v1/subscriptions/{sub_id}")).json()
        if got["notification"].get("timesFailed", 0) == 1:
            break
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.1)
    assert got["notification"]["status"] == "failed"
