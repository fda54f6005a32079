"""/ngsi-ld/v1/types and /ngsi-ld/v1/attributes: what types and attributes exist.

Names are compacted with the request's @context; ``id`` members are the expanded IRIs.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ..entities.expand import check_name
from ..errors import ResourceNotFound
from ..jsonld.termmap import TermMap
from ..services.discovery import Inventory
from .http import bool_param, check_query_params, json_response, negotiate, tenant_of, term_map
from .keys import DISCOVERY, SETTINGS
from .reply import Reply

BASE = "/ngsi-ld/v1"
LIST_PARAMS = frozenset({"details", "local", "via"})
ITEM_PARAMS = frozenset({"local", "via"})


def _names(tm: TermMap, iris: Any) -> list[str]:
    return sorted(tm.compact(i) for i in iris)


def _attribute(tm: TermMap, inv: Inventory, iri: str, *, counts: bool = True) -> dict[str, Any]:
    """An Attribute (clause 5.2.28); the details list (5.7.9) leaves out attributeCount and attributeTypes,
    which only the single attribute's information (5.7.10) carries (the ETSI suite's 026_01 / 027_01)."""
    a = inv.attributes[iri]
    out: dict[str, Any] = {"id": iri, "type": "Attribute", "attributeName": tm.compact(iri)}
    if counts:
        out["attributeCount"] = a.count
        out["attributeTypes"] = sorted(a.attr_types)
    out["typeNames"] = _names(tm, a.type_names)
    return out


async def _reply(request: web.Request, tm: TermMap, data: Any) -> Reply:
    media = negotiate(request)
    return json_response(data, media=media, tm=tm, core_url=request.app[SETTINGS].core_context)


async def list_types(request: web.Request) -> Reply:
    tenant = tenant_of(request)
    check_query_params(request, LIST_PARAMS)
    negotiate(request)
    details = bool_param(request, "details")
    tm = await term_map(request)
    inv = await request.app[DISCOVERY].inventory(tenant)
    if details:
        data: Any = [{"id": t, "type": "EntityType", "typeName": tm.compact(t),
                      "attributeNames": _names(tm, stats.attributes)}
                     for t, stats in sorted(inv.types.items(), key=lambda kv: tm.compact(kv[0]))]
    else:
        data = {"id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}", "type": "EntityTypeList",
                "typeList": _names(tm, inv.types)}
    return await _reply(request, tm, data)


async def type_info(request: web.Request) -> Reply:
    tenant = tenant_of(request)
    check_query_params(request, ITEM_PARAMS)
    negotiate(request)
    tm = await term_map(request)
    name = check_name(request.match_info["type"], "entity type")
    iri = tm.expand(name)
    inv = await request.app[DISCOVERY].inventory(tenant, iri)
    stats = inv.types.get(iri)
    if stats is None:
        raise ResourceNotFound(f"No entity of type {name} exists")
    details = [{"id": a, "type": "Attribute", "attributeName": tm.compact(a), "attributeTypes": sorted(kinds)}
               for a, kinds in sorted(stats.attributes.items(), key=lambda kv: tm.compact(kv[0]))]
    data = {"id": iri, "type": "EntityTypeInfo", "typeName": tm.compact(iri), "entityCount": stats.count,
            "attributeDetails": details}
    return await _reply(request, tm, data)


async def list_attributes(request: web.Request) -> Reply:
    tenant = tenant_of(request)
    check_query_params(request, LIST_PARAMS)
    negotiate(request)
    details = bool_param(request, "details")
    tm = await term_map(request)
    inv = await request.app[DISCOVERY].inventory(tenant)
    if details:
        data: Any = [_attribute(tm, inv, a, counts=False) for a in sorted(inv.attributes, key=tm.compact)]
    else:
        data = {"id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}", "type": "AttributeList",
                "attributeList": _names(tm, inv.attributes)}
    return await _reply(request, tm, data)


async def attribute_info(request: web.Request) -> Reply:
    tenant = tenant_of(request)
    check_query_params(request, ITEM_PARAMS)
    negotiate(request)
    tm = await term_map(request)
    name = check_name(request.match_info["attrId"], "attribute")
    iri = tm.expand(name)
    inv = await request.app[DISCOVERY].inventory(tenant)
    if iri not in inv.attributes:
        raise ResourceNotFound(f"No entity has an attribute {name}")
    return await _reply(request, tm, _attribute(tm, inv, iri))


def add_routes(app: web.Application) -> None:
    # the lists also answer with a trailing slash, as /entities/ does (the ETSI suite calls /types/)
    for suffix in ("", "/"):
        app.router.add_get(f"{BASE}/types{suffix}", list_types)
        app.router.add_get(f"{BASE}/attributes{suffix}", list_attributes)
    app.router.add_get(f"{BASE}/types/{{type}}", type_info)
    app.router.add_get(f"{BASE}/attributes/{{attrId}}", attribute_info)
