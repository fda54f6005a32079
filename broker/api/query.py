"""GET /ngsi-ld/v1/entities and POST /ngsi-ld/v1/entityOperations/query: entity queries.

Also DELETE /ngsi-ld/v1/entities (v1.9 clause 5.6.21, delete entities by query).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..entities.geojson import feature_collection
from ..entities.render import Renderer
from ..errors import BadRequestData
from ..jsonld.termmap import TermMap
from ..services.linked import Linker
from ..services.query import (
    PURGE_PARAMS,
    QUERY_PARAMS,
    QuerySpec,
    attr_iris,
    from_body,
    from_params,
    require_selection,
    split_list,
)
from .http import (
    GEOJSON,
    JSON,
    JSONLD,
    check_query_params,
    json_list_response,
    json_response,
    negotiate,
    read_body,
    response_context,
    tenant_of,
    term_map,
)
from .keys import QUERY, RENDERED, SETTINGS, STORE
from .reply import Reply

BASE = "/ngsi-ld/v1"
OFFERED = (JSON, JSONLD, GEOJSON)


def _page_links(request: web.Request, spec: QuerySpec, more: bool) -> list[str]:
    """``Link`` headers to the next and previous pages, keeping every other parameter."""
    q = spec.query
    links = []
    if more and q.limit:
        url = request.rel_url.update_query(offset=str(q.offset + q.limit), limit=str(q.limit))
        links.append(f'<{url}>; rel="next"; type="{JSON}"')
    if q.offset > 0 and q.limit:
        url = request.rel_url.update_query(offset=str(max(0, q.offset - q.limit)), limit=str(q.limit))
        links.append(f'<{url}>; rel="prev"; type="{JSON}"')
    return links


async def _answer(request: web.Request, tenant: str, spec: QuerySpec, tm: TermMap, media: str) -> Reply:
    settings = request.app[SETTINGS]
    page, total, more = await request.app[QUERY].query(tenant, spec)
    if spec.join.join is None and spec.pick is None and spec.omit is None and media != GEOJSON:
        return _cached_page(request, tenant, spec, tm, media, page, total, more)
    linker = Linker(request.app[STORE], tenant, tm, spec.render, spec.join, spec.pick, spec.omit)
    # an entity left with no member by pick / omit is not part of the answer (clause 4.21)
    pairs = [(e, r) for e, r in await linker.render(page) if r]
    headers: dict[str, str] = {}
    if total is not None:
        headers["NGSILD-Results-Count"] = str(total)
    if media == GEOJSON:
        body: Any = feature_collection(pairs, spec.geometry_property, response_context(tm, settings.core_context))
        resp = Reply(body=orjson.dumps(body), content_type=GEOJSON, headers=headers)
    else:
        resp = json_response([r for _, r in pairs], media=media, tm=tm,
                             core_url=settings.core_context, headers=headers)
    for link in _page_links(request, spec, more):
        resp.headers.add("Link", link)
    return resp


def _cached_page(request: web.Request, tenant: str, spec: QuerySpec, tm: TermMap, media: str,
                 page: list[dict[str, Any]], total: int | None, more: bool) -> Reply:
    """A page without join / pick / omit: each entity rendered on its own (the same bytes ``_answer``
    would give), through the app's cache of rendered entities, so the entities that recur at the head
    of query answers are rendered once per change instead of once per query."""
    core = request.app[SETTINGS].core_context
    renderer = Renderer(tm, spec.render)
    if media == JSONLD:
        ctx = response_context(tm, core)

        def render(entity: dict[str, Any]) -> bytes:
            return orjson.dumps({**renderer.entity(entity), "@context": ctx})
    else:
        def render(entity: dict[str, Any]) -> bytes:
            return orjson.dumps(renderer.entity(entity))

    cache = request.app[RENDERED]
    variant = (tm, spec.render.cache_key(), media, "q")
    parts = [cache.entity_bytes(tenant, e, variant, render) for e in page]
    headers: dict[str, str] = {}
    if total is not None:
        headers["NGSILD-Results-Count"] = str(total)
    resp = json_list_response(parts, media=media, tm=tm, core_url=core, headers=headers)
    for link in _page_links(request, spec, more):
        resp.headers.add("Link", link)
    return resp


async def query_entities(request: web.Request) -> Reply:
    tenant = tenant_of(request)
    check_query_params(request, QUERY_PARAMS)
    media = negotiate(request, OFFERED)
    tm = await term_map(request)
    settings = request.app[SETTINGS]
    spec = from_params(request.query, tm, settings.default_limit, settings.max_limit,
                       multi_options=request.query.getall("options", []))
    require_selection(spec)
    return await _answer(request, tenant, spec, tm, media)


async def post_query(request: web.Request) -> Reply:
    tenant = tenant_of(request)
    check_query_params(request, QUERY_PARAMS)  # those of GET /entities: paging, options, format, ...
    media = negotiate(request, OFFERED)
    body, context = await read_body(request)
    tm = await term_map(request, context, from_link=False)
    settings = request.app[SETTINGS]
    spec = from_body(body, request.query, tm, settings.default_limit, settings.max_limit,
                     multi_options=request.query.getall("options", []))
    require_selection(spec, by_selector=True)
    return await _answer(request, tenant, spec, tm, media)


async def purge_entities(request: web.Request) -> Reply:
    """Delete every entity matching type / id / idPattern / q / scopeQ / geoQ (or, with ``drop`` /
    ``keep``, only some of their attributes); 204."""
    tenant = tenant_of(request)
    check_query_params(request, PURGE_PARAMS)
    tm = await term_map(request)
    settings = request.app[SETTINGS]
    spec = from_params(request.query, tm, settings.default_limit, settings.max_limit)
    q = spec.query
    if not spec.local and q.types is None and q.ids is None and q.id_pattern is None and q.q is None \
            and q.geo_q is None and q.scope_q is None:
        raise BadRequestData("Deleting entities needs at least one of type, id, idPattern, q, scopeQ or geoQ")
    keep = attr_iris(split_list(request.query.get("keep"), "keep"), tm, "keep")
    drop = attr_iris(split_list(request.query.get("drop"), "drop"), tm, "drop")
    await request.app[QUERY].purge(tenant, spec, keep=keep, drop=drop)
    return Reply(status=204)


def add_routes(app: web.Application) -> None:
    for path in (f"{BASE}/entities", f"{BASE}/entities/"):
        app.router.add_get(path, query_entities)
        app.router.add_delete(path, purge_entities)
    app.router.add_post(f"{BASE}/entityOperations/query", post_query)
