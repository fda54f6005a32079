"""The transport-independent southbound path: identify the device, map its measures, queue the write.

Both transports (MQTT and HTTP) call :class:`Southbound`; every refusal is logged, counted in ``/metrics``
by transport and error code, and raised as an :class:`IotaError` (HTTP turns it into the lib's
``{name, message}`` body; MQTT has no one to answer, so it only logs and counts).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agents import clock
from agents.errors import DeviceGroupNotFound, DeviceNotFound, IotaError
from agents.ingest import Ingestor
from agents.mapping import build_entities, command_entity
from agents.metrics import AgentMetrics
from agents.registry import Provisioned, Registry
from agents.writer import Writer

log = logging.getLogger("agents.south")

JSON = "IoTA-JSON"
UL = "IoTA-UL"


class Southbound:
    def __init__(self, registry: Registry, ingestor: Ingestor, writer: Writer, metrics: AgentMetrics) -> None:
        self.registry = registry
        self.ingestor = ingestor
        self.writer = writer
        self.metrics = metrics

    async def device(self, transport: str, protocol: str, apikey: str, device_id: str,
                     resource: str | None = None, *, autoprovision: bool = True) -> Provisioned:
        """The provisioned device behind (apikey, device_id), autoprovisioned when its group allows it."""
        group = self.registry.find_group(apikey, resource)
        doc = self.registry.find_device(apikey, device_id, group)
        if doc is None:
            if group is None:
                raise DeviceGroupNotFound({"resource": resource, "apikey": apikey} if resource
                                          else {"apikey": apikey})
            if not autoprovision or group.get("autoprovision") is False:
                raise DeviceNotFound(device_id, {"apikey": apikey})
            doc = await self.registry.autoprovision(group, device_id, transport.upper(), protocol)
        elif group is None and doc.get("apikey"):
            group = self.registry.find_group(doc["apikey"], doc.get("resource"))
        return self.registry.provisioned(doc, group)

    def reject(self, transport: str, exc: IotaError, measures: int, what: str) -> None:
        self.metrics.reject(transport, exc.code, measures)
        log.warning("%s refused: %s", what, exc.message,
                    extra={"fields": {"transport": transport, "code": exc.code}})

    async def measures(self, transport: str, protocol: str, apikey: str, device_id: str,
                       groups: list[dict[str, Any]], resource: str | None = None) -> asyncio.Future[None]:
        """Map and queue measure groups; the returned future resolves once they are written."""
        n = len(groups) or 1
        self.metrics.received[transport] += n
        try:
            dev = await self.device(transport, protocol, apikey, device_id, resource)
            entities = build_entities(dev.profile, groups, now=clock.now())
            prepared = await self.writer.prepare(entities)
        except IotaError as exc:
            self.reject(transport, exc, n, f"measure from {apikey}/{device_id}")
            raise
        return await self.ingestor.enqueue(dev.tenant, dev.profile.subservice, prepared, n, transport)

    async def command_results(self, transport: str, apikey: str, device_id: str, results: dict[str, Any],
                              resource: str | None = None) -> asyncio.Future[None]:
        """``cmdexe`` / ``/iot/json/commands``: ``<cmd>_status`` OK and ``<cmd>_info`` = result."""
        self.metrics.received[transport] += 1
        try:
            dev = await self.device(transport, "", apikey, device_id, resource, autoprovision=False)
            entities = []
            for command, result in results.items():
                entities.append(command_entity(dev.profile, command, "OK", result))
                self.metrics.commands[(transport, "OK")] += 1
            prepared = await self.writer.prepare(entities)
        except IotaError as exc:
            self.reject(transport, exc, 1, f"command result from {apikey}/{device_id}")
            raise
        return await self.ingestor.enqueue(dev.tenant, dev.profile.subservice, prepared, 1, transport)

    async def configuration(self, dev: Provisioned, fields: list[str]) -> dict[str, Any]:
        """Current values of the requested attributes of the device's entity."""
        return await self.writer.read(dev.tenant, dev.entity_id, fields) or {}
