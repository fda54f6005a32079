"""Devices provisioned as in the FIWARE tutorials send the tutorials' payloads over HTTP and MQTT and become
NGSI-LD entities (read back through the broker API); every refusal path answers, counts and writes nothing."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from broker.api.keys import ENTITIES, RESOLVER
from tests.agents.conftest import APIKEY, HEADERS, SERVICE, Stack, eventually, open_stack

CORE = "https://uri.etsi.org/ngsi-ld/default-context/"
MOTION = {"device_id": "motion001", "entity_name": "urn:ngsi-ld:Motion:001", "entity_type": "Motion",
          "timezone": "Europe/Berlin", "protocol": "PDI-IoTA-UltraLight", "transport": "MQTT",
          "attributes": [{"object_id": "c", "name": "count", "type": "Integer"}],
          "static_attributes": [{"name": "refStore", "type": "Relationship",
                                 "value": "urn:ngsi-ld:Building:store001"}]}
TEMPERATURE = {"device_id": "temperature001", "entity_name": "urn:ngsi-ld:TemperatureSensor:001",
               "entity_type": "TemperatureSensor",
               "attributes": [{"object_id": "t", "name": "temperature", "type": "Number",
                               "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}},
                              {"object_id": "l", "name": "location", "type": "geo:point"}]}


def mqtt_client(stack: Stack) -> aiomqtt.Client:
    u = urlsplit(stack.mqtt_url)
    return aiomqtt.Client(u.hostname or "127.0.0.1", u.port or 1883, protocol=aiomqtt.ProtocolVersion.V5)


async def value_of(stack: Stack, entity_id: str, attr: str, tenant: str = SERVICE) -> Any:
    status, body = await stack.entity(entity_id, tenant)
    if status != 200 or attr not in body:
        return None
    a = body[attr]
    return a.get("value", a.get("object"))


async def test_http_json_tutorial_measure(stack: Stack) -> None:
    await stack.provision_group("/iot/json")
    await stack.provision_devices(MOTION)
    status, body = await stack.call("POST", f"{stack.south}/iot/json?k={APIKEY}&i=motion001", json={"c": 1})
    assert (status, body) == (200, None)
    # answered only after the write: the entity is there now
    status, entity = await stack.entity("urn:ngsi-ld:Motion:001")
    assert status == 200, entity
    assert entity["type"] == "Motion"
    assert entity["count"]["value"] == 1 and entity["count"]["type"] == "Property"
    assert entity["count"]["observedAt"].endswith("Z")
    assert entity["refStore"] == {"type": "Relationship", "object": "urn:ngsi-ld:Building:store001",
                                  "observedAt": entity["refStore"]["observedAt"]}
    agent_events = [e for e in stack.events if e.entity_id == "urn:ngsi-ld:Motion:001" and e.source == "agent"]
    assert agent_events and CORE + "count" in agent_events[-1].changed

    # multimeasure array: applied in order, the last one wins; TimeInstant becomes observedAt
    body2 = [{"c": 2, "TimeInstant": "2026-01-01T10:00:00Z"}, {"c": 3, "TimeInstant": "2026-01-01T10:00:05Z"}]
    assert (await stack.call("POST", f"{stack.south}/iot/json?k={APIKEY}&i=motion001", json=body2))[0] == 200
    _, entity = await stack.entity("urn:ngsi-ld:Motion:001")
    assert entity["count"]["value"] == 3 and entity["count"]["observedAt"] == "2026-01-01T10:00:05.000Z"

    # single attribute
    status, _ = await stack.call("POST", f"{stack.south}/iot/json/attrs/c?k={APIKEY}&i=motion001", data=b"7",
                                 headers={"Content-Type": "application/json"})
    assert status == 200
    assert await value_of(stack, "urn:ngsi-ld:Motion:001", "count") == 7


async def test_http_ultralight_get_and_post(stack: Stack) -> None:
    await stack.provision_group("/iot/d")
    await stack.provision_devices(TEMPERATURE)
    status, _ = await stack.call("GET", f"{stack.south}/iot/d?k={APIKEY}&i=temperature001&d=t|21.5|l|13.4, 52.5")
    assert status == 200
    _, entity = await stack.entity("urn:ngsi-ld:TemperatureSensor:001")
    assert entity["temperature"]["value"] == 21.5 and entity["temperature"]["unitCode"] == "CEL"
    assert entity["location"]["value"] == {"type": "Point", "coordinates": [13.4, 52.5]}
    t = "2026-03-01T12:00:00Z"
    status, _ = await stack.call("POST", f"{stack.south}/iot/d?k={APIKEY}&i=temperature001&t={t}",
                                 data="t|22#t|23", headers={"Content-Type": "text/plain"})
    assert status == 200
    _, entity = await stack.entity("urn:ngsi-ld:TemperatureSensor:001")
    assert entity["temperature"]["value"] == 23 and entity["temperature"]["observedAt"] == "2026-03-01T12:00:00.000Z"


async def test_mqtt_tutorial_topics(stack: Stack) -> None:
    await stack.provision_group("/iot/json")
    await stack.provision_devices(MOTION, TEMPERATURE)
    async with mqtt_client(stack) as c:
        await c.publish(f"/json/{APIKEY}/motion001/attrs", b'{"c": 4}', qos=1)
        await c.publish(f"/ul/{APIKEY}/temperature001/attrs", b"t|19.5", qos=1)
    await eventually(lambda: _is(stack, "urn:ngsi-ld:Motion:001", "count", 4), "JSON measure over MQTT")
    await eventually(lambda: _is(stack, "urn:ngsi-ld:TemperatureSensor:001", "temperature", 19.5), "UL over MQTT")
    async with mqtt_client(stack) as c:
        await c.publish(f"/{APIKEY}/motion001/attrs", b"c|5", qos=1)  # the UL tutorial's topic, no prefix
        await c.publish(f"{APIKEY}/temperature001/attrs", b'{"t": 20}', qos=0)  # no leading slash, JSON
    await eventually(lambda: _is(stack, "urn:ngsi-ld:Motion:001", "count", 5), "UL without prefix")
    await eventually(lambda: _is(stack, "urn:ngsi-ld:TemperatureSensor:001", "temperature", 20), "JSON, no slash")
    async with mqtt_client(stack) as c:
        await c.publish(f"/json/{APIKEY}/motion001/attrs/c", b"6", qos=1)
        await c.publish(f"/ul/{APIKEY}/temperature001/attrs/t", b"21", qos=1)
    await eventually(lambda: _is(stack, "urn:ngsi-ld:Motion:001", "count", 6), "single attribute JSON")
    await eventually(lambda: _is(stack, "urn:ngsi-ld:TemperatureSensor:001", "temperature", 21), "single attr UL")
    metrics = stack.runtime.agents.metrics
    assert metrics.accepted["mqtt"] >= 6 and metrics.rejected["mqtt"] == 0


async def _is(stack: Stack, entity_id: str, attr: str, expected: Any) -> bool:
    return await value_of(stack, entity_id, attr) == expected


async def test_autoprovisioning(lite: Stack) -> None:
    await lite.provision_group("/iot/json")
    status, _ = await lite.call("POST", f"{lite.south}/iot/json?k={APIKEY}&i=sensor42", json={"h": 40})
    assert status == 200
    _, entity = await lite.entity("urn:ngsi-ld:Thing:sensor42")
    assert entity["type"] == "Thing" and entity["h"]["value"] == 40
    status, dev = await lite.call("GET", f"{lite.north}/iot/devices/sensor42", headers=HEADERS)
    assert status == 200 and dev["apikey"] == APIKEY and dev["entity_type"] == "Thing"
    async with mqtt_client(lite) as c:
        await c.publish(f"/json/{APIKEY}/sensor43/attrs", b'{"h": 41}', qos=1)
    await eventually(lambda: _is(lite, "urn:ngsi-ld:Thing:sensor43", "h", 41), "autoprovisioned over MQTT")
    _, devices = await lite.call("GET", f"{lite.north}/iot/devices", headers=HEADERS)
    assert {d["device_id"] for d in devices["devices"]} == {"sensor42", "sensor43"}


async def test_http_refusals(stack: Stack) -> None:
    await stack.provision_group("/iot/json", autoprovision=False)
    await stack.provision_devices({**TEMPERATURE, "apikey": APIKEY})
    south = stack.south
    before = await stack.runtime.agents.store.get_entity(SERVICE, "urn:ngsi-ld:TemperatureSensor:001")
    cases = [
        ("/iot/json?i=temperature001", {"t": 1}, 400, "MANDATORY_PARAMS_NOT_FOUND_HTTP"),
        (f"/iot/json?k={APIKEY}", {"t": 1}, 400, "MANDATORY_PARAMS_NOT_FOUND_HTTP"),
        ("/iot/json?k=unknownkey&i=temperature001", {"t": 1}, 404, "DEVICE_GROUP_NOT_FOUND"),
        (f"/iot/json?k={APIKEY}&i=stranger", {"t": 1}, 404, "DEVICE_NOT_FOUND"),
        (f"/iot/json?k={APIKEY}&i=temperature001", {"t": 1, "TimeInstant": "yesterday"}, 400, "BAD_TIMESTAMP"),
        (f"/iot/json?k={APIKEY}&i=temperature001", {"l": "12, 13, 14"}, 400, "BAD_GEOCOORDINATES"),
        (f"/iot/json?k={APIKEY}&i=temperature001", {"l": "200, 13"}, 400, "WRONG_SYNTAX"),
        (f"/iot/json?k={APIKEY}&i=temperature001", [1, 2], 400, "PARSE_ERROR"),
    ]
    for path, payload, code, name in cases:
        status, body = await stack.call("POST", south + path, json=payload)
        assert (status, body["name"]) == (code, name), (path, payload, body)
        assert body["message"]
    status, body = await stack.call("POST", south + f"/iot/json?k={APIKEY}&i=temperature001", data=b"{oops",
                                    headers={"Content-Type": "application/json"})
    assert (status, body["name"]) == (400, "PARSE_ERROR")
    status, body = await stack.call("POST", south + f"/iot/d?k={APIKEY}&i=temperature001", data="t||h|2",
                                    headers={"Content-Type": "text/plain"})
    assert (status, body["name"]) == (400, "PARSE_ERROR")
    status, body = await stack.call("GET", south + "/iot/unknown?k=a&i=b")
    assert status == 404
    # nothing was written, everything was counted
    assert await stack.runtime.agents.store.get_entity(SERVICE, "urn:ngsi-ld:TemperatureSensor:001") == before
    m = stack.runtime.agents.metrics
    assert m.rejected["http"] == 10 and m.accepted["http"] == 0
    assert m.errors["DEVICE_GROUP_NOT_FOUND"] == 1 and m.errors["PARSE_ERROR"] == 3
    _, text = await stack.call("GET", stack.north + "/metrics")
    assert 'iota_errors_total{code="BAD_TIMESTAMP"} 1' in text
    assert 'iota_measures_rejected_total{transport="http"} 10' in text
    assert m.errors["MANDATORY_PARAMS_NOT_FOUND_HTTP"] == 2


async def test_mqtt_refusals_are_counted_and_do_not_block(lite: Stack) -> None:
    await lite.provision_group("/iot/json", autoprovision=False)
    await lite.provision_devices(TEMPERATURE)
    async with mqtt_client(lite) as c:
        await c.publish(f"/json/{APIKEY}/temperature001/attrs", b"{broken", qos=1)
        await c.publish("/json/nokey/temperature001/attrs", b'{"t": 1}', qos=1)
        await c.publish(f"/json/{APIKEY}/stranger/attrs", b'{"t": 1}', qos=1)
        await c.publish(f"/ul/{APIKEY}/temperature001/attrs", b"t|", qos=1)
        await c.publish(f"/json/{APIKEY}/temperature001/attrs", b'{"t": 30}', qos=1)
    await eventually(lambda: _is(lite, "urn:ngsi-ld:TemperatureSensor:001", "temperature", 30), "valid after bad")
    m = lite.runtime.agents.metrics
    assert m.rejected["mqtt"] == 4 and m.accepted["mqtt"] == 1
    assert m.errors["PARSE_ERROR"] == 2 and m.errors["DEVICE_GROUP_NOT_FOUND"] == 1
    assert m.errors["DEVICE_NOT_FOUND"] == 1
    assert await lite.runtime.agents.store.get_entity(SERVICE, "urn:ngsi-ld:Thing:stranger") is None


async def test_grouped_writes_wait_when_the_queue_is_full(lite: Stack) -> None:
    """Backpressure: a queue of 2 batches still takes 300 concurrent measures, waiting instead of dropping."""
    from agents.ingest import Ingestor
    from agents.metrics import AgentMetrics

    agents = lite.runtime.agents
    metrics = AgentMetrics()
    ingestor = Ingestor(agents.writer, metrics, queue_size=2, max_entities=50)
    await ingestor.start()
    try:
        peak = 0

        async def one(i: int) -> None:
            nonlocal peak
            prepared = await agents.writer.prepare([{"id": f"urn:ngsi-ld:Meter:{i % 7}", "type": "Meter",
                                                     "n": {"type": "Property", "value": i}}])
            await ingestor.submit("bp", "/", prepared, 1, "test")
            peak = max(peak, ingestor.queue.qsize())

        await asyncio.gather(*(one(i) for i in range(300)))
        assert metrics.accepted["test"] == 300 and peak <= 2
        assert metrics.writes < 300  # grouped
        stored = await lite.app[ENTITIES].get("bp", "urn:ngsi-ld:Meter:6")
        assert stored["attrs"][CORE + "n"][0]["value"] == 293  # the last of its measures, in order
    finally:
        await ingestor.close()


async def test_two_agent_processes_share_the_mqtt_load(lite: Stack) -> None:
    """MQTT v5 shared subscriptions: a second agent in the same share group takes part of the traffic."""
    import uuid

    from agents.runtime import start_agents
    from tests.services import free_port

    group = "share" + uuid.uuid4().hex[:6]
    settings = lite.runtime.agents.settings.model_copy(update={"iota_north_port": free_port(),
                                                              "iota_http_port": free_port()})
    first_settings = settings.model_copy(update={"iota_north_port": free_port(), "iota_http_port": free_port()})
    [a] = await start_agents(lite.app, first_settings, lite.mqtt_url, share_group=group)
    [b] = await start_agents(lite.app, settings, lite.mqtt_url, share_group=group)
    try:
        await a.agents.mqtt.wait_ready()
        await b.agents.mqtt.wait_ready()
        await lite.provision_group("/iot/json")
        await a.agents.registry.refresh()
        await b.agents.registry.refresh()
        async with mqtt_client(lite) as c:
            for i in range(200):
                await c.publish(f"/json/{APIKEY}/d{i % 20}/attrs", f'{{"n": {i}}}'.encode(), qos=1)
        done = lambda: a.agents.metrics.accepted["mqtt"] + b.agents.metrics.accepted["mqtt"]  # noqa: E731

        async def all_written() -> bool:
            return done() == 200

        await eventually(all_written, "200 measures written by the two agents")
        assert a.agents.metrics.accepted["mqtt"] > 0 and b.agents.metrics.accepted["mqtt"] > 0
        entities = [await lite.runtime.agents.store.get_entity(SERVICE, f"urn:ngsi-ld:Thing:d{i}") for i in range(20)]
        assert all(e is not None for e in entities)
    finally:
        await a.cleanup()
        await b.cleanup()


async def test_mqtt_messages_are_acked_only_after_the_write(lite: Stack) -> None:
    """At-least-once: a measure received but not yet written is not acked, so after a lost connection
    Mosquitto delivers it again on the resumed session and it gets written."""

    agents = lite.runtime.agents
    await lite.provision_group("/iot/json")
    assert agents.mqtt is not None and agents.mqtt.client is not None
    worker = agents.ingestor._task  # noqa: SLF001 - stop the writer to hold the message unwritten
    assert worker is not None
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    async with mqtt_client(lite) as c:
        await c.publish(f"/json/{APIKEY}/held/attrs", b'{"n": 1}', qos=1)

    async def queued(n: int) -> bool:
        return agents.ingestor.queue.qsize() == n

    await eventually(lambda: queued(1), "the measure waits in the queue")
    first = agents.mqtt.client
    first.abort()  # a network failure: the TCP connection drops, no DISCONNECT

    async def reconnected() -> bool:
        return agents.mqtt.client is not None and agents.mqtt.client is not first and agents.mqtt.connected

    await eventually(reconnected, "the supervisor reconnects")
    await eventually(lambda: queued(2), "Mosquitto redelivers the unacked message")
    await agents.ingestor.start()
    await eventually(lambda: _is(lite, "urn:ngsi-ld:Thing:held", "n", 1), "the redelivered measure is written")
    await eventually(lambda: queued(0), "queue drained")


async def test_agents_map_devices_with_a_smart_data_models_context(services: Any, tmp_path: Any) -> None:
    """``IOTA_JSON_LD_CONTEXT`` naming a Smart Data Models subject: the context comes from the copy shipped
    with the broker (no download), and the measures land under that subject's IRIs."""
    env = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
    stack, close = await open_stack("sqlite", services, tmp_path, iota_json_ld_context=env)
    try:
        await stack.provision_group("/iot/json")
        await stack.provision_devices({
            "device_id": "aq001", "entity_name": "urn:ngsi-ld:AirQualityObserved:porto:001",
            "entity_type": "AirQualityObserved",
            "attributes": [{"object_id": "n", "name": "no2", "type": "Number"},
                           {"object_id": "t", "name": "temperature", "type": "Number"}]})
        status, _ = await stack.call("POST", f"{stack.south}/iot/json?k={APIKEY}&i=aq001", json={"n": 41, "t": 13.5})
        assert status == 200
        sdm = "https://smartdatamodels.org/dataModel.Environment/"
        status, entity = await stack.entity("urn:ngsi-ld:AirQualityObserved:porto:001")
        assert status == 200, entity
        assert entity["type"] == sdm + "AirQualityObserved"
        assert entity[sdm + "no2"]["value"] == 41 and entity[sdm + "temperature"]["value"] == 13.5
        link = f'<{env}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        status, found = await stack.call("GET", f"{stack.broker}/ngsi-ld/v1/entities",
                                         params={"type": "AirQualityObserved", "q": "no2>40"},
                                         headers={"NGSILD-Tenant": SERVICE, "Link": link})
        assert status == 200 and [e["no2"]["value"] for e in found] == [41], found
        assert stack.app[RESOLVER]._session is None  # nothing was downloaded
    finally:
        await close()
