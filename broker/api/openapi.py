"""/openapi.yaml and /openapi.json: the API description, limited to the operations this app registers.

``broker/openapi.yaml`` describes the NGSI-LD API the broker implements or plans; serving only what
the router really has keeps the served document honest while endpoints are still being added.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import orjson
import yaml
from aiohttp import web

from .keys import SERVICES

SERVICE = "openapi"
METHODS = ("get", "put", "post", "delete", "patch")
_PARAM = re.compile(r"\{[^}]*\}")


@cache
def load_document() -> dict[str, Any]:
    """The full OpenAPI document shipped in the package (parsed once per process; read-only)."""
    text = resources.files("broker").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def route_key(path: str) -> str:
    """A path with its parameter names (and aiohttp regexes) blanked and no trailing slash."""
    path = _PARAM.sub("{}", path)
    return path.rstrip("/") or "/"


def registered_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, route key) of every route the app serves, HEAD and OPTIONS left out."""
    ops: set[tuple[str, str]] = set()
    for route in app.router.routes():
        method = route.method.lower()
        if method in METHODS and route.resource is not None:
            ops.add((method, route_key(route.resource.canonical)))
    return ops


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, route_key(p)) for p, item in doc.get("paths", {}).items() for m in item if m in METHODS}


def served_document(doc: dict[str, Any], ops: set[tuple[str, str]]) -> dict[str, Any]:
    """``doc`` with only the operations in ``ops``."""
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        kept = {k: v for k, v in item.items() if k not in METHODS or (k, route_key(path)) in ops}
        if any(k in METHODS for k in kept):
            paths[path] = kept
    return {**doc, "paths": paths}


def _served(app: web.Application) -> dict[str, bytes]:
    """Rendered on first request, not at start-up: parsing the YAML costs seconds per process."""
    cached = app[SERVICES].get(SERVICE)
    if cached is None:
        served = served_document(load_document(), registered_operations(app))
        cached = app[SERVICES][SERVICE] = {
            "yaml": yaml.safe_dump(served, sort_keys=False, allow_unicode=True).encode(),
            "json": orjson.dumps(served),
        }
    return cached


async def openapi_yaml(request: web.Request) -> web.Response:
    return web.Response(body=_served(request.app)["yaml"], content_type="application/yaml")


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_served(request.app)["json"], content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.yaml", openapi_yaml)
    app.router.add_get("/openapi.json", openapi_json)
