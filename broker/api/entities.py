"""/ngsi-ld/v1/entities: create, retrieve and delete entities."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from ..entities.expand import Expander, check_entity_id
from ..entities.render import CONCISE, NORMALIZED, SIMPLIFIED, Renderer, RenderOptions
from ..errors import BadRequestData
from ..timeutil import now_iso
from .http import JSON, JSONLD, json_response, negotiate, options_param, read_body, tenant_of, term_map
from .keys import ENTITIES, SETTINGS

BASE = "/ngsi-ld/v1"


def render_options(request: web.Request, tm) -> RenderOptions:  # type: ignore[no-untyped-def]
    opts = options_param(request)
    fmt = NORMALIZED
    if "keyValues" in opts or "simplified" in opts:
        fmt = SIMPLIFIED
    elif "concise" in opts:
        fmt = CONCISE
    fmt_param = request.query.get("format")
    if fmt_param:
        if fmt_param in ("keyValues", "simplified"):
            fmt = SIMPLIFIED
        elif fmt_param in (CONCISE, NORMALIZED):
            fmt = fmt_param
        else:
            raise BadRequestData(f"Unknown format {fmt_param!r}")
    attrs = None
    raw_attrs = request.query.get("attrs")
    if raw_attrs:
        attrs = frozenset(tm.expand(a) for a in raw_attrs.split(",") if a)
    return RenderOptions(format=fmt, sys_attrs="sysAttrs" in opts, attrs=attrs, lang=request.query.get("lang"))


async def create_entity(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body, context = await read_body(request)
    tm = await term_map(request, context, from_link=False)
    entity = Expander(tm, now_iso()).entity(body)
    await request.app[ENTITIES].create(tenant, entity)
    return web.Response(status=201, headers={"Location": f"{BASE}/entities/{quote(entity['id'], safe=':')}"})


async def retrieve_entity(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    media = negotiate(request, (JSON, JSONLD))
    entity_id = check_entity_id(request.match_info["entityId"])
    tm = await term_map(request)
    entity = await request.app[ENTITIES].get(tenant, entity_id)
    body = Renderer(tm, render_options(request, tm)).entity(entity)
    return json_response(body, media=media, tm=tm, core_url=request.app[SETTINGS].core_context)


async def delete_entity(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    entity_id = check_entity_id(request.match_info["entityId"])
    await request.app[ENTITIES].delete(tenant, entity_id)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{BASE}/entities", create_entity)
    app.router.add_post(f"{BASE}/entities/", create_entity)
    app.router.add_get(f"{BASE}/entities/{{entityId}}", retrieve_entity)
    app.router.add_delete(f"{BASE}/entities/{{entityId}}", delete_entity)
