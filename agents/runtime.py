"""Start the IoT agents beside the broker: provisioning API (north) and HTTP southbound port."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from broker import __version__
from broker.config import Settings

log = logging.getLogger("agents")


async def _about(request: web.Request) -> web.Response:
    settings: Settings = request.app["settings"]
    return web.json_response({"libVersion": __version__, "port": str(settings.iota_north_port),
                              "baseRoot": "/", "version": __version__})


def create_north_app(settings: Settings) -> web.Application:
    app = web.Application()
    app["settings"] = settings
    app.router.add_get("/iot/about", _about)
    app.router.add_get("/version", _about)
    return app


def create_south_app(settings: Settings) -> web.Application:
    return web.Application()


async def start_agents(broker_app: web.Application, settings: Settings, mqtt_url: str | None) -> list[Any]:
    """Open the agents' ports; returns runners to clean up on shutdown."""
    runners: list[Any] = []
    for app, port, what in ((create_north_app(settings), settings.iota_north_port, "provisioning"),
                            (create_south_app(settings), settings.iota_http_port, "HTTP southbound")):
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, settings.host, port, reuse_address=True).start()
        runners.append(runner)
        log.info("IoT agent %s listening", what, extra={"fields": {"port": port}})
    return runners
