"""Commands: a PATCH of a command attribute reaches the device over MQTT, HTTP push or polling.

In-process the agent needs no csourceRegistration: it listens to the broker's change events and reacts to
writes (not its own, ``source != "agent"``) that touch a provisioned command of a known device entity.
It writes ``<cmd>_status`` PENDING, sends the command, and later OK/ERROR (DELIVERED when a polling device
fetched it) with ``<cmd>_info`` carrying the result, through the same grouped write path as measures.
With a remote broker (``IOTA_CB_URL``) the same ``execute`` runs for the updates that broker forwards
(``agents/context_provider.py``), and the statuses go to that broker. What is sent is built by
``agents/command_payload.py``. Polling commands older than ``IOTA_POLLING_EXPIRATION`` end as
ERROR / EXPIRED (``expire_polled``).

At provisioning the device entity is created with its command attributes (value ``""``), static attributes
and ``<cmd>_status`` UNKNOWN, so ``PATCH .../attrs/<cmd>`` finds them: iotagent-node-lib's
``cmdMode: notification`` behaviour, and what users expect (its default creates the entity only at the
first measure). A remote broker gets no command attributes (its exclusive registration owns them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from agents import iotajson, ultralight
from agents.command_payload import (
    command_value,
    device_payload,
    endpoint_url,
    expression_error,
    http_headers,
    is_ultralight,
)
from agents.errors import InvalidExpression, IotaError
from agents.ingest import Ingestor
from agents.jexl import iso_string
from agents.mapping import command_attributes, command_entity, convert_attribute, observed_at
from agents.metrics import AgentMetrics
from agents.registry import Provisioned, Registry
from agents.writer import LocalWriter, Writer
from broker.periodic import every, stop
from broker.services.events import ChangeEvent
from broker.store.base import Store
from broker.timeutil import now_iso

log = logging.getLogger("agents.commands")

POLL_COLLECTION = "iota_commands"
EXPIRED = "EXPIRED"
Publisher = Callable[[str, str | bytes, int, bool], Awaitable[None]]


class Commands:
    def __init__(self, registry: Registry, writer: Writer, ingestor: Ingestor, store: Store,
                 metrics: AgentMetrics, *, polling_expiration: float = 0.0, polling_sweep: float = 1.0) -> None:
        """``polling_expiration``: seconds a polling command may wait (0 = forever); ``polling_sweep``:
        seconds between two sweeps for expired ones."""
        self.polling_expiration = polling_expiration
        self.polling_sweep = polling_sweep
        self._sweeper: asyncio.Task[None] | None = None
        self.registry = registry
        self.writer = writer
        self.ingestor = ingestor
        self.store = store
        self.metrics = metrics
        self.publish: Publisher | None = None
        self.session: aiohttp.ClientSession | None = None
        self.index: dict[tuple[str, str], Provisioned] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        registry.listeners.append(self.reindex)
        registry.created_hooks.append(self.autoprovisioned)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.reindex()
        if self.polling_expiration > 0:
            self._sweeper = every(self.polling_sweep, self.expire_polled, "iota-poll-expiry")

    async def close(self) -> None:
        await stop(self._sweeper)
        self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def reindex(self) -> None:
        self.index = {(p.tenant, p.entity_id): p for p in self.registry.command_devices()}

    def autoprovisioned(self, doc: dict[str, Any]) -> None:
        """Registry hook: a device autoprovisioned into a group with commands takes commands at once."""
        dev = self.registry.provisioned_doc(doc)
        if dev is not None and dev.profile.commands:
            self.index[(dev.tenant, dev.entity_id)] = dev

    # ------------------------------------------------------------------ provisioning
    async def provisioned(self, docs: list[dict[str, Any]]) -> None:
        """Create (or complete) the entity of newly provisioned devices that have commands or static attrs."""
        for doc in docs:
            group = self.registry.find_group(doc["apikey"], doc.get("resource")) if doc.get("apikey") else None
            try:
                dev = self.registry.provisioned(doc, group)
            except IotaError:
                continue
            prof = dev.profile
            if not prof.commands and not prof.static_attributes:
                continue
            entity: dict[str, Any] = {"id": prof.entity_id, "type": prof.entity_type}
            stamp = observed_at(datetime.now(UTC)) if prof.timestamp else None
            for s in prof.static_attributes:
                attr = convert_attribute(s.get("type"), s.get("value"), s.get("metadata"), observed=stamp)
                if attr is not None:
                    entity[s["name"]] = attr
            for c in prof.commands:
                if isinstance(self.writer, LocalWriter):
                    # a remote broker gets no value for the command itself: its exclusive
                    # csourceRegistration forwards that attribute to us
                    entity[c["name"]] = {"type": "Property", "value": ""}
                entity.update(command_attributes(c["name"], "UNKNOWN"))
            try:
                prepared = await self.writer.prepare([entity])
                await self.ingestor.submit(dev.tenant, prof.subservice, prepared, 0, "provisioning")
            except IotaError as exc:
                log.warning("could not create the entity of device %s: %s", dev.device_id, exc.message)
        self.reindex()

    # ------------------------------------------------------------------ change events
    async def on_events(self, events: list[ChangeEvent]) -> None:
        """Broker bus listener: start a command for every command attribute an API write touched."""
        if not self.index:
            return
        for ev in events:
            if ev.source == "agent" or ev.kind == "delete" or ev.after is None:
                continue
            dev = self.index.get((ev.tenant, ev.entity_id))
            if dev is None:
                continue
            touched = ev.created | ev.updated
            if not isinstance(self.writer, LocalWriter):
                continue
            tm = await self.writer.term_map()
            for cmd in dev.profile.commands:
                iri = tm.expand(cmd["name"])
                if iri not in touched:
                    continue
                instances = ev.after.get("attrs", {}).get(iri) or [{}]
                value = instances[0].get("value", instances[0].get("json", ""))
                self._spawn(self.execute(dev, cmd, value))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _status(self, dev: Provisioned, command: str, status: str, info: Any = None,
                      with_info: bool = True) -> None:
        entity = (command_entity(dev.profile, command, status, info) if with_info
                  else command_entity(dev.profile, command, status))
        prepared = await self.writer.prepare([entity])
        await self.ingestor.submit(dev.tenant, dev.profile.subservice, prepared, 0, "command")

    async def execute(self, dev: Provisioned, cmd: dict[str, Any], value: Any) -> None:
        """PENDING, then send by the device's transport (MQTT, HTTP push, or queue for polling).

        Never raises: any failure (an expression that cannot be evaluated, a device that cannot be
        reached) ends the command as ERROR with the reason in ``<cmd>_info``.
        """
        name = cmd["name"]
        transport = str(dev.setting("transport") or "").upper()
        endpoint = dev.setting("endpoint")
        polling = bool(dev.doc.get("polling")) or (transport == "HTTP" and not endpoint)
        try:
            await self._status(dev, name, "PENDING", with_info=False)
            if polling or (transport != "HTTP" and not endpoint and self.publish is None and transport != "MQTT"):
                await self._queue_poll(dev, cmd, value)
                self.metrics.commands[("poll", "PENDING")] += 1
            elif transport == "HTTP" or (endpoint and transport != "MQTT"):
                await self._push_http(dev, cmd, str(endpoint), value)
            else:
                await self._push_mqtt(dev, cmd, value)
        except Exception as exc:  # noqa: BLE001 - any failure ends the command as ERROR
            if isinstance(exc, InvalidExpression):
                info = expression_error(exc)
            elif isinstance(exc, IotaError):
                info = exc.message
            else:
                info = str(exc) or type(exc).__name__
            log.warning("command %s for %s failed: %s", name, dev.device_id, info)
            self.metrics.commands[(transport.lower() or "mqtt", "ERROR")] += 1
            try:
                await self._status(dev, name, "ERROR", info)
            except Exception:  # noqa: BLE001
                log.exception("could not record the failure of command %s", name)

    async def _push_mqtt(self, dev: Provisioned, cmd: dict[str, Any], value: Any) -> None:
        if self.publish is None:
            raise RuntimeError("MQTT is off: the command cannot be sent")
        payload = device_payload(dev, cmd, value)
        opts = cmd.get("mqtt") or {}
        qos = int(opts.get("qos", 1) or 0)
        topic = f"/{dev.apikey}/{dev.device_id}/cmd"
        await self.publish(topic, payload, qos, bool(opts.get("retain")))
        self.metrics.commands[("mqtt", "PENDING")] += 1

    async def _push_http(self, dev: Provisioned, cmd: dict[str, Any], endpoint: str, value: Any) -> None:
        assert self.session is not None
        ul = is_ultralight(dev)
        name = cmd["name"]
        payload = device_payload(dev, cmd, value)
        url = endpoint_url(dev, endpoint)
        async with self.session.post(url, data=payload if isinstance(payload, bytes) else payload.encode(),
                                     headers=http_headers(dev, cmd)) as r:
            body = await r.text()
            status = r.status
        if status >= 300:
            self.metrics.commands[("http", "ERROR")] += 1
            await self._status(dev, name, "ERROR", f"HTTP {status} from {url}")
            return
        info: Any = body
        try:
            if ul:
                info = ultralight.parse_command_result(body).result
            else:
                parsed = iotajson.parse_command_results(body)
                info = parsed.get(name, parsed)
        except IotaError:
            pass
        self.metrics.commands[("http", "OK")] += 1
        await self._status(dev, name, "OK", info)

    # ------------------------------------------------------------------ polling
    @staticmethod
    def _poll_prefix(dev: Provisioned) -> str:
        return f"{dev.apikey}|{dev.device_id}|"

    async def _queue_poll(self, dev: Provisioned, cmd: dict[str, Any], value: Any) -> None:
        prefix = self._poll_prefix(dev)
        name = cmd["name"]
        await self.store.put_doc(dev.tenant, POLL_COLLECTION, prefix + name,
                                 {"device": prefix, "apikey": dev.apikey, "device_id": dev.device_id,
                                  "name": name, "value": command_value(dev, cmd, value), "created": now_iso()})

    async def take_polled(self, dev: Provisioned) -> dict[str, Any]:
        """Pending commands of a polling device (``getCmd=1``); they become DELIVERED.

        Deleting the document decides who delivers it, so two agent processes never hand out one twice.
        """
        prefix = self._poll_prefix(dev)
        pending: dict[str, Any] = {}
        for doc in await self.store.list_docs(dev.tenant, POLL_COLLECTION):
            if doc.get("device") != prefix:
                continue
            if await self.store.delete_doc(dev.tenant, POLL_COLLECTION, prefix + doc["name"]):
                pending[doc["name"]] = doc["value"]
        for name in pending:
            self.metrics.commands[("poll", "DELIVERED")] += 1
            await self._status(dev, name, "DELIVERED", with_info=False)
        return pending

    async def expire_polled(self) -> None:
        """Drop the polling commands older than the expiration time: ``<cmd>_status`` ERROR, ``<cmd>_info``
        EXPIRED (the lib's expiration daemon). Deleting the document decides which process reports it."""
        cutoff = iso_string(datetime.now(UTC) - timedelta(seconds=self.polling_expiration))
        for tenant in await self.store.tenants():
            for doc in await self.store.list_docs(tenant, POLL_COLLECTION):
                if doc.get("created", "") >= cutoff:
                    continue
                if not await self.store.delete_doc(tenant, POLL_COLLECTION, doc["device"] + doc["name"]):
                    continue
                dev = self._device_of(doc)
                self.metrics.commands[("poll", EXPIRED)] += 1
                if dev is None:
                    continue
                log.info("polling command %s for %s expired", doc["name"], dev.device_id)
                try:
                    await self._status(dev, doc["name"], "ERROR", EXPIRED)
                except IotaError as exc:
                    log.warning("could not record the expiry of command %s: %s", doc["name"], exc.message)

    def _device_of(self, doc: dict[str, Any]) -> Provisioned | None:
        apikey, device_id = doc.get("apikey"), doc.get("device_id")
        if apikey is None or device_id is None:
            apikey, device_id, _ = (doc.get("device") or "||").split("|", 2)
        group = self.registry.find_group(apikey, None)
        found = self.registry.find_device(apikey, device_id, group)
        if found is None:
            return None
        if group is None and found.get("apikey"):
            group = self.registry.find_group(found["apikey"], found.get("resource"))
        try:
            return self.registry.provisioned(found, group)
        except IotaError:
            return None
