"""/ngsi-ld/v1/entityOperations: batch create, upsert, update, delete and merge."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register this module's routes (filled in as the resource is implemented)."""
