"""/ngsi-ld/v1/subscriptions: create, list, retrieve, update and delete subscriptions."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from ..entities.expand import is_uri
from ..errors import BadRequestData, TooManyResults
from ..services.subscriptions import render_subscription
from ..timeutil import now_iso
from .http import (
    JSON,
    JSONLD,
    MERGE_PATCH,
    check_query_params,
    json_response,
    negotiate,
    options_param,
    read_body,
    tenant_of,
    term_map,
)
from .keys import DELIVERY, RESOLVER, SETTINGS, SUBSCRIPTIONS
from .reply import Reply

BASE = "/ngsi-ld/v1/subscriptions"
LINK_TYPE = 'type="application/ld+json"'  # pagination links as the conformance suite spells them


def _sub_id(request: web.Request) -> str:
    sub_id = request.match_info["subscriptionId"]
    if not is_uri(sub_id):
        raise BadRequestData(f"Subscription id must be a URI, got {sub_id!r}")
    return sub_id


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _with_context_url(request: web.Request, body: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """``jsonldContext`` (clause 5.2.12): the one given, else for an inline @context the URL of its
    ImplicitlyCreated entry in /jsonldContexts, the only URL a client can fetch it from.

    A @context that is already one URL (or none) adds nothing, and is not shown.
    """
    context = doc.get("@context")
    if isinstance(context, list) and len(context) == 1:
        context = context[0]
    if "jsonldContext" not in body and context is not None and not isinstance(context, str):
        url = request.app[RESOLVER].context_url(context, _origin(request))
        if url:
            body["jsonldContext"] = url
    return body


def _int_param(request: web.Request, name: str, default: int, minimum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestData(f"Parameter {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadRequestData(f"Parameter {name} must be at least {minimum}")
    return value


# query parameters each operation defines (clause 6.3.20: any other one is a 400 InvalidRequest)
NO_PARAMS: frozenset[str] = frozenset()
LIST_PARAMS = frozenset({"limit", "offset", "count", "options"})
RETRIEVE_PARAMS = frozenset({"options"})


async def create_subscription(request: web.Request) -> Reply:
    check_query_params(request, NO_PARAMS)
    tenant = tenant_of(request)
    body, context = await read_body(request)
    tm = await term_map(request, context, from_link=False)
    doc = await request.app[SUBSCRIPTIONS].create(tenant, body, tm, context)
    return Reply(status=201, headers={"Location": f"{BASE}/{quote(doc['id'], safe=':')}"})


async def list_subscriptions(request: web.Request) -> Reply:
    check_query_params(request, LIST_PARAMS)
    tenant = tenant_of(request)
    media = negotiate(request, (JSON, JSONLD))
    settings = request.app[SETTINGS]
    limit = _int_param(request, "limit", settings.default_limit, 0)
    offset = _int_param(request, "offset", 0, 0)
    if limit > settings.max_limit:
        raise TooManyResults(f"limit {limit} is above the maximum {settings.max_limit}")
    count = request.query.get("count", "false").lower() == "true"
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed with count=true")
    tm = await term_map(request)
    sys_attrs = "sysAttrs" in options_param(request)
    docs = await request.app[SUBSCRIPTIONS].list(tenant)
    page = docs[offset:offset + limit]
    now = now_iso()
    delivery = request.app[DELIVERY]
    body = [_with_context_url(request, render_subscription(d, tm, await delivery.status_of(tenant, d["id"]), now,
                                                           sys_attrs), d) for d in page]
    headers: dict[str, str] = {}
    if count:
        headers["NGSILD-Results-Count"] = str(len(docs))
    links = []
    params = {k: v for k, v in request.query.items() if k not in ("limit", "offset")}
    if limit and offset + limit < len(docs):
        links.append(f'<{BASE}?{urlencode({**params, "limit": limit, "offset": offset + limit})}>;rel="next";{LINK_TYPE}')
    if limit and offset > 0:
        prev = max(0, offset - limit)
        links.append(f'<{BASE}?{urlencode({**params, "limit": limit, "offset": prev})}>;rel="prev";{LINK_TYPE}')
    resp = json_response(body, media=media, tm=tm, core_url=settings.core_context, headers=headers)
    for link in links:
        resp.headers.add("Link", link)
    return resp


async def retrieve_subscription(request: web.Request) -> Reply:
    check_query_params(request, RETRIEVE_PARAMS)
    tenant = tenant_of(request)
    media = negotiate(request, (JSON, JSONLD))
    sub_id = _sub_id(request)
    tm = await term_map(request)
    doc = await request.app[SUBSCRIPTIONS].get(tenant, sub_id)
    stats = await request.app[DELIVERY].status_of(tenant, sub_id)
    body = _with_context_url(request, render_subscription(doc, tm, stats, now_iso(),
                                                          "sysAttrs" in options_param(request)), doc)
    return json_response(body, media=media, tm=tm, core_url=request.app[SETTINGS].core_context)


async def update_subscription(request: web.Request) -> Reply:
    check_query_params(request, NO_PARAMS)
    tenant = tenant_of(request)
    sub_id = _sub_id(request)
    body, context = await read_body(request, (JSON, JSONLD, MERGE_PATCH))
    await request.app[SUBSCRIPTIONS].update(tenant, sub_id, body, request.app[RESOLVER].resolve, context,
                                            has_context=context is not None)
    return Reply(status=204)


async def delete_subscription(request: web.Request) -> Reply:
    check_query_params(request, NO_PARAMS)
    tenant = tenant_of(request)
    sub_id = _sub_id(request)
    await request.app[SUBSCRIPTIONS].delete(tenant, sub_id)
    await request.app[DELIVERY].forget(tenant, sub_id)
    return Reply(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post(BASE, create_subscription)
    app.router.add_post(BASE + "/", create_subscription)
    app.router.add_get(BASE, list_subscriptions)
    app.router.add_get(BASE + "/", list_subscriptions)
    app.router.add_get(BASE + "/{subscriptionId}", retrieve_subscription)
    app.router.add_patch(BASE + "/{subscriptionId}", update_subscription)
    app.router.add_delete(BASE + "/{subscriptionId}", delete_subscription)
