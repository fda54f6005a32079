"""/ngsi-ld/v1/entities/{id}: create, retrieve, replace, merge and delete entities, and the
attribute operations under ``/attrs`` (ETSI GS CIM 009 clauses 5.6 and 5.7.1)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from ..entities.expand import ENTITY_MEMBERS, Expander, check_entity_id, check_name, is_null, is_uri
from ..entities.geojson import feature_of
from ..entities.render import CONCISE, NORMALIZED, SIMPLIFIED, Renderer, RenderOptions
from ..errors import BadRequestData, InvalidRequest, ResourceNotFound
from ..jsonld.termmap import TermMap
from ..services.entities import UpdateResult
from ..services.events import ChangeEvent
from ..services.query import RetrieveSpec, render_retrieved, retrieve_spec
from ..timeutil import now_iso
from .http import (
    GEOJSON,
    JSON,
    JSONLD,
    MERGE_PATCH,
    bool_param,
    check_query_params,
    json_answer,
    json_response,
    negotiate,
    options_param,
    read_body,
    response_context,
    tenant_of,
    term_map,
)
from .keys import ENTITIES, RENDERED, SETTINGS, STORE
from .reply import Reply

BASE = "/ngsi-ld/v1"
# An empty id matches too, so ``PUT /entities/`` or ``/entities//attrs`` is a 400 for the malformed id,
# not a 404/405 from the router (ETSI 010_02_01, 054_02_02, ...).
ENTITY = BASE + "/entities/{entityId:[^/]*}"
ATTRS = ENTITY + "/attrs"
ATTR = ATTRS + "/{attrId}"

RETRIEVE_OPTIONS = frozenset({"keyValues", "simplified", "concise", "normalized", "sysAttrs"})
# Query parameters each operation defines (clause 6.5-6.7); anything else is a 400 InvalidRequest.
# ``type`` and ``local`` belong to distributed operations and are accepted (and ignored) everywhere.
_COMMON = frozenset({"type", "local"})
RETRIEVE_PARAMS = _COMMON | {"attrs", "options", "format", "pick", "omit", "lang", "datasetId",
                             "geometryProperty", "join", "joinLevel", "containedBy", "entityMap"}
WRITE_PARAMS = _COMMON | {"options"}
# the parameters render_options() reads: without any of them it can neither fail nor set a datasetId
_RENDER_PARAMS = frozenset({"options", "format", "attrs", "pick", "omit", "lang", "datasetId"})
DELETE_ATTR_PARAMS = _COMMON | {"datasetId", "deleteAll"}
# names that are entity members, never attributes (PUT /attrs/scope is a 400, ETSI 055_03_05)
_RESERVED = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"})
_SPECIAL = {"id", "type", "scope"}


def _names(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise BadRequestData("An empty attribute list is not allowed")
    for n in names:
        check_name(n)
    return names


def render_options(request: web.Request, tm: TermMap) -> RenderOptions:
    """Representation asked for by ``options``, ``format``, ``attrs``, ``pick``, ``omit``, ``lang``
    and ``datasetId`` (the ``format`` parameter wins over ``options``)."""
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
            raise InvalidRequest(f"Unknown format {fmt_param!r}")  # clause 6.3.20, ETSI 018_16
    attrs = _names(request.query.get("attrs"))
    pick = _names(request.query.get("pick"))
    omit = _names(request.query.get("omit"))
    if pick is not None and omit is not None:
        raise BadRequestData("pick and omit cannot be used together")
    ro = RenderOptions(format=fmt, sys_attrs="sysAttrs" in opts, lang=request.query.get("lang"))
    keep: set[str] | None = None
    if attrs is not None:
        keep = {tm.expand(a) for a in attrs}
    if pick is not None:
        ro.pick_id, ro.pick_type, ro.pick_scope = "id" in pick, "type" in pick, "scope" in pick
        keep = (keep or set()) | {tm.expand(a) for a in pick if a not in _SPECIAL}
    if omit is not None:
        ro.pick_id, ro.pick_type, ro.pick_scope = "id" not in omit, "type" not in omit, "scope" not in omit
        ro.omit = frozenset(tm.expand(a) for a in omit if a not in _SPECIAL)
    ro.attrs = frozenset(keep) if keep is not None else None
    raw_ds = request.query.get("datasetId")
    if raw_ds is not None:
        ds = [d.strip() for d in raw_ds.split(",") if d.strip()]
        if not ds or not all(d == "@none" or is_uri(d) for d in ds):
            raise BadRequestData(f"Invalid datasetId {raw_ds!r}")
        ro.dataset_id = frozenset(ds)
    return ro


def _check_options(request: web.Request, allowed: frozenset[str]) -> set[str]:
    """Undefined ``options`` values are an InvalidRequest (clause 6.3.20, ETSI 018_16)."""
    opts = options_param(request)
    unknown = opts - allowed
    if unknown:
        raise InvalidRequest(f"Unknown options value {sorted(unknown)[0]!r}")
    return opts


def _entity_id(request: web.Request) -> str:
    return check_entity_id(request.match_info["entityId"])


def _attr_name(request: web.Request) -> str:
    return check_name(request.match_info["attrId"])


def _names_of(body: dict[str, Any], tm: TermMap) -> dict[str, str]:
    """IRI → the name the client used, for answers that list attribute names."""
    return {tm.expand(k): k for k in body if k not in ENTITY_MEMBERS}


def _check_body_id(frag: dict[str, Any], entity_id: str) -> None:
    if frag.get("id") is not None and frag["id"] != entity_id:
        raise BadRequestData(f"Entity id in the body ({frag['id']}) differs from the URL ({entity_id})")


def _require_content(frag: dict[str, Any]) -> None:
    if not frag.get("attrs") and "type" not in frag and "scope" not in frag:
        raise BadRequestData("The request carries no attributes")


def _update_answer(result: UpdateResult) -> Reply:
    """204 when everything was updated, else 207 with an UpdateResult (clause 5.2.18)."""
    if not result.not_updated:
        return Reply(status=204)
    body = {"updated": result.updated,
            "notUpdated": [{"attributeName": n, "reason": r} for n, r in result.not_updated]}
    return json_response(body, status=207)


# ---------------------------------------------------------------- rendered answers of GET /entities/{id}
# GET: (term map, raw query string, media type); query pages: (term map, render options key, media type, "q")
Variant = tuple[Any, ...]
Answer = tuple[bytes, str, str | None]  # (body, content type, Link header)


class RenderedCache:
    """Bounded LRU of GET /entities/{id} answers: rendering is most of a GET's cost, and an entity is
    read far more often than it changes.

    An answer is kept per (tenant, id) and per variant: the term map object (a reloaded @context is
    another object), the raw query string and the media type. It is valid only for the stamp
    (``_v``, createdAt, modifiedAt) it was rendered from: both stores bump ``_v`` on every write, and a
    delete and re-create in the same millisecond is caught by the change events, which drop the
    entity's answers (``on_changes`` runs first on the bus). Answers with linked entities (``join``)
    depend on other entities and are never kept.
    """

    def __init__(self, max_bytes: int = 32 << 20, max_variants: int = 8) -> None:
        self.max_bytes = max_bytes
        self.max_variants = max_variants
        self.size = 0
        self._slots: OrderedDict[tuple[str, str], tuple[tuple[Any, ...], dict[Variant, Answer], int]] = \
            OrderedDict()

    @staticmethod
    def stamp(entity: dict[str, Any]) -> tuple[Any, ...] | None:
        v = entity.get("_v")
        return None if v is None else (v, entity.get("createdAt"), entity.get("modifiedAt"))

    def get(self, tenant: str, entity: dict[str, Any], variant: Variant) -> Answer | None:
        key = (tenant, entity["id"])
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot[0] != self.stamp(entity):
            self.drop(tenant, entity["id"])
            return None
        answer = slot[1].get(variant)
        if answer is not None:
            self._slots.move_to_end(key)
        return answer

    def put(self, tenant: str, entity: dict[str, Any], variant: Variant, answer: Answer) -> None:
        stamp = self.stamp(entity)
        size = len(answer[0]) + 200
        if stamp is None or size > self.max_bytes // 4:
            return
        key = (tenant, entity["id"])
        slot = self._slots.get(key)
        if slot is None or slot[0] != stamp or len(slot[1]) >= self.max_variants:
            self.drop(*key)
            slot = (stamp, {}, 0)
        old = slot[1].get(variant)
        slot[1][variant] = answer
        grown = size - (len(old[0]) + 200 if old is not None else 0)
        self._slots[key] = (stamp, slot[1], slot[2] + grown)
        self._slots.move_to_end(key)
        self.size += grown
        while self.size > self.max_bytes and self._slots:
            _, (_, _, dropped) = self._slots.popitem(last=False)
            self.size -= dropped

    def entity_bytes(self, tenant: str, entity: dict[str, Any], variant: Variant,
                     render: Callable[[dict[str, Any]], bytes]) -> bytes:
        """One entity of a query page as JSON, rendered by ``render`` unless a fresh copy is kept."""
        hit = self.get(tenant, entity, variant)
        if hit is not None:
            return hit[0]
        body = render(entity)
        self.put(tenant, entity, variant, (body, "", None))
        return body

    def drop(self, tenant: str, entity_id: str) -> None:
        slot = self._slots.pop((tenant, entity_id), None)
        if slot is not None:
            self.size -= slot[2]

    async def on_changes(self, events: list[ChangeEvent]) -> None:
        for event in events:
            self.drop(event.tenant, event.entity_id)

    def __len__(self) -> int:
        return len(self._slots)


# ---------------------------------------------------------------- entities
async def create_entity(request: web.Request) -> Reply:
    check_query_params(request, _COMMON)
    tenant = tenant_of(request)
    body, context = await read_body(request)
    if not isinstance(body, dict):
        raise InvalidRequest("The entity must be a JSON object")
    tm = await term_map(request, context, from_link=False)
    entity = Expander(tm, now_iso()).entity(body)
    await request.app[ENTITIES].create(tenant, entity)
    return Reply(status=201, headers={"Location": f"{BASE}/entities/{quote(entity['id'], safe=':')}"})


async def retrieve_entity(request: web.Request) -> Reply:
    check_query_params(request, RETRIEVE_PARAMS)
    tenant = tenant_of(request)
    media = negotiate(request, (JSON, JSONLD, GEOJSON))
    entity_id = _entity_id(request)
    _check_options(request, RETRIEVE_OPTIONS)
    tm = await term_map(request)
    cache = request.app[RENDERED]
    raw_query = request.raw_path.partition("?")[2].partition("#")[0]
    variant: Variant = (tm, raw_query, media)
    # The entity is read before the parameters are parsed, to find a cached answer (its query string was
    # valid then, so it is now); its error is raised after them, so a bad parameter still wins over 404.
    failed: Exception | None = None
    entity: dict[str, Any] | None = None
    try:
        entity = await request.app[ENTITIES].get(tenant, entity_id)
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the parameter checks
        failed = exc
    if entity is not None:
        hit = cache.get(tenant, entity, variant)
        if hit is not None:
            return _answer_response(hit)
    spec = _retrieve_spec(request, tm, raw_query)
    if failed is not None:
        raise failed
    assert entity is not None
    body = await render_retrieved(request.app[STORE], tenant, tm, entity, spec)
    core = request.app[SETTINGS].core_context
    answer: Answer
    if media == GEOJSON and isinstance(body, dict):
        feature = feature_of(entity, body, spec.geometry_property)
        feature["@context"] = response_context(tm, core)
        answer = (orjson.dumps(feature), GEOJSON, None)
    else:
        data, link = json_answer(body, media, tm, core)
        answer = (data, media, link)
    if spec.join.join is None:
        cache.put(tenant, entity, variant, answer)
    return _answer_response(answer)


_SPECS: dict[tuple[Any, str], RetrieveSpec] = {}  # (term map, raw query string) → parsed parameters


def _retrieve_spec(request: web.Request, tm: TermMap, raw_query: str) -> RetrieveSpec:
    """The parsed parameters of a GET, remembered per term map and query string: clients repeat the
    same few, and parsing them cost as much as rendering a small entity. Specs are never mutated
    after this point, so one may serve many requests."""
    key = (tm, raw_query)
    spec = _SPECS.get(key)
    if spec is None:
        # join / pick / omit / geometryProperty parse like a query's (services.query); datasetId is ours
        spec = retrieve_spec(request.query, tm, multi_options=request.query.getall("options", []))
        if not _RENDER_PARAMS.isdisjoint(request.query):  # else render_options() gives the defaults
            spec.render.dataset_id = render_options(request, tm).dataset_id
        if len(_SPECS) >= 1024:
            _SPECS.clear()
        _SPECS[key] = spec
    return spec


def _answer_response(answer: Answer) -> Reply:
    body, ctype, link = answer
    return Reply(body=body, content_type=ctype, headers={"Link": link} if link is not None else None)


async def delete_entity(request: web.Request) -> Reply:
    check_query_params(request, _COMMON)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    await request.app[ENTITIES].delete(tenant, entity_id)
    return Reply(status=204)


async def replace_entity(request: web.Request) -> Reply:
    """PUT: everything but id and createdAt is replaced (5.6.18)."""
    check_query_params(request, WRITE_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    body, context = await read_body(request)
    tm = await term_map(request, context, from_link=False)
    new = Expander(tm, now_iso()).entity(body, require_id=False, require_type=False)
    _check_body_id(new, entity_id)
    await request.app[ENTITIES].replace(tenant, entity_id, new)
    return Reply(status=204)


async def merge_entity(request: web.Request) -> Reply:
    """PATCH: merge-patch (5.6.17); ``urn:ngsi-ld:null`` deletes attributes and sub-attributes."""
    check_query_params(request, WRITE_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    body, context = await read_body(request, (JSON, JSONLD, MERGE_PATCH))
    tm = await term_map(request, context, from_link=False)
    frag = Expander(tm, now_iso(), allow_null=True, partial=True).fragment(body)
    _check_body_id(frag, entity_id)
    _require_content(frag)
    await request.app[ENTITIES].merge(tenant, entity_id, frag, names=_names_of(body, tm))
    return Reply(status=204)


# ---------------------------------------------------------------- attributes
async def append_attrs(request: web.Request) -> Reply:
    """POST /attrs (5.6.3): add or overwrite; with ``noOverwrite`` existing ones are kept."""
    check_query_params(request, WRITE_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    opts = _check_options(request, frozenset({"noOverwrite"}))
    body, context = await read_body(request)
    tm = await term_map(request, context, from_link=False)
    frag = Expander(tm, now_iso()).fragment(body)
    _check_body_id(frag, entity_id)
    _require_content(frag)
    result = await request.app[ENTITIES].append(tenant, entity_id, frag, no_overwrite="noOverwrite" in opts,
                                                names=_names_of(body, tm))
    return _update_answer(result)


async def update_attrs(request: web.Request) -> Reply:
    """PATCH /attrs (5.6.2): only existing attributes are updated; the rest are reported.

    Types in the fragment are added and an existing scope is replaced (ETSI 011_05, 011_06)."""
    check_query_params(request, WRITE_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    body, context = await read_body(request)
    tm = await term_map(request, context, from_link=False)
    frag = Expander(tm, now_iso(), allow_null=True).fragment(body)
    _check_body_id(frag, entity_id)
    _require_content(frag)
    result = await request.app[ENTITIES].update_attrs(tenant, entity_id, frag, names=_names_of(body, tm))
    return _update_answer(result)


async def retrieve_attr(request: web.Request) -> Reply:
    """GET /attrs/{attrId} (v1.9 clause 5.7.?): one attribute, rendered like in the entity."""
    check_query_params(request, RETRIEVE_PARAMS)
    tenant = tenant_of(request)
    media = negotiate(request, (JSON, JSONLD))
    entity_id = _entity_id(request)
    name = _attr_name(request)
    _check_options(request, RETRIEVE_OPTIONS)
    tm = await term_map(request)
    ro = render_options(request, tm)
    entity = await request.app[ENTITIES].get(tenant, entity_id)
    instances = entity.get("attrs", {}).get(tm.expand(name))
    rendered = Renderer(tm, ro).attribute(instances) if instances else None
    if rendered is None:
        raise ResourceNotFound(f"Entity {entity_id} has no attribute {name}")
    return json_response(rendered, media=media, tm=tm, core_url=request.app[SETTINGS].core_context)


async def _attr_body(request: web.Request) -> tuple[dict[str, Any], TermMap]:
    body, context = await read_body(request, (JSON, JSONLD, MERGE_PATCH))
    if not isinstance(body, dict):
        raise BadRequestData("The attribute must be a JSON object")
    tm = await term_map(request, context, from_link=False)
    return {k: v for k, v in body.items() if k != "@context"}, tm


async def partial_update_attr(request: web.Request) -> Reply:
    """PATCH /attrs/{attrId} (5.6.4): merge into one instance, unspecified members are kept."""
    check_query_params(request, WRITE_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    name = _attr_name(request)
    body, tm = await _attr_body(request)
    if not body:
        raise BadRequestData("The attribute fragment is empty")
    frag = Expander(tm, now_iso(), allow_null=True, partial=True).instance(name, body)
    service = request.app[ENTITIES]
    iri = tm.expand(name)
    if is_null(frag):
        await service.delete_attr(tenant, entity_id, iri, name=name, dataset_id=frag.get("datasetId"))
    else:
        await service.update_attr(tenant, entity_id, iri, frag, name=name)
    return Reply(status=204)


async def replace_attr(request: web.Request) -> Reply:
    """PUT /attrs/{attrId} (5.6.19): the instance with the body's datasetId is replaced."""
    check_query_params(request, WRITE_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    name = _attr_name(request)
    if name in _RESERVED:
        raise BadRequestData(f"{name} is an entity member, not an attribute")
    body, tm = await _attr_body(request)
    inst = Expander(tm, now_iso()).instance(name, body)
    await request.app[ENTITIES].replace_attr(tenant, entity_id, tm.expand(name), inst, name=name)
    return Reply(status=204)


async def delete_attr(request: web.Request) -> Reply:
    """DELETE /attrs/{attrId} (5.6.5): the default instance, one ``datasetId`` or ``deleteAll``;
    ``scope`` removes the entity's scope (ETSI 013_04)."""
    check_query_params(request, DELETE_ATTR_PARAMS)
    tenant = tenant_of(request)
    entity_id = _entity_id(request)
    name = _attr_name(request)
    delete_all = bool_param(request, "deleteAll")
    dataset_id = request.query.get("datasetId")
    if dataset_id is not None and not is_uri(dataset_id):
        raise BadRequestData(f"Invalid datasetId {dataset_id!r}")
    tm = await term_map(request)
    await request.app[ENTITIES].delete_attr(tenant, entity_id, tm.expand(name), name=name,
                                            dataset_id=dataset_id, delete_all=delete_all)
    return Reply(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(f"{BASE}/entities", create_entity)
    r.add_post(f"{BASE}/entities/", create_entity)
    r.add_get(ENTITY, retrieve_entity)
    r.add_delete(ENTITY, delete_entity)
    r.add_put(ENTITY, replace_entity)
    r.add_patch(ENTITY, merge_entity)
    for path in (ATTRS, ATTRS + "/"):
        r.add_post(path, append_attrs)
        r.add_patch(path, update_attrs)
    r.add_get(ATTR, retrieve_attr)
    r.add_patch(ATTR, partial_update_attr)
    r.add_put(ATTR, replace_attr)
    r.add_delete(ATTR, delete_attr)
