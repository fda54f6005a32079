"""Command options (``expression``, ``payloadType``, ``contentType``, ``headers``, ``mqtt``) and poll-command
expiry, against real devices: an aiomqtt client on the real Mosquitto, an aiohttp server for HTTP push."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import pytest
from aiohttp import web

from agents.command_payload import context_value, serialize
from tests.agents.conftest import APIKEY, HEADERS, Stack, eventually, open_stack
from tests.agents.test_commands import patch_attr, statuses
from tests.agents.test_southbound import mqtt_client, value_of
from tests.conftest import STORES
from tests.services import Services, free_port

LAMP_ID = "urn:ngsi-ld:Lamp:001"


def lamp(**extra: Any) -> dict[str, Any]:
    return {"device_id": "lamp001", "entity_name": LAMP_ID, "entity_type": "Lamp", "protocol": "IoTA-JSON",
            "transport": "MQTT", "static_attributes": [{"name": "color", "type": "Text", "value": "blue"},
                                                       {"name": "level", "type": "Number", "value": "7"}],
            **extra}


@asynccontextmanager
async def device_subscriber(stack: Stack, topic: str) -> AsyncIterator[asyncio.Queue[aiomqtt.Message]]:
    """A device on the real Mosquitto: every message on ``topic`` lands in the queue."""
    queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    ready = asyncio.Event()

    async def run() -> None:
        async with mqtt_client(stack) as c:
            await c.subscribe(topic, qos=1)
            ready.set()
            async for m in c.messages:
                queue.put_nowait(m)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def next_payload(queue: asyncio.Queue[aiomqtt.Message]) -> bytes:
    m = await asyncio.wait_for(queue.get(), 10)
    assert isinstance(m.payload, bytes)
    return m.payload


async def test_expression_and_payload_types_over_mqtt(lite: Stack) -> None:
    await lite.provision_group("/iot/json")
    await lite.provision_devices(lamp(commands=[
        {"name": "reset", "type": "command", "expression": "{ set: id + '_reset_' + reset, lvl: level * 2 }"},
        {"name": "hex", "type": "command", "expression": "hex", "payloadType": "binaryfromhex"},
        {"name": "txt", "type": "command", "expression": "txt + ' in ' + color", "payloadType": "text"},
        {"name": "raw", "type": "command", "payloadType": "binaryfromjson"},
        {"name": "str", "type": "command", "payloadType": "binaryfromstring", "expression": "str"},
        {"name": "broken", "type": "command", "expression": "missing * 2"},
        {"name": "badhex", "type": "command", "payloadType": "binaryfromhex"},
    ]))
    async with device_subscriber(lite, f"/{APIKEY}/lamp001/cmd") as queue:
        # the context holds id, type, service, static attributes ("7" cast to 7) and the command's value
        await patch_attr(lite, LAMP_ID, "reset", "5")
        assert json.loads(await next_payload(queue)) == {"set": "lamp001_reset_5", "lvl": 14}
        await patch_attr(lite, LAMP_ID, "hex", "484F4C41")
        assert await next_payload(queue) == b"HOLA"
        await patch_attr(lite, LAMP_ID, "txt", "myText")
        assert await next_payload(queue) == b"myText in blue"  # text: no JSON quotes
        await patch_attr(lite, LAMP_ID, "raw", [1, "23"])
        assert await next_payload(queue) == b'{"raw":[1,"23"]}'
        await patch_attr(lite, LAMP_ID, "str", ["1", "23", "2"])
        assert await next_payload(queue) == b"1,23,2"
        # an expression that cannot give a value: nothing is sent, the command ends as ERROR with the reason
        await patch_attr(lite, LAMP_ID, "broken", "x")
        await eventually(lambda: _eq(lite, "broken_status", "ERROR"), "expression failure reported")
        info = await value_of(lite, LAMP_ID, "broken_info")
        assert "Invalid expression in evaluation [missing * 2]" in info and "null" in info
        # a value binaryfromhex cannot encode (the payload is {"badhex": ...}, not hex digits)
        await patch_attr(lite, LAMP_ID, "badhex", "zz")
        await eventually(lambda: _eq(lite, "badhex_status", "ERROR"), "payloadType failure reported")
        assert "binaryfromhex" in await value_of(lite, LAMP_ID, "badhex_info")
        assert queue.empty()
    assert await statuses(lite, LAMP_ID, "broken") == ["UNKNOWN", "PENDING", "ERROR"]
    assert lite.runtime.agents.metrics.commands[("mqtt", "ERROR")] == 2


async def _eq(stack: Stack, attr: str, expected: Any, entity_id: str = LAMP_ID) -> bool:
    return await value_of(stack, entity_id, attr) == expected


async def test_mqtt_qos_and_retain(lite: Stack) -> None:
    device_id = "lamp" + uuid.uuid4().hex[:8]  # the retained message stays on the shared Mosquitto: own topic
    await lite.provision_group("/iot/json")
    await lite.provision_devices(lamp(device_id=device_id, entity_name=f"urn:ngsi-ld:Lamp:{device_id}", commands=[
        {"name": "keep", "type": "command", "mqtt": {"qos": 0, "retain": True}},
        {"name": "once", "type": "command", "mqtt": {"qos": "1"}}]))
    topic = f"/{APIKEY}/{device_id}/cmd"
    entity_id = f"urn:ngsi-ld:Lamp:{device_id}"
    await patch_attr(lite, entity_id, "keep", "on")
    await eventually(lambda: _eq(lite, "keep_status", "PENDING", entity_id), "retained command sent")
    # a device that connects afterwards still gets it: Mosquitto kept it (retain), delivered at QoS 0
    async with device_subscriber(lite, topic) as queue:
        m = await asyncio.wait_for(queue.get(), 10)
        assert m.payload == b'{"keep":"on"}' and m.retain and m.qos == 0
        await patch_attr(lite, entity_id, "once", "go")
        m = await asyncio.wait_for(queue.get(), 10)
        assert m.payload == b'{"once":"go"}' and not m.retain and m.qos == 1
    async with mqtt_client(lite) as c:  # clear the retained message
        await c.publish(topic, b"", qos=1, retain=True)


async def test_ultralight_expression(lite: Stack) -> None:
    await lite.provision_group("/iot/d")
    await lite.provision_devices({"device_id": "bell001", "entity_name": "urn:ngsi-ld:Bell:001", "entity_type": "Bell",
                                  "protocol": "PDI-IoTA-UltraLight", "transport": "MQTT",
                                  "commands": [{"name": "ring", "type": "command",
                                                "expression": "ring|touppercase"}]})
    async with device_subscriber(lite, f"/{APIKEY}/bell001/cmd") as queue:
        await patch_attr(lite, "urn:ngsi-ld:Bell:001", "ring", "loud")
        assert await next_payload(queue) == b"bell001@ring|LOUD"


async def test_http_push_content_type_headers_and_endpoint_expression(lite: Stack) -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.read()))
        return web.json_response({"reset": "done"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await lite.provision_group("/iot/json")
        await lite.provision_devices(lamp(
            transport="HTTP", endpoint=f"'http://127.0.0.1:{port}/' + service + subservice + id",
            commands=[{"name": "reset", "type": "command", "expression": "{ set: id + '_reset_' + reset }",
                       "contentType": "text/plain",
                       "headers": {"X-Device": "id + '/' + type", "X-Color": "color|touppercase",
                                   "fiware-servicepath": "'/override'", "X-Absent": "nothing.here"}}]))
        await patch_attr(lite, LAMP_ID, "reset", 1)
        await eventually(lambda: _eq(lite, "reset_status", "OK"), "HTTP push answered")
        assert await value_of(lite, LAMP_ID, "reset_info") == "done"
        path, headers, body = seen[0]
        assert path == "/openiot/lamp001"  # the endpoint expression
        assert json.loads(body) == {"set": "lamp001_reset_1"}
        assert headers["Content-Type"] == "text/plain"
        assert headers["X-Device"] == "lamp001/Lamp" and headers["X-Color"] == "BLUE"
        assert headers["fiware-servicepath"] == "/override" and headers["fiware-service"] == "openiot"
        assert "X-Absent" not in headers  # a header whose expression has no value is left out
    finally:
        await runner.cleanup()


async def test_polling_queues_the_expression_result(lite: Stack) -> None:
    await lite.provision_group("/iot/json")
    await lite.provision_devices(lamp(transport="HTTP", polling=True,
                                      commands=[{"name": "dim", "type": "command", "expression": "dim * level"}]))
    await patch_attr(lite, LAMP_ID, "dim", 3)
    await eventually(lambda: _eq(lite, "dim_status", "PENDING"), "queued")
    status, body = await lite.call("GET", f"{lite.south}/iot/json?k={APIKEY}&i=lamp001&getCmd=1")
    assert (status, body) == (200, {"dim": 21})


@pytest.mark.parametrize(("command", "message"), [
    ({"name": "c", "type": "command", "expression": "{ set: "}, "INVALID_EXPRESSION"),
    ({"name": "c", "type": "command", "expression": "c|nosuchtransform"}, "INVALID_EXPRESSION"),
    ({"name": "c", "type": "command", "payloadType": "base64"}, "WRONG_SYNTAX"),
    ({"name": "c", "type": "command", "headers": {"X-A": 1}}, "WRONG_SYNTAX"),
    ({"name": "c", "type": "command", "headers": {"X-A": "'unterminated"}}, "INVALID_EXPRESSION"),
])
async def test_bad_command_options_are_refused_at_provisioning(lite: Stack, command: dict[str, Any],
                                                               message: str) -> None:
    await lite.provision_group("/iot/json")
    status, body = await lite.call("POST", f"{lite.north}/iot/devices", headers=HEADERS,
                                   json={"devices": [lamp(commands=[command])]})
    assert status == 400 and body["name"] == message, body
    status, body = await lite.call("POST", f"{lite.north}/iot/groups", headers=HEADERS,
                                   json={"groups": [{"apikey": "other", "resource": "/iot/other",
                                                     "entity_type": "Lamp", "commands": [command]}]})
    assert status == 400 and body["name"] == message, body
    # nothing was stored
    status, body = await lite.call("GET", f"{lite.north}/iot/devices", headers=HEADERS)
    assert body["count"] == 0


def test_payload_serialization_matches_the_lib_table() -> None:
    """The iotagent-json manual's payloadType table (values as an expression gives them)."""
    assert serialize("12345", "binaryfromstring") == b"12345"
    assert serialize(["1", "23", "2", "50"], "binaryfromstring") == b"1,23,2,50"
    assert serialize("12345", "binaryfromhex") == b"\x12\x34"
    assert serialize("484F4C41", "binaryfromhex") == b"HOLA"
    assert serialize(["1", "23", "2", "50"], "binaryfromhex") == b"\x01\x17\x02\x32"
    assert serialize("12345", "binaryfromjson") == b'"12345"'
    assert serialize(["1", "23", "2", "50"], "binaryfromjson") == b'["1","23","2","50"]'
    assert serialize("abc", "json") == '"abc"' and serialize("abc", None) == '"abc"'
    assert serialize("abc", "TEXT") == "abc" and serialize({"a": 1}, "text") == '{"a":1}'
    # the context casts as the lib's extractContext (isNaN("true") holds in JavaScript: it stays a string)
    assert [context_value(v) for v in ("22", "2.5", "true", True, "abc", "", None, {"a": 1})] == \
        [22, 2.5, "true", True, "abc", "", None, {"a": 1}]


@pytest.mark.parametrize("kind", STORES)
async def test_poll_commands_expire(services: Services, tmp_path: Any, kind: str) -> None:
    stack, close = await open_stack(kind, services, tmp_path, iota_polling_expiration=400,
                                    iota_polling_daemon_freq=100)
    try:
        await stack.provision_group("/iot/json")
        await stack.provision_devices(lamp(transport="HTTP", polling=True,
                                           commands=[{"name": "dim", "type": "command"},
                                                     {"name": "blink", "type": "command"}]))
        await patch_attr(stack, LAMP_ID, "dim", 1)
        await eventually(lambda: _eq(stack, "dim_status", "ERROR"), "poll command expired")
        assert await value_of(stack, LAMP_ID, "dim_info") == "EXPIRED"
        assert await statuses(stack, LAMP_ID, "dim") == ["UNKNOWN", "PENDING", "ERROR"]
        assert stack.runtime.agents.metrics.commands[("poll", "EXPIRED")] == 1
        # the expired command is gone: the device gets nothing
        status, body = await stack.call("GET", f"{stack.south}/iot/json?k={APIKEY}&i=lamp001&getCmd=1")
        assert (status, body) == (200, None)
        # one fetched in time is delivered and never expires
        await patch_attr(stack, LAMP_ID, "blink", 2)
        await eventually(lambda: _eq(stack, "blink_status", "PENDING"), "queued")
        status, body = await stack.call("GET", f"{stack.south}/iot/json?k={APIKEY}&i=lamp001&getCmd=1")
        assert body == {"blink": 2}
        await asyncio.sleep(0.7)
        assert await value_of(stack, LAMP_ID, "blink_status") == "DELIVERED"
        assert stack.runtime.agents.metrics.commands[("poll", "EXPIRED")] == 1
        status, metrics = await stack.call("GET", f"{stack.north}/metrics")
        assert 'iota_commands_total{transport="poll",status="EXPIRED"} 1' in metrics
    finally:
        await close()
