"""Health, readiness, version and source-identity endpoints (for load balancers, Docker, operators
and federating brokers)."""

from __future__ import annotations

import platform
import socket
import time
import uuid

from aiohttp import web

from .. import __version__
from ..timeutil import now_iso
from .keys import SETTINGS, STORE
from .reply import Reply

_OK = b'{"status":"ok"}'


async def health(request: web.Request) -> Reply:
    """Liveness: the process answers (load balancers poll it: kept to the cheapest answer)."""
    return Reply(_OK, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    """Readiness: the store answers."""
    try:
        await request.app[STORE].ping()
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        return web.json_response({"status": "unavailable", "store": repr(exc)}, status=503)
    return web.json_response({"status": "ready"})


async def _version_info(request: web.Request) -> dict[str, object]:
    return {
        "name": "ngsild-broker",
        "version": __version__,
        "python": platform.python_version(),
        "store": await request.app[STORE].describe(),
        "coreContext": request.app[SETTINGS].core_context,
    }


async def version(request: web.Request) -> web.Response:
    return web.json_response(await _version_info(request))


_STARTED = time.monotonic()


def _duration(seconds: int) -> str:
    """ISO 8601 duration, e.g. ``P2DT03H04M05S`` (Orion-LD's spelling)."""
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return f"P{days}DT{h:02d}H{m:02d}M{s:02d}S" if days else f"PT{h:02d}H{m:02d}M{s:02d}S"


async def source_identity(request: web.Request) -> web.Response:
    """Context Source Identity (GET /info/sourceIdentity, NGSI-LD v1.8): who answers, since when.

    The id is derived from the host, port and store location, so it stays the same across restarts
    of one deployment; the alias is the host name."""
    settings = request.app[SETTINGS]
    host = socket.gethostname()
    where = f"{settings.mongodb_url}/{settings.mongodb_db}" if settings.mongodb_url else settings.sqlite_path
    seed = f"{host}:{settings.port}:{where}"  # hashed below: a MongoDB URL's credentials stay hidden
    return web.json_response({
        "id": f"urn:ngsi-ld:ContextSource:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}",
        "type": "ContextSourceIdentity",
        "contextSourceUptime": _duration(int(time.monotonic() - _STARTED)),
        "contextSourceTimeAt": now_iso(),
        "contextSourceAlias": host,
        "contextSourceExtras": await _version_info(request),
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/version", version)
    # Orion-LD's path: ngsi-go's `ngsi version` asks it of every NGSI-LD broker of type orion-ld (its default)
    app.router.add_get("/ngsi-ld/ex/v1/version", version)
    app.router.add_get("/ngsi-ld/v1/info/sourceIdentity", source_identity)
