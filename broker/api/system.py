"""Health, readiness and version endpoints (for load balancers, Docker and operators)."""

from __future__ import annotations

import platform

from aiohttp import web

from .. import __version__
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


async def version(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return web.json_response({
        "name": "ngsild-broker",
        "version": __version__,
        "python": platform.python_version(),
        "store": await store.describe(),
        "coreContext": request.app[SETTINGS].core_context,
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/version", version)
    # Orion-LD's path: ngsi-go's `ngsi version` asks it of every NGSI-LD broker of type orion-ld (its default)
    app.router.add_get("/ngsi-ld/ex/v1/version", version)
