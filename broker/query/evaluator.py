"""The reference semantics of NGSI-LD queries, evaluated in Python on stored entity dicts.

Used by subscriptions and the embedded store, and as the post-filter of MongoDB prefilters, so it is
the single definition of what a query means; the MongoDB compiler is tested against it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from broker.query.ast import (
    And,
    Comparison,
    Exists,
    GeoQuery,
    Node,
    Or,
    QNode,
    Range,
    ScopeNode,
    ScopeTerm,
    TypeName,
    TypeNode,
    Value,
    ValueList,
)
from broker.query.compiled import compile_q
from broker.query.model import EntityQuery
from broker.query.regex import compile_regex
from broker.query.targets import existence_paths, flatten_values, resolve, scope_regex, value_paths
from broker.query.values import normalize_datetime

EARTH_RADIUS_M = 6371008.8

Entity = dict[str, Any]


# ------------------------------------------------------------------------------------------- q


def _same_kind(candidate: Any, literal: Value) -> tuple[Any, Any] | None:
    """The pair to compare, or None when kinds differ (bool is not a number, as in MongoDB)."""
    lit = literal.value
    if literal.kind == "number":
        if isinstance(candidate, bool) or not isinstance(candidate, int | float):
            return None
        return candidate, lit
    if literal.kind == "boolean":
        return (candidate, lit) if isinstance(candidate, bool) else None
    if not isinstance(candidate, str):
        return None
    lit_dt = normalize_datetime(lit)  # type: ignore[arg-type]
    if lit_dt is not None:
        cand_dt = normalize_datetime(candidate)
        if cand_dt is not None:
            return cand_dt, lit_dt
    return candidate, lit


def _compare(candidate: Any, op: str, literal: Value) -> bool:
    pair = _same_kind(candidate, literal)
    if pair is None:
        return False
    a, b = pair
    if op == "==":
        return a == b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<":
        return a < b
    return a <= b


def _in_range(candidate: Any, rng: Range) -> bool:
    return _compare(candidate, ">=", rng.low) and _compare(candidate, "<=", rng.high)


def _equals(candidate: Any, operand: Value | Range | ValueList) -> bool:
    if isinstance(operand, Value):
        return _compare(candidate, "==", operand)
    if isinstance(operand, Range):
        return _in_range(candidate, operand)
    return any(_compare(candidate, "==", v) for v in operand.items)


def _candidates(instance: dict[str, Any], term: Comparison) -> tuple[bool, list[Any]]:
    """(present, comparable values) of one instance."""
    paths, lang_path = value_paths(term.path)
    raws = [raw for p in paths for raw in resolve(instance, p)]
    lang_maps = resolve(instance, lang_path) if lang_path is not None else []
    return bool(raws) or bool(lang_maps), flatten_values(raws, lang_maps)


def _instance_matches(instance: dict[str, Any], term: Comparison) -> bool:
    present, values = _candidates(instance, term)
    if not present:
        return False
    op, operand = term.op, term.operand
    if op == "==":
        return any(_equals(v, operand) for v in values)
    if op == "!=":
        return not any(_equals(v, operand) for v in values)
    if op in ("~=", "!~="):
        rx = compile_regex(operand.value)  # type: ignore[union-attr, arg-type]
        strings = [v for v in values if isinstance(v, str)]
        hit = any(rx.search(s) for s in strings)
        return hit if op == "~=" else bool(strings) and not hit
    return any(_compare(v, op, operand) for v in values)  # type: ignore[arg-type]


def _instances(entity: Entity, attr: str) -> list[dict[str, Any]]:
    found = entity.get("attrs", {}).get(attr)
    return found if isinstance(found, list) else []


def _exists(entity: Entity, term: Exists) -> bool:
    instances = _instances(entity, term.path.attr)
    paths = existence_paths(term.path)
    if not paths:
        return bool(instances)
    return any(resolve(inst, p) for inst in instances for p in paths)


def match_q_reference(node: QNode, entity: Entity) -> bool:
    """Whether the entity satisfies q: a term holds if any instance (datasetId) of the attribute does.

    The reference definition; ``match_q`` runs the compiled form (``compiled.py``), tested equal.
    """
    if isinstance(node, Comparison):
        return any(_instance_matches(i, node) for i in _instances(entity, node.path.attr))
    if isinstance(node, Exists):
        return _exists(entity, node)
    if isinstance(node, And):
        return all(match_q_reference(n, entity) for n in node.items)  # type: ignore[arg-type]
    if isinstance(node, Or):
        return any(match_q_reference(n, entity) for n in node.items)  # type: ignore[arg-type]
    raise TypeError(f"not a q node: {node!r}")


_BY_IDENTITY: dict[int, tuple[QNode, Any]] = {}


def match_q(node: QNode, entity: Entity) -> bool:
    """Whether the entity satisfies q (compiled once per AST node).

    Looked up by identity first: hashing a frozen AST walks the whole tree, which cost more than
    evaluating a simple term; the node is kept in the entry so its id cannot be reused meanwhile.
    """
    hit = _BY_IDENTITY.get(id(node))
    if hit is None or hit[0] is not node:
        if len(_BY_IDENTITY) >= 4096:
            _BY_IDENTITY.clear()
        hit = _BY_IDENTITY[id(node)] = (node, compile_q(node))
    return hit[1](entity)


# ------------------------------------------------------------------------------- types and scope


def _logic(node: Node, leaf: Any, entity: Entity) -> bool:
    if isinstance(node, And):
        return all(_logic(n, leaf, entity) for n in node.items)
    if isinstance(node, Or):
        return any(_logic(n, leaf, entity) for n in node.items)
    return leaf(node, entity)


def _type_leaf(node: TypeName, entity: Entity) -> bool:
    types = entity.get("type")
    return node.iri in types if isinstance(types, list) else node.iri == types


def match_types(node: TypeNode, entity: Entity) -> bool:
    """A type term holds when the entity's type list contains it."""
    return _logic(node, _type_leaf, entity)


@lru_cache(maxsize=1024)
def _scope_pattern(term: ScopeTerm) -> re.Pattern[str]:
    return re.compile(scope_regex(term, r"\Z"))


def _scope_leaf(node: ScopeTerm, entity: Entity) -> bool:
    scopes = entity.get("scope")
    if isinstance(scopes, str):
        scopes = [scopes]
    if not isinstance(scopes, list):
        return False
    rx = _scope_pattern(node)
    return any(isinstance(s, str) and rx.search(s) for s in scopes)


def match_scope(node: ScopeNode, entity: Entity) -> bool:
    """A scope term holds when any of the entity's scopes matches it (no scope: never)."""
    return _logic(node, _scope_leaf, entity)


# ------------------------------------------------------------------------------------------ geo


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


@lru_cache(maxsize=1024)
def query_geometry(geometry: str, coordinates: tuple) -> BaseGeometry:
    """Shapely geometry of a query, prepared once for repeated predicates.

    A slightly self-intersecting polygon (clients draw them; the ETSI suite sends some) is repaired
    with ``make_valid`` instead of refused, since GEOS predicates on invalid input are undefined.
    """
    geom = shapely.geometry.shape({"type": geometry, "coordinates": _thaw(coordinates)})
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    shapely.prepare(geom)
    return geom


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def distance_m(point: BaseGeometry, geom: BaseGeometry) -> float:
    """Metres from ``point`` to the planar-nearest point of ``geom`` (0 when inside)."""
    if geom.geom_type == "Point":
        nearest = geom
    else:
        nearest = nearest_points(geom, point)[0]
    return haversine(point.x, point.y, nearest.x, nearest.y)


def _geo_instance(query: GeoQuery, qgeom: BaseGeometry, instance: dict[str, Any]) -> bool:
    if instance.get("type") != "GeoProperty":
        return False
    value = instance.get("value")
    if not isinstance(value, dict):
        return False
    try:
        geom = shapely.geometry.shape(value)
        if geom.is_empty:
            return False
        if geom.geom_type != "Point" and not geom.is_valid:
            geom = shapely.make_valid(geom)  # repaired like query geometries, so equals can hold
        rel = query.georel
        if rel == "near":
            dist = distance_m(qgeom, geom)
            if query.max_distance is not None:
                return dist <= query.max_distance
            return dist >= query.min_distance  # type: ignore[operator]
        if rel == "within":  # the entity lies in the query area, boundary included
            return bool(shapely.covers(qgeom, geom))
        if rel == "contains":
            return bool(shapely.covered_by(qgeom, geom))
        if rel == "intersects":
            return bool(shapely.intersects(qgeom, geom))
        if rel == "disjoint":
            return bool(shapely.disjoint(qgeom, geom))
        if rel == "overlaps":
            return bool(shapely.overlaps(qgeom, geom))
        return bool(shapely.equals(qgeom, geom))
    except Exception:  # malformed stored GeoJSON or GEOS topology errors: no match
        return False


def match_geo(geo: GeoQuery, entity: Entity) -> bool:
    """Whether any GeoProperty instance of ``geo.geoproperty`` satisfies the relation (planar lon/lat)."""
    qgeom = query_geometry(geo.geometry, geo.coordinates)
    return any(_geo_instance(geo, qgeom, i) for i in _instances(entity, geo.geoproperty))


# -------------------------------------------------------------------------------------- entity


def match_entity(query: EntityQuery, entity: Entity) -> bool:
    """All given criteria hold; ``id_pattern`` must match the whole id."""
    if query.ids is not None and entity.get("id") not in query.ids:
        return False
    if query.id_pattern is not None:
        ident = entity.get("id")
        if not isinstance(ident, str) or not compile_regex(query.id_pattern).fullmatch(ident):
            return False
    if query.types is not None and not match_types(query.types, entity):
        return False
    if query.any_of is not None and not any(match_entity(alt, entity) for alt in query.any_of):
        return False
    if query.attrs is not None and not any(_instances(entity, a) for a in query.attrs):
        return False
    if query.q is not None and not match_q(query.q, entity):
        return False
    if query.scope_q is not None and not match_scope(query.scope_q, entity):
        return False
    return query.geo_q is None or match_geo(query.geo_q, entity)


def entity_matcher(query: EntityQuery) -> Callable[[Entity], bool]:
    """``match_entity`` bound to one query, for scans: when q is the only criterion left (the store's
    type index already holds the type), the compiled q itself, without the per-entity dispatch."""
    if (query.q is not None and query.ids is None and query.id_pattern is None and query.types is None
            and query.any_of is None and query.attrs is None and query.scope_q is None and query.geo_q is None):
        return compile_q(query.q)
    return lambda entity: match_entity(query, entity)
