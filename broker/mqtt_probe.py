"""Decide which MQTT server, if any, the process uses (``MQTT_URL`` or a local Mosquitto)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

LOCAL = "mqtt://127.0.0.1:1883"


async def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def choose_mqtt_url(configured: str) -> str | None:
    """``MQTT_URL`` when set; else the local Mosquitto on 1883 when it answers; else None."""
    if configured:
        if configured.lower() in ("off", "none", "disabled"):
            return None
        return configured
    parts = urlsplit(LOCAL)
    if await _port_open(parts.hostname or "127.0.0.1", parts.port or 1883):
        return LOCAL
    return None
