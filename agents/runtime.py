"""Start the IoT agents beside the broker: provisioning API (north), HTTP southbound and, with an MQTT URL,
the MQTT transport; all on the broker's event loop, writing through the broker's own write path (or to
``IOTA_CB_URL``)."""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web

from agents.coalesce import coalesce
from agents.commands import Commands
from agents.http_south import create_south_app
from agents.ingest import Ingestor
from agents.metrics import AgentMetrics
from agents.mqtt import MqttTransport
from agents.provisioning import create_north_app
from agents.registrations import Registrations
from agents.registry import Registry
from agents.southbound import Southbound
from agents.state import Agents
from agents.writer import LocalWriter, RemoteWriter, Writer, json_ld_context
from broker.api.keys import BUS, STORE
from broker.api.server import BrokerRunner
from broker.config import Settings
from broker.errors import NgsiLdError

log = logging.getLogger("agents")


def iota_error_response(err: NgsiLdError) -> web.Response:
    """A request refused before any handler (malformed, too long) or unanswered by one, as the lib's
    ``{name, message}``."""
    name = "INTERNAL_ERROR" if err.status >= 500 else "BAD_REQUEST"
    return web.json_response({"name": name, "message": err.detail}, status=err.status)


class IotaAppRunner(BrokerRunner):
    """The agents' ports on the broker's HTTP server; protocol faults answered as the lib does."""

    error_response = staticmethod(iota_error_response)


class AgentRuntime:
    """Everything ``start_agents`` started, closed in reverse order by ``cleanup()``."""

    def __init__(self, agents: Agents, runners: list[web.AppRunner], sites: list[web.TCPSite]) -> None:
        self.agents = agents
        self.runners = runners
        self.sites = sites

    @property
    def ports(self) -> list[int]:
        """The bound ports (north, south), useful when started on port 0."""
        out = []
        for site in self.sites:
            server = site._server  # noqa: SLF001 - aiohttp exposes no public accessor
            out.append(server.sockets[0].getsockname()[1] if server and server.sockets else 0)
        return out

    async def cleanup(self) -> None:
        a = self.agents
        for runner in reversed(self.runners):
            await runner.cleanup()
        if a.mqtt is not None:
            await a.mqtt.close()
        await a.ingestor.close()
        await a.commands.close()
        if a.registrations is not None:
            await a.registrations.close()
        await a.registry.close()
        await a.writer.close()


def build_agents(broker_app: web.Application, settings: Settings) -> Agents:
    store = broker_app[STORE]
    context = json_ld_context(settings.iota_json_ld_context)
    writer: Writer
    if settings.iota_cb_url:
        writer = RemoteWriter(settings.iota_cb_url, context, settings.core_context)
    else:
        writer = LocalWriter(broker_app, context)
    metrics = AgentMetrics()
    registry = Registry(store, default_resource=settings.iota_default_resource)
    # in-process, same-entity fragments of a grouped write are merged before the store (agents/coalesce.py)
    ingestor = Ingestor(writer, metrics, coalesce=coalesce if isinstance(writer, LocalWriter) else None)
    south = Southbound(registry, ingestor, writer, metrics)
    commands = Commands(registry, writer, ingestor, store, metrics,
                        polling_expiration=settings.iota_polling_expiration / 1000,
                        polling_sweep=settings.iota_polling_daemon_freq / 1000)
    agents = Agents(settings=settings, store=store, registry=registry, metrics=metrics, writer=writer,
                    ingestor=ingestor, south=south, commands=commands)
    if isinstance(writer, RemoteWriter):
        agents.registrations = Registrations(registry, metrics, settings.iota_cb_url, provider_url(settings),
                                             writer.context)
    return agents


def provider_url(settings: Settings) -> str:
    """``IOTA_PROVIDER_URL``, else this host's north port (the bind address, or the host name when the
    agents listen on every interface)."""
    if settings.iota_provider_url:
        return settings.iota_provider_url.rstrip("/")
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else socket.gethostname()
    return f"http://{host}:{settings.iota_north_port}"


async def start_agents(broker_app: web.Application, settings: Settings, mqtt_url: str | None,
                       *, share_group: str = "iota") -> list[Any]:
    """Open the agents' ports and transports; returns objects whose ``cleanup()`` stops them.

    Processes with the same ``share_group`` share the MQTT traffic (MQTT v5 shared subscriptions).
    """
    agents = build_agents(broker_app, settings)
    await agents.writer.start()
    await agents.registry.start()
    await agents.ingestor.start()
    await agents.commands.start()
    if agents.registrations is not None:
        await agents.registrations.start()
    broker_app[BUS].subscribe(agents.commands.on_events)
    if mqtt_url:
        agents.mqtt = MqttTransport(mqtt_url, agents.south, agents.commands, agents.metrics,
                                    share_group=share_group,
                                    identifier=f"iota-{socket.gethostname()}-{settings.iota_north_port}")
        agents.commands.publish = agents.mqtt.publish
        await agents.mqtt.start()
    runners: list[web.AppRunner] = []
    sites: list[web.TCPSite] = []
    for app, port, what in ((create_north_app(agents), settings.iota_north_port, "provisioning"),
                            (create_south_app(agents), settings.iota_http_port, "HTTP southbound")):
        runner = IotaAppRunner(app, max_body=settings.max_body_bytes, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, port, reuse_address=True)
        await site.start()
        runners.append(runner)
        sites.append(site)
        log.info("IoT agent %s listening", what, extra={"fields": {"port": port}})
    return [AgentRuntime(agents, runners, sites)]
