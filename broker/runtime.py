"""Run the NGSI-LD API and the IoT agents in one process, one event loop, one write path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web

from .api.server import BrokerRunner
from .app import create_app
from .config import Settings
from .gctune import freeze_startup, tune
from .mqtt_probe import choose_mqtt_url

log = logging.getLogger("broker")


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Start every listener, wait for SIGINT/SIGTERM (or ``stop``), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tune()
    mqtt_url = await choose_mqtt_url(settings.mqtt_url)
    app = create_app(settings)
    app["mqtt_url"] = mqtt_url
    runners: list[web.AppRunner] = []
    extra: list[Any] = []
    try:
        runner = BrokerRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, settings.host, settings.port, reuse_address=True).start()
        log.info("NGSI-LD API listening", extra={"fields": {"host": settings.host, "port": settings.port}})
        if mqtt_url is None:
            log.warning("MQTT is off: no MQTT_URL and no local Mosquitto on 127.0.0.1:1883. "
                        "Set MQTT_URL=mqtt://host:1883 (or start mosquitto) to turn on MQTT transports "
                        "and MQTT notifications.")
        else:
            log.info("MQTT on", extra={"fields": {"mqtt_url": mqtt_url}})
        if settings.agents:
            from agents.runtime import start_agents

            extra.extend(await start_agents(app, settings, mqtt_url))
        freeze_startup()
        await stop.wait()
    finally:
        log.info("shutting down")
        for item in reversed(extra):
            with contextlib.suppress(Exception):
                await item.cleanup()
        for runner in reversed(runners):
            await runner.cleanup()
