"""/ngsi-ld/v1/types and /ngsi-ld/v1/attributes: what types and attributes exist."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register this module's routes (filled in as the resource is implemented)."""
