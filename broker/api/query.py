"""GET /ngsi-ld/v1/entities and POST /ngsi-ld/v1/entityOperations/query: entity queries."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register this module's routes (filled in as the resource is implemented)."""
