"""Commands and lazy attributes with a remote broker (``IOTA_CB_URL``), end to end.

The "remote broker" is the project's own broker app on its own port and store, behind a small real front
server that adds what it lacks: csourceRegistrations. The front records ``POST``/``DELETE`` of
registrations and, like Orion-LD with an exclusive registration, forwards ``PATCH`` of a registered
command attribute and ``GET`` of registered lazy attributes to the registration's endpoint (the agents'
north port); everything else is proxied to the broker. Devices are real aiomqtt clients on Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from broker.api.keys import BUS
from broker.api.server import BrokerRunner
from broker.app import create_app
from broker.services.events import ChangeEvent
from tests.agents.conftest import APIKEY, HEADERS, SERVICE, Stack, eventually, open_stack
from tests.agents.test_southbound import mqtt_client
from tests.conftest import STORES, open_store
from tests.conftest import test_settings as settings_for
from tests.services import Services, free_port

BELL_ID = "urn:ngsi-ld:Bell:001"
BELL = {"device_id": "bell001", "entity_name": BELL_ID, "entity_type": "Bell", "protocol": "IoTA-JSON",
        "transport": "MQTT", "commands": [{"name": "ring", "type": "command"}],
        "lazy": [{"name": "mode", "type": "Text"}, {"name": "temperature", "type": "Number"}],
        "static_attributes": [{"name": "refStore", "type": "Relationship", "value": "urn:ngsi-ld:Building:1"}]}
LD = {"NGSILD-Tenant": SERVICE}
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


@dataclass
class Registration:
    id: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class RemoteBroker:
    """The broker app plus the csourceRegistration front; ``url`` is what the agents get as IOTA_CB_URL."""

    url: str
    broker_url: str
    session: aiohttp.ClientSession
    registrations: dict[str, Registration] = field(default_factory=dict)
    deleted: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    refuse: int | None = None  # answer registration POSTs with this status
    refuse_delete: int | None = None  # and DELETEs with this one

    def registered(self, entity_id: str, attr: str, operation: str) -> Registration | None:
        for reg in self.registrations.values():
            info = reg.body["information"][0]
            if (operation in reg.body["operations"] and attr in info["propertyNames"]
                    and any(e["id"] == entity_id for e in info["entities"])):
                return reg
        return None

    # ------------------------------------------------------------------ front handlers
    async def register(self, request: web.Request) -> web.Response:
        if self.refuse is not None:
            return web.json_response({"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                                      "title": "refused"}, status=self.refuse)
        reg_id = f"urn:ngsi-ld:ContextSourceRegistration:{len(self.registrations) + 1}"
        self.registrations[reg_id] = Registration(reg_id, json.loads(await request.read()),
                                                  dict(request.headers))
        return web.Response(status=201, headers={"Location": f"/ngsi-ld/v1/csourceRegistrations/{reg_id}"})

    async def unregister(self, request: web.Request) -> web.Response:
        reg_id = request.match_info["id"]
        if self.refuse_delete is not None:
            return web.Response(status=self.refuse_delete, text="cannot delete now")
        self.deleted.append((reg_id, dict(request.headers)))
        return web.Response(status=204 if self.registrations.pop(reg_id, None) else 404)

    async def front(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/")  # /ngsi-ld/v1/entities/{id}/attrs/{attr}
        target = self.broker_url
        if request.method == "PATCH" and len(parts) == 7 and parts[5] == "attrs":
            reg = self.registered(parts[4], parts[6], "updateOps")
            target = reg.body["endpoint"] if reg else target
        elif request.method == "GET" and len(parts) == 5 and parts[3] == "entities" and "attrs" in request.query:
            regs = [self.registered(parts[4], a, "retrieveOps") for a in request.query["attrs"].split(",")]
            if regs and all(regs):
                target = regs[0].body["endpoint"]  # type: ignore[union-attr]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self.session.request(request.method, target + request.path_qs, headers=headers,
                                        data=await request.read()) as r:
            body = await r.read()
            out = {k: v for k, v in r.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "date", "server")}
            return web.Response(status=r.status, body=body, headers=out)


@pytest_asyncio.fixture
async def remote(services: Services, tmp_path: Any) -> AsyncIterator[RemoteBroker]:
    broker_port, front_port = free_port(), free_port()
    store = await open_store("sqlite", services, tmp_path)
    broker = create_app(settings_for(port=broker_port), store=store)
    runners: list[web.AppRunner] = [BrokerRunner(broker, access_log=None)]
    session = aiohttp.ClientSession()
    rb = RemoteBroker(f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{broker_port}", session)

    async def record(events: list[ChangeEvent]) -> None:
        rb.events.extend(events)

    broker[BUS].subscribe(record)
    front = web.Application()
    front.router.add_post("/ngsi-ld/v1/csourceRegistrations/", rb.register)
    front.router.add_delete("/ngsi-ld/v1/csourceRegistrations/{id}", rb.unregister)
    front.router.add_route("*", "/{tail:.*}", rb.front)
    runners.append(web.AppRunner(front, access_log=None))
    for runner, port in zip(runners, (broker_port, front_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield rb
    finally:
        await session.close()
        for runner in reversed(runners):
            await runner.cleanup()


@pytest_asyncio.fixture(params=STORES)
async def agents(request: pytest.FixtureRequest, remote: RemoteBroker, services: Services, tmp_path: Any
                 ) -> AsyncIterator[Stack]:
    """The agents (registry on each store in turn) writing to the remote broker."""
    local = tmp_path / "agents"
    local.mkdir()
    stack, close = await open_stack(request.param, services, local, iota_cb_url=remote.url)
    try:
        yield stack
    finally:
        await close()


async def remote_value(stack: Stack, remote: RemoteBroker, attr: str, entity_id: str = BELL_ID) -> Any:
    status, body = await stack.call("GET", f"{remote.broker_url}/ngsi-ld/v1/entities/{entity_id}", headers=LD)
    return body.get(attr, {}).get("value") if status == 200 else None


def remote_statuses(remote: RemoteBroker, cmd: str, entity_id: str = BELL_ID) -> list[Any]:
    iri = DEFAULT_VOCAB + cmd + "_status"
    return [e.after["attrs"][iri][0]["value"] for e in remote.events
            if e.entity_id == entity_id and e.after and iri in e.changed]


async def mqtt_device(stack: Stack, ready: asyncio.Event, received: list[tuple[str, str]]) -> None:
    """A JSON device: answers every command on cmdexe with ``<cmd> done``."""
    async with mqtt_client(stack) as c:
        await c.subscribe(f"/{APIKEY}/+/cmd", qos=1)
        ready.set()
        async for m in c.messages:
            payload = m.payload.decode()  # type: ignore[union-attr]
            received.append((m.topic.value, payload))
            device = m.topic.value.split("/")[2]
            await c.publish(f"/json/{APIKEY}/{device}/cmdexe",
                            json.dumps({k: f"{k} done" for k in json.loads(payload)}), qos=1)


async def test_registration_and_forwarded_command(agents: Stack, remote: RemoteBroker) -> None:
    await agents.provision_group("/iot/json")
    await agents.provision_devices(BELL)
    # the registration the lib sends for NGSI-LD
    [reg] = remote.registrations.values()
    assert reg.body == {
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Bell", "id": BELL_ID}],
                         "propertyNames": ["mode", "temperature", "ring"]}],
        "mode": "exclusive", "operations": ["retrieveOps", "updateOps"], "endpoint": agents.north,
        "contextSourceInfo": [{"key": "jsonldContext", "value": agents.runtime.agents.writer.context}],  # type: ignore[attr-defined]
        "@context": agents.runtime.agents.writer.context,  # type: ignore[attr-defined]
    }
    assert reg.headers["NGSILD-Tenant"] == SERVICE and reg.headers["fiware-service"] == SERVICE
    assert reg.headers["NGSILD-Path"] == "/" and reg.headers["Content-Type"] == "application/ld+json"
    stored = await agents.runtime.agents.registry.get_device(SERVICE, "/", "bell001")
    assert stored["registrationId"] == reg.id
    status, shown = await agents.call("GET", f"{agents.north}/iot/devices/bell001", headers=HEADERS)
    assert status == 200 and "registrationId" not in shown
    # the entity on the remote broker: status and static attributes, not the command (the registration owns it)
    assert await remote_value(agents, remote, "ring_status") == "UNKNOWN"
    assert await remote_value(agents, remote, "ring") is None

    received: list[tuple[str, str]] = []
    ready = asyncio.Event()
    task = asyncio.create_task(mqtt_device(agents, ready, received))
    try:
        await ready.wait()
        # a client updates the command on the remote broker, which forwards it to the agents
        status, body = await agents.call("PATCH", f"{remote.url}/ngsi-ld/v1/entities/{BELL_ID}/attrs/ring",
                                         json={"type": "Property", "value": {"tone": 3}}, headers=LD)
        assert status == 204, body
        await eventually(lambda: _remote_eq(agents, remote, "ring_status", "OK"), "command result on the remote")
        assert await remote_value(agents, remote, "ring_info") == "ring done"
        assert received == [(f"/{APIKEY}/bell001/cmd", '{"ring":{"tone":3}}')]
        assert remote_statuses(remote, "ring") == ["UNKNOWN", "PENDING", "OK"]
        # the same through the other forwarded forms: PATCH .../attrs and merge-patch, names compact or expanded
        status, _ = await agents.call("PATCH", f"{agents.north}/ngsi-ld/v1/entities/{BELL_ID}/attrs", headers=LD,
                                      data=json.dumps({"ring": {"type": "Property", "value": "a"},
                                                       "other": {"type": "Property", "value": 1}}),
                                      )
        assert status == 400  # no JSON content type
        status, _ = await agents.call("PATCH", f"{agents.north}/ngsi-ld/v1/entities/{BELL_ID}/attrs", headers=LD,
                                      json={"ring": {"type": "Property", "value": "a"},
                                            "other": {"type": "Property", "value": 1}})
        assert status == 204
        status, _ = await agents.call("PATCH", f"{agents.north}/ngsi-ld/v1/entities/{BELL_ID}",
                                      headers={**LD, "Content-Type": "application/ld+json"},
                                      data=json.dumps({DEFAULT_VOCAB + "ring": {"value": "b"},
                                                       "@context": "https://example.org/ctx.jsonld"}))
        assert status == 204
        status, _ = await agents.call("PUT", f"{agents.north}/ngsi-ld/v1/entities/{BELL_ID}/attrs/ring",
                                      headers={"fiware-service": SERVICE}, json={"value": "c"})
        assert status == 204
        await eventually(lambda: _count(received, 4), "three more commands")
        assert [p for _, p in received[1:]] == ['{"ring":"a"}', '{"ring":"b"}', '{"ring":"c"}']
        # each one went PENDING; the results, arriving together, may land in one grouped write
        await eventually(lambda: _last_status(remote, "OK"), "every command answered")
        assert remote_statuses(remote, "ring").count("PENDING") == 4
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # nothing was written in the agents' own process
    assert (await agents.entity(BELL_ID))[0] == 404

    # deleting the device deletes its registration
    status, _ = await agents.call("DELETE", f"{agents.north}/iot/devices/bell001", headers=HEADERS)
    assert status == 204
    assert remote.deleted and remote.deleted[0][0] == reg.id
    assert remote.deleted[0][1]["NGSILD-Tenant"] == SERVICE and not remote.registrations
    metrics = agents.runtime.agents.metrics.registrations
    assert metrics[("register", "ok")] == 1 and metrics[("unregister", "ok")] == 1


async def _remote_eq(stack: Stack, remote: RemoteBroker, attr: str, expected: Any) -> bool:
    return await remote_value(stack, remote, attr) == expected


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _last_status(remote: RemoteBroker, status: str) -> bool:
    seen = remote_statuses(remote, "ring")
    return seen.count("PENDING") == 4 and seen[-1] == status


async def test_lazy_attributes_are_answered_like_the_lib(agents: Stack, remote: RemoteBroker) -> None:
    await agents.provision_group("/iot/json")
    await agents.provision_devices(BELL)
    # through the remote broker: the lazy attribute is forwarded to the agents, which have no device query
    status, body = await agents.call("GET", f"{remote.url}/ngsi-ld/v1/entities/{BELL_ID}?attrs=mode", headers=LD)
    assert status == 200, body
    assert body == {"id": BELL_ID, "type": "Bell", "mode": {"type": "Property", "value": ""}}
    # without attrs: every lazy attribute (a Number has no empty value) and the static attributes
    status, body = await agents.call("GET", f"{agents.north}/ngsi-ld/v1/entities/{BELL_ID}", headers=LD)
    assert body == {"id": BELL_ID, "type": "Bell", "mode": {"type": "Property", "value": ""},
                    "refStore": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"}}
    status, body = await agents.call("GET", f"{agents.north}/ngsi-ld/v1/entities?id={BELL_ID}&attrs=ring")
    assert status == 200 and body == [{"id": BELL_ID, "type": "Bell", "ring": {"type": "Property", "value": ""}}]
    status, body = await agents.call("GET", f"{agents.north}/ngsi-ld/v1/entities")
    assert (status, body) == (200, [])


async def test_forwarded_call_errors(agents: Stack, remote: RemoteBroker) -> None:
    await agents.provision_group("/iot/json")
    await agents.provision_devices(BELL)
    base = f"{agents.north}/ngsi-ld/v1/entities"
    status, body = await agents.call("PATCH", f"{base}/urn:ngsi-ld:Bell:nope/attrs/ring", json={"value": 1},
                                     headers=LD)
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND", body
    status, body = await agents.call("PATCH", f"{base}/{BELL_ID}/attrs/ring", json={"value": 1},
                                     headers={"NGSILD-Tenant": "elsewhere"})
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"
    status, body = await agents.call("GET", f"{base}/urn:ngsi-ld:Bell:nope", headers=LD)
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"
    status, body = await agents.call("PATCH", f"{base}/{BELL_ID}/attrs", data="[1]", headers=LD)
    assert status == 400 and body["name"] == "UNSUPPORTED_CONTENT_TYPE"
    status, body = await agents.call("PATCH", f"{base}/{BELL_ID}/attrs", json=[1], headers=LD)
    assert status == 400 and body["name"] == "BAD_REQUEST"
    status, body = await agents.call("PATCH", f"{base}/{BELL_ID}/attrs", data="{", headers={
        **LD, "Content-Type": "application/json"})
    assert status == 400 and body["name"] == "BAD_REQUEST"
    for method, path in (("POST", base), ("DELETE", f"{base}/{BELL_ID}"), ("DELETE", f"{base}/{BELL_ID}/attrs/x")):
        status, body = await agents.call(method, path, json={}, headers=LD)
        assert status == 501 and body["name"] == "METHOD_NOT_IMPLEMENTED", (method, path, body)
    # an attribute that is not a command: accepted and ignored, as the lib's update handler does
    status, _ = await agents.call("PATCH", f"{base}/{BELL_ID}/attrs/mode", json={"value": "x"}, headers=LD)
    assert status == 204
    assert remote_statuses(remote, "ring") == ["UNKNOWN"]


async def test_refused_registration_is_logged_and_counted(agents: Stack, remote: RemoteBroker,
                                                          caplog: Any) -> None:
    await agents.provision_group("/iot/json")
    remote.refuse = 400
    with caplog.at_level("WARNING", logger="agents.registrations"):
        await agents.provision_devices(BELL)  # the device is provisioned all the same
    assert "Error registering context provider for device: bell001 of type: Bell" in caplog.text
    assert "400" in caplog.text
    metrics = agents.runtime.agents.metrics
    assert metrics.registrations[("register", "error")] == 1 and metrics.errors["REGISTRATION_ERROR"] == 1
    stored = await agents.runtime.agents.registry.get_device(SERVICE, "/", "bell001")
    assert "registrationId" not in stored
    status, text = await agents.call("GET", f"{agents.north}/metrics")
    assert 'iota_registrations_total{operation="register",outcome="error"} 1' in text
    # a later update of the device tries again, and succeeds once the broker accepts
    remote.refuse = None
    status, _ = await agents.call("PUT", f"{agents.north}/iot/devices/bell001", headers=HEADERS,
                                  json={"commands": [{"name": "ring", "type": "command"},
                                                     {"name": "stop", "type": "command"}]})
    assert status == 204
    [reg] = remote.registrations.values()
    assert reg.body["information"][0]["propertyNames"] == ["mode", "temperature", "ring", "stop"]
    stored = await agents.runtime.agents.registry.get_device(SERVICE, "/", "bell001")
    assert stored["registrationId"] == reg.id
    # changing the commands again replaces the registration; an unrelated change leaves it
    status, _ = await agents.call("PUT", f"{agents.north}/iot/devices/bell001", headers=HEADERS,
                                  json={"commands": [{"name": "ring", "type": "command"}]})
    assert status == 204
    assert [d for d, _ in remote.deleted] == [reg.id]
    [reg2] = remote.registrations.values()
    assert reg2.body["information"][0]["propertyNames"] == ["mode", "temperature", "ring"]
    status, _ = await agents.call("PUT", f"{agents.north}/iot/devices/bell001", headers=HEADERS,
                                  json={"timezone": "Europe/Madrid"})
    assert status == 204 and list(remote.registrations) == [reg2.id]
    # the broker refuses to unregister: logged and counted, the device is deleted all the same
    remote.refuse_delete = 500
    with caplog.at_level("WARNING", logger="agents.registrations"):
        status, _ = await agents.call("DELETE", f"{agents.north}/iot/devices/bell001", headers=HEADERS)
    assert status == 204
    assert "Error unregistering context provider for device: bell001" in caplog.text
    assert metrics.registrations[("unregister", "error")] == 1 and metrics.errors["UNREGISTRATION_ERROR"] == 1
    assert (await agents.call("GET", f"{agents.north}/iot/devices", headers=HEADERS))[1]["count"] == 0


async def test_autoprovisioned_and_polling_devices(agents: Stack, remote: RemoteBroker) -> None:
    await agents.provision_group("/iot/json", commands=[{"name": "ping", "type": "command"}])
    # a device seen for the first time joins the group and is registered with the group's command
    status, _ = await agents.call("POST", f"{agents.south}/iot/json?k={APIKEY}&i=auto1", json={"t": 1})
    assert status == 200
    await eventually(lambda: _count(list(remote.registrations), 1), "autoprovisioned device registered")
    [reg] = remote.registrations.values()
    assert reg.body["information"] == [{"entities": [{"type": "Thing", "id": "urn:ngsi-ld:Thing:auto1"}],
                                        "propertyNames": ["ping"]}]
    assert reg.body["operations"] == ["updateOps"]

    async def stored_id() -> bool:
        doc = await agents.runtime.agents.registry.get_device(SERVICE, "/", "auto1")
        return doc.get("registrationId") == reg.id

    await eventually(stored_id, "registration id stored")
    # a polling device: the forwarded command waits for the device, its status goes to the remote broker
    await agents.provision_devices({"device_id": "poll1", "entity_type": "Thing", "transport": "HTTP",
                                    "polling": True, "commands": [{"name": "ping", "type": "command"}]})
    entity_id = "urn:ngsi-ld:Thing:poll1"
    status, _ = await agents.call("PATCH", f"{remote.url}/ngsi-ld/v1/entities/{entity_id}/attrs/ping",
                                  json={"value": "now"}, headers=LD)
    assert status == 204
    assert await remote_value(agents, remote, "ping_status", entity_id) == "PENDING"
    status, body = await agents.call("GET", f"{agents.south}/iot/json?k={APIKEY}&i=poll1&getCmd=1")
    assert body == {"ping": "now"}
    assert await remote_value(agents, remote, "ping_status", entity_id) == "DELIVERED"
    status, _ = await agents.call("POST", f"{agents.south}/iot/json/commands?k={APIKEY}&i=poll1",
                                  json={"ping": "pong"})
    assert await remote_value(agents, remote, "ping_info", entity_id) == "pong"
    # deleting the group with its devices removes their registrations
    status, _ = await agents.call("DELETE", f"{agents.north}/iot/groups?resource=/iot/json&apikey={APIKEY}"
                                  "&device=true", headers=HEADERS)
    assert status == 204
    assert not remote.registrations and len(remote.deleted) == 2


async def test_unreachable_broker_for_registrations(agents: Stack, remote: RemoteBroker) -> None:
    await agents.provision_group("/iot/json")
    await agents.provision_devices(BELL)
    [reg] = remote.registrations.values()
    registrations = agents.runtime.agents.registrations
    assert registrations is not None
    registrations.url = f"http://127.0.0.1:{free_port()}/ngsi-ld/v1/csourceRegistrations/"  # nobody listens
    status, _ = await agents.call("PUT", f"{agents.north}/iot/devices/bell001", headers=HEADERS,
                                  json={"commands": [{"name": "knock", "type": "command"}]})
    assert status == 204
    metrics = agents.runtime.agents.metrics
    assert metrics.registrations[("unregister", "error")] == 1 and metrics.registrations[("register", "error")] == 1
    stored = await agents.runtime.agents.registry.get_device(SERVICE, "/", "bell001")
    assert "registrationId" not in stored and list(remote.registrations) == [reg.id]


async def test_forwarded_update_in_process(lite: Stack) -> None:
    """Without IOTA_CB_URL nothing is registered, but a forwarded update still runs the command."""
    assert lite.runtime.agents.registrations is None
    await lite.provision_group("/iot/json")
    await lite.provision_devices({**BELL, "transport": "HTTP", "polling": True})
    status, _ = await lite.call("PATCH", f"{lite.north}/ngsi-ld/v1/entities/{BELL_ID}/attrs/ring",
                                json={"value": "x"}, headers=LD)
    assert status == 204
    status, entity = await lite.entity(BELL_ID)
    assert entity["ring_status"]["value"] == "PENDING"
    status, body = await lite.call("GET", f"{lite.south}/iot/json?k={APIKEY}&i=bell001&getCmd=1")
    assert body == {"ring": "x"}
