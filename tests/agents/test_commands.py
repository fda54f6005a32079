"""Commands round-trip: a PATCH on the device entity reaches a real device (aiomqtt client, HTTP server,
polling) and the result comes back as ``<cmd>_status``/``<cmd>_info``; configuration requests; and
subscriptions fire on agent writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest
from aiohttp import web

from tests.agents.conftest import APIKEY, HEADERS, SERVICE, Stack, eventually
from tests.agents.test_southbound import mqtt_client, value_of
from tests.services import free_port

BELL = {"device_id": "bell001", "entity_name": "urn:ngsi-ld:Bell:001", "entity_type": "Bell",
        "protocol": "PDI-IoTA-UltraLight", "transport": "MQTT", "commands": [{"name": "ring", "type": "command"}],
        "static_attributes": [{"name": "refStore", "type": "Relationship", "value": "urn:ngsi-ld:Building:store001"}]}
LAMP = {"device_id": "lamp001", "entity_name": "urn:ngsi-ld:Lamp:001", "entity_type": "Lamp",
        "protocol": "IoTA-JSON", "transport": "MQTT",
        "commands": [{"name": "on", "type": "command"}, {"name": "off", "type": "command"}],
        "attributes": [{"object_id": "s", "name": "state", "type": "Text"}]}
TENANT = {"NGSILD-Tenant": SERVICE}


async def patch_attr(stack: Stack, entity_id: str, attr: str, value: Any) -> int:
    status, body = await stack.call("PATCH", f"{stack.broker}/ngsi-ld/v1/entities/{entity_id}/attrs/{attr}",
                                    json={"type": "Property", "value": value}, headers=TENANT)
    assert status == 204, body
    return status


async def statuses(stack: Stack, entity_id: str, cmd: str) -> list[str]:
    """Every ``<cmd>_status`` value the agent wrote, in order (from the broker's change events)."""
    iri = "https://uri.etsi.org/ngsi-ld/default-context/" + cmd + "_status"
    out = []
    for e in stack.events:
        if e.entity_id == entity_id and e.after and iri in e.changed:
            out.append(e.after["attrs"][iri][0]["value"])
    return out


async def test_mqtt_commands_round_trip(stack: Stack) -> None:
    await stack.provision_group("/iot/json")
    await stack.provision_devices(BELL, LAMP)
    # the entities exist right after provisioning, with their commands, so the PATCH finds them
    status, bell = await stack.entity("urn:ngsi-ld:Bell:001")
    assert status == 200, bell
    assert bell["ring"]["value"] == "" and bell["ring_status"]["value"] == "UNKNOWN"
    assert bell["refStore"]["object"] == "urn:ngsi-ld:Building:store001"
    received: list[tuple[str, str]] = []

    async def device(ready: asyncio.Event) -> None:
        async with mqtt_client(stack) as c:
            await c.subscribe(f"/{APIKEY}/+/cmd", qos=1)
            ready.set()
            async for m in c.messages:
                payload = m.payload.decode()  # type: ignore[union-attr]
                received.append((m.topic.value, payload))
                if m.topic.value.endswith("bell001/cmd"):
                    dev, rest = payload.split("@", 1)
                    await c.publish(f"/ul/{APIKEY}/{dev}/cmdexe", f"{dev}@{rest.split('|')[0]}|ring OK", qos=1)
                else:
                    cmd = json.loads(payload)
                    await c.publish(f"/json/{APIKEY}/lamp001/cmdexe",
                                    json.dumps({k: f"{k} done" for k in cmd}), qos=1)

    ready = asyncio.Event()
    task = asyncio.create_task(device(ready))
    try:
        await ready.wait()
        await patch_attr(stack, "urn:ngsi-ld:Bell:001", "ring", "")
        await eventually(lambda: _eq(stack, "urn:ngsi-ld:Bell:001", "ring_status", "OK"), "UL command result")
        assert await value_of(stack, "urn:ngsi-ld:Bell:001", "ring_info") == "ring OK"
        assert (f"/{APIKEY}/bell001/cmd", "bell001@ring|") in received
        assert await statuses(stack, "urn:ngsi-ld:Bell:001", "ring") == ["UNKNOWN", "PENDING", "OK"]

        # JSON device, PATCH .../attrs naming the command
        status, body = await stack.call("PATCH", f"{stack.broker}/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:001/attrs",
                                        json={"on": {"type": "Property", "value": {"level": 80}}}, headers=TENANT)
        assert status == 204, body
        await eventually(lambda: _eq(stack, "urn:ngsi-ld:Lamp:001", "on_status", "OK"), "JSON command result")
        assert await value_of(stack, "urn:ngsi-ld:Lamp:001", "on_info") == "on done"
        assert (f"/{APIKEY}/lamp001/cmd", '{"on":{"level":80}}') in received
        assert await value_of(stack, "urn:ngsi-ld:Lamp:001", "off_status") == "UNKNOWN"
        # a measure write on the entity (source agent) sends no command
        n = len(received)
        await stack.call("POST", f"{stack.south}/iot/json?k={APIKEY}&i=lamp001", json={"s": "lit"})
        assert await value_of(stack, "urn:ngsi-ld:Lamp:001", "state") == "lit"
        assert len(received) == n
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _count(stack: Stack, status: str, n: int) -> bool:
    return (await statuses(stack, "urn:ngsi-ld:Bell:001", "ring")).count(status) == n


async def _eq(stack: Stack, entity_id: str, attr: str, expected: Any) -> bool:
    return await value_of(stack, entity_id, attr) == expected


async def _device_server(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/cmd", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/cmd"


async def test_http_push_commands(lite: Stack) -> None:
    seen: list[tuple[dict[str, str], str]] = []
    answers = iter([web.json_response({"ring": "rung"}), web.Response(status=500, text="jammed")])

    async def handler(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.text()))
        return next(answers)

    runner, endpoint = await _device_server(handler)
    try:
        await lite.provision_group("/iot/json")
        dev = {**BELL, "protocol": "IoTA-JSON", "transport": "HTTP", "endpoint": endpoint}
        await lite.provision_devices(dev)
        await patch_attr(lite, "urn:ngsi-ld:Bell:001", "ring", "now")
        await eventually(lambda: _eq(lite, "urn:ngsi-ld:Bell:001", "ring_status", "OK"), "HTTP push OK")
        assert await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_info") == "rung"
        headers, body = seen[0]
        assert json.loads(body) == {"ring": "now"}
        assert headers["fiware-service"] == SERVICE and headers["fiware-servicepath"] == "/"
        await patch_attr(lite, "urn:ngsi-ld:Bell:001", "ring", "again")
        await eventually(lambda: _eq(lite, "urn:ngsi-ld:Bell:001", "ring_status", "ERROR"), "HTTP push ERROR")
        assert "500" in await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_info")
    finally:
        await runner.cleanup()
    # an unreachable endpoint ends as ERROR too
    await patch_attr(lite, "urn:ngsi-ld:Bell:001", "ring", "third")
    await eventually(lambda: _count(lite, "ERROR", 2), "unreachable ERROR")
    assert await statuses(lite, "urn:ngsi-ld:Bell:001", "ring") == ["UNKNOWN", "PENDING", "OK", "PENDING", "ERROR",
                                                                   "PENDING", "ERROR"]
    assert "Connect" in await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_info")
    assert lite.runtime.agents.metrics.commands[("http", "ERROR")] >= 1


async def test_ultralight_http_push(lite: Stack) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(await request.text())
        return web.Response(text="bell001@ring|dong", content_type="text/plain")

    runner, endpoint = await _device_server(handler)
    try:
        await lite.provision_group("/iot/d")
        await lite.provision_devices({**BELL, "transport": "HTTP", "endpoint": endpoint})
        await patch_attr(lite, "urn:ngsi-ld:Bell:001", "ring", "")
        await eventually(lambda: _eq(lite, "urn:ngsi-ld:Bell:001", "ring_status", "OK"), "UL push OK")
        assert seen == ["bell001@ring|"]
        assert await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_info") == "dong"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("resource", ["/iot/json", "/iot/d"])
async def test_polling_commands(lite: Stack, resource: str) -> None:
    await lite.provision_group(resource)
    await lite.provision_devices({**BELL, "transport": "HTTP", "polling": True,
                                  "protocol": "IoTA-JSON" if resource == "/iot/json" else "PDI-IoTA-UltraLight"})
    await patch_attr(lite, "urn:ngsi-ld:Bell:001", "ring", "42")
    await eventually(lambda: _eq(lite, "urn:ngsi-ld:Bell:001", "ring_status", "PENDING"), "queued")
    status, body = await lite.call("GET", f"{lite.south}{resource}?k={APIKEY}&i=bell001&getCmd=1")
    assert status == 200
    assert body == ({"ring": "42"} if resource == "/iot/json" else "bell001@ring|42")
    assert await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_status") == "DELIVERED"
    status, body = await lite.call("GET", f"{lite.south}{resource}?k={APIKEY}&i=bell001&getCmd=1")
    assert status == 200 and body is None  # delivered once
    if resource == "/iot/json":
        status, _ = await lite.call("POST", f"{lite.south}/iot/json/commands?k={APIKEY}&i=bell001",
                                    json={"ring": "done"})
    else:
        status, _ = await lite.call("POST", f"{lite.south}/iot/d/commands?k={APIKEY}&i=bell001",
                                    data="bell001@ring|done", headers={"Content-Type": "text/plain"})
    assert status == 200
    assert await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_status") == "OK"
    assert await value_of(lite, "urn:ngsi-ld:Bell:001", "ring_info") == "done"
    # results for an unknown device are refused
    status, body = await lite.call("POST", f"{lite.south}{resource}/commands?k={APIKEY}&i=ghost",
                                   data='{"x": 1}' if resource == "/iot/json" else "ghost@x|1")
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"


async def test_configuration_requests(lite: Stack) -> None:
    await lite.provision_group("/iot/json")
    await lite.provision_devices(LAMP, BELL)
    await lite.call("POST", f"{lite.south}/iot/json?k={APIKEY}&i=lamp001", json={"s": "dim"})
    await lite.call("POST", f"{lite.south}/iot/json?k={APIKEY}&i=bell001", json={"volume": 3})
    async with mqtt_client(lite) as c:
        await c.subscribe(f"/{APIKEY}/+/configuration/values", qos=1)
        await c.publish(f"/json/{APIKEY}/lamp001/configuration/commands",
                        b'{"type": "configuration", "fields": ["state"]}', qos=1)
        await c.publish(f"/ul/{APIKEY}/bell001/configuration/commands", b"configuration|volume", qos=1)
        got: dict[str, str] = {}
        async for m in c.messages:
            got[m.topic.value] = m.payload.decode()  # type: ignore[union-attr]
            if len(got) == 2:
                break
    lamp = json.loads(got[f"/{APIKEY}/lamp001/configuration/values"])
    assert lamp["state"] == "dim" and len(lamp["dt"]) == 16
    bell = got[f"/{APIKEY}/bell001/configuration/values"]
    assert bell.startswith("bell001@configuration|volume=3|dt=")


async def test_subscription_fires_on_agent_measures(stack: Stack) -> None:
    notifications: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def receiver(request: web.Request) -> web.Response:
        notifications.append(await request.json())
        got.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/notify", receiver)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        sub = {"type": "Subscription", "entities": [{"type": "Motion"}], "watchedAttributes": ["count"],
               "notification": {"endpoint": {"uri": f"http://127.0.0.1:{port}/notify", "accept": "application/json"}}}
        status, body = await stack.call("POST", f"{stack.broker}/ngsi-ld/v1/subscriptions", json=sub, headers=TENANT)
        assert status == 201, body
        await stack.provision_group("/iot/json")
        await stack.provision_devices({"device_id": "motion001", "entity_name": "urn:ngsi-ld:Motion:001",
                                       "entity_type": "Motion", "attributes": [{"object_id": "c", "name": "count",
                                                                                "type": "Integer"}]})
        async with mqtt_client(stack) as c:
            await c.publish(f"/json/{APIKEY}/motion001/attrs", b'{"c": 12}', qos=1)
        await asyncio.wait_for(got.wait(), 20)
        entity = notifications[0]["data"][0]
        assert entity["id"] == "urn:ngsi-ld:Motion:001" and entity["count"]["value"] == 12
    finally:
        await runner.cleanup()


async def test_device_without_commands_gets_no_entity_at_provisioning(lite: Stack) -> None:
    await lite.provision_group("/iot/json")
    await lite.provision_devices({"device_id": "plain", "entity_type": "Thing"})
    assert (await lite.entity("urn:ngsi-ld:Thing:plain"))[0] == 404
    assert HEADERS["fiware-service"] == SERVICE


_ = aiomqtt
