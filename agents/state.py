"""What one agent process holds, shared by its two aiohttp apps (north and south) through ``web.AppKey``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agents.ingest import Ingestor
from agents.metrics import AgentMetrics
from agents.registry import Registry
from agents.southbound import Southbound
from agents.writer import Writer
from broker.config import Settings
from broker.store.base import Store

if TYPE_CHECKING:
    from agents.commands import Commands
    from agents.mqtt import MqttTransport
    from agents.registrations import Registrations


@dataclass
class Agents:
    settings: Settings
    store: Store
    registry: Registry
    metrics: AgentMetrics
    writer: Writer
    ingestor: Ingestor
    south: Southbound
    commands: Commands
    mqtt: MqttTransport | None = None
    registrations: Registrations | None = None  # with a remote broker (IOTA_CB_URL) only
    extra: dict[str, Any] = field(default_factory=dict)


AGENTS: web.AppKey[Agents] = web.AppKey("agents", Agents)
