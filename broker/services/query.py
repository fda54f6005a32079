"""Turn query parameters (URL or a POST ``Query`` body) into an ``EntityQuery`` plus render options.

Both entry points (GET /entities, POST /entityOperations/query, DELETE /entities) share one
parser so every parameter is validated the same way and a bad one is a 400 before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..entities.expand import check_entity_id, check_name, is_uri
from ..entities.render import CONCISE, NORMALIZED, SIMPLIFIED, Renderer, RenderOptions
from ..errors import BadRequestData, InvalidRequest, OperationNotSupported, ResourceNotFound, TooManyResults
from ..jsonld.termmap import TermMap
from ..query.ast import DEFAULT_GEOPROPERTY, And, Comparison, Or, Value, ValueList
from ..query.evaluator import match_types
from ..query.model import EntityQuery
from ..query.parser import parse_geoq, parse_q, parse_scope_q, parse_type_expr
from ..query.regex import compile_regex
from .entities import EntityService
from .linked import NO_JOIN, JoinOptions, Linker, Projection, join_options, parse_projection
from .order import OrderKey, parse_order_by, sort_entities

_MEMBERS = frozenset({"id", "type", "scope"})
_RESERVED_ATTRS = frozenset({"id", "type", "@id", "@type", "@context", "scope", "createdAt", "modifiedAt"})


@dataclass(slots=True)
class Selector:
    """One entity selector of a query (URL parameters give exactly one)."""

    ids: list[str] | None = None
    id_pattern: str | None = None
    types: Any = None


@dataclass(slots=True)
class QuerySpec:
    """A parsed request: what to match (``query``), how to render it and its pagination."""

    query: EntityQuery
    render: RenderOptions
    geometry_property: str = DEFAULT_GEOPROPERTY
    local: bool = False
    selectors: list[Selector] = field(default_factory=list)
    pick: Projection | None = None
    omit: Projection | None = None
    join: JoinOptions = NO_JOIN
    order_by: list[OrderKey] | None = None


# Parameters GET /entities and DELETE /entities define (clauses 6.4.3.2 and 6.4.3.3, v1.8 plus v1.9
# additions); the handlers refuse any other with 400 InvalidRequest (clause 6.3.20, ETSI 059_01).
QUERY_PARAMS = frozenset({
    "id", "type", "idPattern", "attrs", "q", "csf", "georel", "geometry", "coordinates", "geoproperty",
    "geometryProperty", "lang", "scopeQ", "options", "format", "limit", "offset", "count", "local", "via",
    "datasetId", "pick", "omit", "join", "joinLevel", "containedBy", "entityMap", "orderBy",
    "coords",  # NGSIv2's name for coordinates: Orion-LD takes it, ngsi-go's `list entities --coords` sends it
    "expandValues",
})
PURGE_PARAMS = frozenset({
    "id", "type", "idPattern", "q", "csf", "georel", "geometry", "coordinates", "geoproperty", "scopeQ",
    "local", "via", "datasetId", "drop", "keep", "expandValues",
})



# --------------------------------------------------------------------------------- small parsers


def split_list(raw: str | list[Any] | None, what: str) -> list[str] | None:
    """A comma list (URL) or a JSON array of strings (body); empty means absent."""
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else raw.split(",")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise BadRequestData(f"{what} must be strings")
        item = item.strip()
        if item:
            out.append(item)
    if not out:
        raise BadRequestData(f"{what} must not be empty")
    return list(dict.fromkeys(out))


def attr_iris(names: list[str] | None, tm: TermMap, what: str = "attrs") -> list[str] | None:
    if names is None:
        return None
    out = []
    for name in names:
        if name in _RESERVED_ATTRS:
            raise BadRequestData(f"{what}: {name!r} is not an attribute name")
        check_name(name)
        out.append(tm.expand(name))
    return out


MAX_INT_PARAM = 2**31 - 1


def int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestData(f"Parameter {name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise BadRequestData(f"Parameter {name} must not be negative")
    if value > MAX_INT_PARAM:  # MongoDB's skip and limit are 64-bit; no page lies that far anyway
        raise BadRequestData(f"Parameter {name} must be at most {MAX_INT_PARAM}")
    return value


def bool_value(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    low = raw.lower()
    if low in ("true", ""):
        return True
    if low == "false":
        return False
    raise BadRequestData(f"Parameter {name} must be true or false")


def paging(params: Mapping[str, str], default_limit: int, max_limit: int,
           options: set[str] | None = None) -> tuple[int, int, bool]:
    """(limit, offset, count) with the NGSI-LD rules: limit=0 only with count, above max 403.

    ``options=count`` is taken as ``count=true`` and removed from ``options``: Orion-LD keeps that
    NGSIv2 spelling and ngsi-go sends it on every ``ngsi list entities`` page.
    """
    count = bool_value(params.get("count"), "count")
    if options is not None and "count" in options:
        options.discard("count")
        count = True
    limit = int_param(params.get("limit"), "limit", default_limit)
    offset = int_param(params.get("offset"), "offset", 0)
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed together with count=true")
    if limit > max_limit:
        raise TooManyResults(f"limit {limit} is above the maximum of {max_limit}",
                             title="Too many results")
    return limit, offset, count


def options_of(params: Mapping[str, Any]) -> set[str]:
    raw = params.get("options")
    values = raw if isinstance(raw, list) else ([raw] if raw else [])
    out: set[str] = set()
    for v in values:
        out.update(o.strip() for o in v.split(",") if o.strip())
    return out


def render_options(params: Mapping[str, Any], options: set[str], tm: TermMap,
                   attrs: list[str] | None,
                   projection: tuple[Projection | None, Projection | None] | None = None) -> RenderOptions:
    """Representation parameters: format/options, attrs, pick, omit, lang (clause 4.5, 4.21)."""
    known = {"keyValues", "simplified", "concise", "normalized", "sysAttrs"}
    unknown = options - known
    if unknown:
        # an options value the API does not define is an invalid request (clause 6.3.20; ETSI 018_16)
        raise InvalidRequest(f"Unknown options {', '.join(sorted(unknown))}")
    formats = {o for o in options if o != "sysAttrs"}
    fmt = NORMALIZED
    if formats & {"keyValues", "simplified"}:
        fmt = SIMPLIFIED
    elif "concise" in formats:
        fmt = CONCISE
    if len({SIMPLIFIED if f in ("keyValues", "simplified") else f for f in formats}) > 1:
        raise BadRequestData("options name more than one representation format")
    fmt_param = params.get("format")
    if fmt_param:
        if fmt_param in ("keyValues", "simplified"):
            fmt = SIMPLIFIED
        elif fmt_param in (CONCISE, NORMALIZED):
            fmt = fmt_param
        else:
            raise InvalidRequest(f"Unknown format {fmt_param!r}")
    pick, omit = projection if projection is not None else projections(params, attrs)
    opts = RenderOptions(format=fmt, sys_attrs="sysAttrs" in options, lang=params.get("lang") or None)
    keep: set[str] | None = set(attrs) if attrs is not None else None
    if pick is not None:
        names = pick.names
        opts.pick_id, opts.pick_type, opts.pick_scope = "id" in names, "type" in names, "scope" in names
        keep = {tm.expand(p) for p in names if p not in _MEMBERS}
    if omit is not None:
        names = tuple(o for o in omit.names if o not in omit.nested)
        opts.pick_id, opts.pick_type, opts.pick_scope = "id" not in names, "type" not in names, "scope" not in names
        opts.omit = frozenset(tm.expand(o) for o in names if o not in _MEMBERS)
    raw_ds = params.get("datasetId")
    if raw_ds is not None:
        ds = split_list(raw_ds, "datasetId") or []
        if not all(d == "@none" or is_uri(d) for d in ds):
            raise BadRequestData(f"Invalid datasetId {raw_ds!r}")
        opts.dataset_id = frozenset(ds)
    opts.attrs = frozenset(keep) if keep is not None else None
    return opts


def projections(params: Mapping[str, Any], attrs: list[str] | None) -> tuple[Projection | None, Projection | None]:
    """``pick`` and ``omit`` (clause 4.21): exclusive with each other and with ``attrs``."""
    pick = parse_projection(params.get("pick"), "pick")
    omit = parse_projection(params.get("omit"), "omit")
    if pick is not None and omit is not None:
        raise BadRequestData("pick and omit must not be used together")
    if attrs is not None and (pick is not None or omit is not None):
        raise BadRequestData("attrs must not be used together with pick or omit")
    return pick, omit


def parse_q_param(raw: str, tm: TermMap, expand_values: Any = None) -> Any:
    """q, with the string literals compared to the ``expandValues`` attributes expanded."""
    node = parse_q(raw, tm.expand, cache_key=tm)
    names = split_list(expand_values, "expandValues")
    if not names:
        return node
    iris = frozenset(tm.expand(check_name(n, "expandValues")) for n in names)
    return expand_values_in(node, iris, tm.expand)


def expand_values_in(node: Any, iris: frozenset[str], expand: Any) -> Any:
    """``expandValues`` (as Orion-LD and Stellio take it): a string compared for (in)equality with one
    of these attributes is a term of the request's @context, expanded to the IRI it stands for, the
    way VocabProperty values (``vocab``) are stored; ``cat=="Residential"`` then finds them."""
    if isinstance(node, (And, Or)):
        return type(node)(tuple(expand_values_in(n, iris, expand) for n in node.items))
    if not isinstance(node, Comparison):
        return node
    path = node.path
    if path.attr not in iris or path.subs or path.member is not None or path.keys or node.op not in ("==", "!="):
        return node  # only the attribute's own value: not a sub-attribute, member or key of it

    def one(v: Value) -> Value:
        return Value(v.kind, expand(v.value)) if v.kind in ("string", "uri") and isinstance(v.value, str) else v

    operand = node.operand
    if isinstance(operand, Value):
        return replace(node, operand=one(operand))
    if isinstance(operand, ValueList):
        return replace(node, operand=ValueList(tuple(one(v) for v in operand.items)))
    return node


def geo_query(georel: Any, geometry: Any, coordinates: Any, geoproperty: Any, tm: TermMap) -> Any:
    given = [x is not None and x != "" for x in (georel, geometry, coordinates)]
    if not any(given):
        if geoproperty:
            raise BadRequestData("geoproperty needs georel, geometry and coordinates")
        return None
    if not all(given):
        raise BadRequestData("A geo-query needs georel, geometry and coordinates together")
    if not isinstance(georel, str) or not isinstance(geometry, str):
        raise BadRequestData("georel and geometry must be strings")
    if geoproperty is not None:
        if not isinstance(geoproperty, str):
            raise BadRequestData("geoproperty must be a string")
        check_name(geoproperty, "geoproperty")
    return parse_geoq(georel, geometry, coordinates, geoproperty or None, tm.expand)


def _selector(ids: Any, id_pattern: Any, type_expr: Any, tm: TermMap) -> Selector:
    sel = Selector()
    if ids is not None:
        sel.ids = [check_entity_id(i) for i in (split_list(ids, "id") or [])]
    if id_pattern is not None and id_pattern != "":
        if not isinstance(id_pattern, str):
            raise BadRequestData("idPattern must be a string")
        compile_regex(id_pattern)
        sel.id_pattern = id_pattern
    if type_expr is not None and type_expr != "":
        if not isinstance(type_expr, str):
            raise BadRequestData("type must be a string")
        sel.types = parse_type_expr(type_expr, tm.expand, cache_key=tm)
    return sel


MAX_MIXED_SELECTORS = 100  # selectors kept whole (``any_of``): each is tried on every candidate


def apply_selectors(query: EntityQuery, selectors: list[Selector]) -> None:
    """Put the selectors into ``query``: merged into its ids, idPattern or types where they combine
    exactly (which the stores' indexes serve), else as ``any_of`` alternatives; several id selectors
    stay for ``QueryService.resolve_selectors``."""
    if not selectors:
        return
    if len(selectors) == 1:
        s = selectors[0]
        query.ids, query.id_pattern, query.types = s.ids, s.id_pattern, s.types
        return
    if all(s.ids is None and s.id_pattern is None and s.types is not None for s in selectors):
        query.types = Or(tuple(dict.fromkeys(s.types for s in selectors)))
        return
    if all(s.ids is not None and s.id_pattern is None for s in selectors):
        return  # resolved against the stored types by QueryService.resolve_selectors
    if all(s.id_pattern is not None and s.ids is None for s in selectors) and \
            len({s.types for s in selectors}) == 1:
        query.id_pattern = "|".join(f"(?:{s.id_pattern})" for s in selectors)
        compile_regex(query.id_pattern)
        query.types = selectors[0].types
        return
    # any other mix: each selector stays whole, an entity must meet one of them (clause 5.7.2)
    if len(selectors) > MAX_MIXED_SELECTORS:
        raise OperationNotSupported(f"At most {MAX_MIXED_SELECTORS} entity selectors that mix id, idPattern "
                                    f"and type; got {len(selectors)}")
    query.any_of = [EntityQuery(ids=s.ids, id_pattern=s.id_pattern, types=s.types) for s in selectors]


def _finish(spec: QuerySpec, what: str, *, by_selector: bool) -> None:
    query = spec.query
    if spec.local or query.types is not None or query.attrs is not None or query.q is not None \
            or query.geo_q is not None or (by_selector and spec.selectors):
        return
    needed = "entities, attrs, q or geoQ" if by_selector else "type, attrs, q or geoQ"
    raise BadRequestData(f"{what} needs at least one of {needed} (or local=true)")


# ---------------------------------------------------------------------------------- URL params


def from_params(params: Mapping[str, str], tm: TermMap, default_limit: int, max_limit: int,
                *, multi_options: list[str] | None = None) -> QuerySpec:
    """GET /entities (and DELETE /entities): every parameter from the URL."""
    query = EntityQuery()
    sel = _selector(params.get("id"), params.get("idPattern"), params.get("type"), tm)
    apply_selectors(query, [sel])
    attrs = attr_iris(split_list(params.get("attrs"), "attrs"), tm)
    query.attrs = attrs
    q = params.get("q")
    if q is not None:
        query.q = parse_q_param(q, tm, params.get("expandValues"))
    scope_q = params.get("scopeQ")
    if scope_q is not None:
        query.scope_q = parse_scope_q(scope_q)
    coordinates = params.get("coordinates")
    query.geo_q = geo_query(params.get("georel"), params.get("geometry"),
                            params.get("coords") if coordinates is None else coordinates,
                            params.get("geoproperty"), tm)
    options = options_of({"options": multi_options} if multi_options is not None else params)
    query.limit, query.offset, query.count = paging(params, default_limit, max_limit, options)
    local = bool_value(params.get("local"), "local")
    pick, omit = projections(params, attrs)
    render = render_options(params, options, tm, attrs, (pick, omit))
    join = join_options(params.get("join"), params.get("joinLevel"), params.get("containedBy"))
    order_by = parse_order_by(params.get("orderBy"), tm)
    return QuerySpec(query, render, _geometry_property(params, tm), local, [sel], pick, omit, join, order_by)


def _geometry_property(params: Mapping[str, Any], tm: TermMap) -> str:
    raw = params.get("geometryProperty")
    if raw is None or raw == "":
        return DEFAULT_GEOPROPERTY
    return tm.expand(check_name(raw, "geometryProperty"))


def require_selection(spec: QuerySpec, what: str = "Query", *, by_selector: bool = False) -> None:
    """A query must narrow the entities (clause 5.7.2.4: type, attrs, q or geoQ) unless ``local=true``.

    ``id``/``idPattern`` alone do not count (the ETSI suite's 019_03_05 checks it); a POST Query's
    ``entities`` selectors do (``by_selector``).
    """
    _finish(spec, what, by_selector=by_selector)


# ---------------------------------------------------------------------------------- POST body


class _GeoQBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    geometry: str
    coordinates: list[Any] | str
    georel: str
    geoproperty: str | None = None


class _EntitySelectorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    idPattern: str | None = None  # noqa: N815 - NGSI-LD member name
    type: str | None = None


class QueryBody(BaseModel):
    """The ``Query`` data type (clause 5.2.23) of POST /entityOperations/query."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str
    entities: list[_EntitySelectorBody] | None = None
    attrs: list[str] | None = None
    pick: list[str] | str | None = None
    omit: list[str] | str | None = None
    q: str | None = None
    geoQ: _GeoQBody | None = None  # noqa: N815
    scopeQ: str | None = None  # noqa: N815
    lang: str | None = None
    local: bool | None = None
    join: str | None = None
    joinLevel: int | None = None  # noqa: N815
    containedBy: list[str] | str | None = None  # noqa: N815
    expandValues: list[str] | str | None = None  # noqa: N815

    @field_validator("type")
    @classmethod
    def _is_query(cls, value: str) -> str:
        if value != "Query":
            raise ValueError("type must be 'Query'")
        return value


def _pydantic_problem(exc: ValidationError) -> BadRequestData:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return BadRequestData(f"Invalid Query: {where}: {first.get('msg', 'invalid')}")


def from_body(body: Any, params: Mapping[str, str], tm: TermMap, default_limit: int, max_limit: int,
              *, multi_options: list[str] | None = None) -> QuerySpec:
    """POST /entityOperations/query: the selection from the body, paging and options from the URL."""
    if not isinstance(body, dict):
        raise BadRequestData("The Query must be a JSON object")
    try:
        parsed = QueryBody.model_validate(body)
    except ValidationError as exc:
        raise _pydantic_problem(exc) from None
    query = EntityQuery()
    selectors: list[Selector] = []
    if parsed.entities is not None:
        if not parsed.entities:
            raise BadRequestData("Query entities must not be an empty array")
        for e in parsed.entities:
            if e.id is None and e.idPattern is None and e.type is None:
                raise BadRequestData("An entity selector needs id, idPattern or type")
            selectors.append(_selector([e.id] if e.id is not None else None, e.idPattern, e.type, tm))
    apply_selectors(query, selectors)
    if parsed.attrs is not None and not parsed.attrs:
        raise BadRequestData("Query attrs must not be an empty array")
    attrs = attr_iris(split_list(parsed.attrs, "attrs"), tm)
    query.attrs = attrs
    if parsed.q is not None:
        expand_values = parsed.expandValues if parsed.expandValues is not None else params.get("expandValues")
        query.q = parse_q_param(parsed.q, tm, expand_values)
    if parsed.scopeQ is not None:
        query.scope_q = parse_scope_q(parsed.scopeQ)
    if parsed.geoQ is not None:
        g = parsed.geoQ
        query.geo_q = geo_query(g.georel, g.geometry, g.coordinates, g.geoproperty, tm)
    options = options_of({"options": multi_options} if multi_options is not None else params)
    query.limit, query.offset, query.count = paging(params, default_limit, max_limit, options)
    local = bool(parsed.local) or bool_value(params.get("local"), "local")
    rep: dict[str, Any] = dict(params)
    for key in ("pick", "omit", "lang"):
        value = getattr(parsed, key)
        if value is not None:
            rep[key] = value
    pick, omit = projections(rep, attrs)
    render = render_options(rep, options, tm, attrs, (pick, omit))
    join = join_options(parsed.join if parsed.join is not None else params.get("join"),
                        parsed.joinLevel if parsed.joinLevel is not None else params.get("joinLevel"),
                        parsed.containedBy if parsed.containedBy is not None else params.get("containedBy"))
    order_by = parse_order_by(params.get("orderBy"), tm)
    return QuerySpec(query, render, _geometry_property(params, tm), local, selectors, pick, omit, join, order_by)


# ---------------------------------------------------------------------------- retrieve one entity


@dataclass(slots=True)
class RetrieveSpec:
    """GET /entities/{id}: how to render the entity and which linked entities to add."""

    render: RenderOptions
    pick: Projection | None = None
    omit: Projection | None = None
    join: JoinOptions = NO_JOIN
    geometry_property: str = DEFAULT_GEOPROPERTY


def retrieve_spec(params: Mapping[str, str], tm: TermMap, *, multi_options: list[str] | None = None) -> RetrieveSpec:
    """The parameters of GET /entities/{id} (clause 6.5.3.1), validated like a query's: undefined
    ``options`` or ``format`` values are InvalidRequest; bad ``attrs`` / ``pick`` / ``omit`` / ``join``
    values (including pick or omit with attrs) are BadRequestData. Unknown parameter names are the
    handler's to refuse."""
    attrs = attr_iris(split_list(params.get("attrs"), "attrs"), tm)
    pick, omit = projections(params, attrs)
    options = options_of({"options": multi_options} if multi_options is not None else params)
    render = render_options(params, options, tm, attrs, (pick, omit))
    join = join_options(params.get("join"), params.get("joinLevel"), params.get("containedBy"))
    return RetrieveSpec(render, pick, omit, join, _geometry_property(params, tm))


async def render_retrieved(store: Any, tenant: str, tm: TermMap, entity: dict[str, Any],
                           spec: RetrieveSpec) -> dict[str, Any] | list[dict[str, Any]]:
    """The body of GET /entities/{id}: the entity (linked entities inlined), or with ``join=flat`` a
    list when something is linked. 404 ResourceNotFound when ``attrs`` names none of the entity's
    attributes (ETSI 018_03_02) or ``pick`` / ``omit`` leave nothing of it (018_19)."""
    opts = spec.render
    if opts.attrs is not None and spec.pick is None and not any(a in opts.attrs for a in entity.get("attrs", {})):
        raise ResourceNotFound(f"Entity {entity['id']} has none of the requested attributes")
    if spec.join.join is None:  # nothing linked: the Linker would render just this (pick / omit are in opts)
        out: dict[str, Any] | list[dict[str, Any]] = Renderer(tm, opts).entity(entity)
    else:
        out = await Linker(store, tenant, tm, opts, spec.join, spec.pick, spec.omit).render_one(entity)
    if not out:
        raise ResourceNotFound(f"Nothing of entity {entity['id']} is left after pick / omit")
    return out


def needs_id_resolution(spec: QuerySpec) -> bool:
    """Several selectors that each name ids: which ids match their own type needs the stored entities."""
    sels = spec.selectors
    return len(sels) > 1 and all(s.ids is not None and s.id_pattern is None for s in sels)


class QueryService:
    """Runs parsed queries through the store, and purges (deletes by query) through the write path."""

    def __init__(self, entities: EntityService) -> None:
        self.entities = entities
        self.store = entities.store

    async def resolve_selectors(self, tenant: str, spec: QuerySpec) -> None:
        """Several id selectors, each with its own type: keep the ids whose stored types match."""
        if not needs_id_resolution(spec):
            return
        wanted = [i for s in spec.selectors for i in (s.ids or [])]
        found = await self.store.get_entities(tenant, wanted)
        ids: list[str] = []
        for sel in spec.selectors:
            for i in sel.ids or []:
                entity = found.get(i)
                if entity is not None and (sel.types is None or match_types(sel.types, entity)):
                    ids.append(i)
        spec.query.ids = list(dict.fromkeys(ids))

    async def query(self, tenant: str, spec: QuerySpec) -> tuple[list[dict[str, Any]], int | None, bool]:
        """(page, total or None, whether more matches follow the page)."""
        await self.entities.check_tenant(tenant)
        await self.resolve_selectors(tenant, spec)
        query = spec.query
        if spec.order_by:
            return await self._ordered(tenant, spec)
        if query.limit == 0:
            probe = replace(query, limit=1, offset=0)
            _, total = await self.store.query_entities(tenant, probe)
            return [], total, bool(total)
        probe = replace(query, limit=query.limit + 1)
        page, total = await self.store.query_entities(tenant, probe)
        more = len(page) > query.limit
        return page[:query.limit], total, more

    async def _ordered(self, tenant: str, spec: QuerySpec) -> tuple[list[dict[str, Any]], int | None, bool]:
        """``orderBy`` (clause 4.23): every match is sorted before the page is cut."""
        query = spec.query
        matches = [e async for e in self.store.scan_entities(tenant, replace(query, count=False))]
        sort_entities(matches, spec.order_by or [])
        end = query.offset + query.limit
        return matches[query.offset:end], (len(matches) if query.count else None), len(matches) > end

    async def purge(self, tenant: str, spec: QuerySpec, *, keep: list[str] | None = None,
                    drop: list[str] | None = None) -> int:
        """Delete every match through the write path, so each change emits its event.

        With ``drop`` (or ``keep``) only those attributes (or all but those) are deleted and the
        entities stay. Returns how many entities were deleted or changed.
        """
        if keep is not None and drop is not None:
            raise BadRequestData("keep and drop must not be used together")
        await self.entities.check_tenant(tenant)
        await self.resolve_selectors(tenant, spec)
        ids = [e["id"] async for e in self.store.scan_entities(tenant, spec.query)]
        done = 0
        for entity_id in ids:
            try:
                if keep is None and drop is None:
                    await self.entities.delete(tenant, entity_id)
                else:
                    await self.entities.modify(tenant, entity_id, _prune(keep, drop))
            except ResourceNotFound:  # deleted concurrently: the goal is reached anyway
                continue
            done += 1
        return done


def _prune(keep: list[str] | None, drop: list[str] | None) -> Any:
    """The mutation deleting the ``drop`` attributes, or every attribute outside ``keep``."""

    def mutate(entity: dict[str, Any], now: str) -> set[str] | None:
        attrs = entity.get("attrs", {})
        doomed = {a for a in attrs if (a in drop if drop is not None else a not in (keep or ()))}
        for a in doomed:
            del attrs[a]
        return doomed or None

    return mutate
