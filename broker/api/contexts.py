"""/ngsi-ld/v1/jsonldContexts: list, serve, add, delete and reload @context documents (clause 5.13)."""

from __future__ import annotations

from urllib.parse import unquote

import orjson
from aiohttp import web

from ..errors import BadRequestData, InvalidRequest, UnsupportedMediaType
from ..services.contexts import ContextService, location_of
from .http import JSON, JSONLD, negotiate
from .keys import RESOLVER, SERVICES, SETTINGS
from .reply import Reply

BASE = "/ngsi-ld/v1/jsonldContexts"
SERVICE = "contexts"


def _service(request: web.Request) -> ContextService:
    return request.app[SERVICES][SERVICE]


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _flag(request: web.Request, name: str) -> bool:
    """A strict true/false query parameter (anything else is 400, as the spec's tests demand)."""
    raw = request.query.get(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadRequestData(f"Parameter {name} must be true or false; got {raw!r}")


def _context_id(request: web.Request) -> str:
    """The contextId segment, undecoded by the router: a localId or a percent-encoded URL."""
    raw = request.raw_path.split("?", 1)[0]
    return unquote(raw[len(BASE) + 1:])


def _json(data: object, media: str = JSON, status: int = 200) -> Reply:
    return Reply(body=orjson.dumps(data), status=status, content_type=media)


async def list_contexts(request: web.Request) -> Reply:
    details = _flag(request, "details")
    entries = _service(request).list(request.query.get("kind"))
    origin = _origin(request)
    if details:
        return _json([ContextService.info(e, origin) for e in entries])
    return _json([ContextService.info(e, origin)["URL"] for e in entries])


async def serve_context(request: web.Request) -> Reply:
    details = _flag(request, "details")
    entry = _service(request).get(_context_id(request))
    if details:
        return _json(ContextService.info(entry, _origin(request)))
    return _json(entry.document, negotiate(request, (JSON, JSONLD)))


async def add_context(request: web.Request) -> Reply:
    ctype = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if ctype not in (JSON, JSONLD):
        raise UnsupportedMediaType(f"Content-Type must be {JSON} or {JSONLD}; got {ctype or 'none'}")
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON: {exc}") from exc
    entry = await _service(request).add(body)
    return Reply(status=201, headers={"Location": location_of(entry)})


async def delete_context(request: web.Request) -> Reply:
    reload = _flag(request, "reload")
    await _service(request).delete(_context_id(request), reload)
    return Reply(status=204)


def add_routes(app: web.Application) -> None:
    app[SERVICES][SERVICE] = ContextService(app[RESOLVER], app[SETTINGS].core_context)
    app.router.add_get(BASE, list_contexts)
    app.router.add_post(BASE, add_context)
    app.router.add_get(BASE + "/{contextId:.+}", serve_context)
    app.router.add_delete(BASE + "/{contextId:.+}", delete_context)
