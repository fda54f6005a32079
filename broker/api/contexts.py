"""/ngsi-ld/v1/jsonldContexts: list, serve, add, delete and reload @context documents."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register this module's routes (filled in as the resource is implemented)."""
