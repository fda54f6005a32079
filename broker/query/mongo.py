"""Compile an EntityQuery into a MongoDB filter that also runs on FerretDB 1.24.

Only ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex $elemMatch $and $or`` are emitted, and
``$elemMatch`` bodies hold only field conditions (no logical operators), the subset FerretDB handles.

The filter is always a superset of the evaluator's answer. ``exact`` is True only when it is
provably the same set; otherwise the store post-filters with ``broker.query.evaluator``. Inexact:

* string-like comparisons (``== != > >= < <=`` with a string, URI, date or time literal, ``~=`` and
  ``!~=``): a LanguageProperty may match through any ``languageMap`` key, which is not expressible,
  so instances with a languageMap are let through;
* date-time literals (the evaluator canonicalises both sides; stored spellings vary);
* ranges (MongoDB applies ``$gte``/``$lte`` to different array elements independently);
* compound keys that are digit strings (MongoDB would read them as array indexes);
* regexes outside the portable subset of ``broker.query.regex``;
* every geo-query (bounding-box prefilter on the ``%bb`` the codec stores).

Numeric and boolean comparisons, existence tests, types, ids, attrs, scopes and portable
idPatterns are exact.
"""

from __future__ import annotations

import math
from typing import Any

from broker.query.ast import (
    And,
    AttrPath,
    Comparison,
    Exists,
    GeoQuery,
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
from broker.query.evaluator import EARTH_RADIUS_M, query_geometry
from broker.query.model import EntityQuery
from broker.query.regex import to_portable
from broker.query.targets import existence_paths, scope_regex, value_paths
from broker.query.values import is_datetime_literal

Filter = dict[str, Any]
Compiled = tuple[Filter, bool]

MATCH_NOTHING: Filter = {"_id": {"$in": []}}


def encode_key(key: str) -> str:
    """Same as ``broker.store.codec.encode_key``: keys may not contain ``.`` or start with ``$``."""
    if not key:
        return "%_"
    key = key.replace("%", "%25").replace(".", "%2E")
    return "%24" + key[1:] if key.startswith("$") else key


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(encode_key(k) for k in path)


def _attr_field(attr: str) -> str:
    return "attrs." + encode_key(attr)


def _and(parts: list[Compiled]) -> Compiled:
    filters = [f for f, _ in parts if f]
    exact = all(e for _, e in parts)
    if not filters:
        return {}, exact
    return (filters[0] if len(filters) == 1 else {"$and": filters}), exact


def _or(parts: list[Compiled]) -> Compiled:
    exact = all(e for _, e in parts)
    if any(not f for f, _ in parts):  # one branch unconstrained: the disjunction is too
        return {}, exact
    filters = [f for f, _ in parts]
    return (filters[0] if len(filters) == 1 else {"$or": filters}), exact


_POSITIVE = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$regex"})


def _any_instance(attr: str, conditions: Filter) -> Filter:
    """Some instance satisfies all ``conditions``.

    A single positive condition is written as a dotted path, which MongoDB's array traversal makes
    equivalent and which is shorter and index-friendly; ``$ne``/``$nin`` need ``$elemMatch``.
    """
    if len(conditions) == 1:
        (field, cond), = conditions.items()
        if all(op in _POSITIVE or (op == "$exists" and arg is True) for op, arg in cond.items()):
            return {f"{_attr_field(attr)}.{field}": cond}
    return {_attr_field(attr): {"$elemMatch": conditions}}


def _attr_present(attr: str) -> Filter:
    return {_attr_field(attr): {"$exists": True, "$ne": []}}


def _digit_keys(path: AttrPath) -> bool:
    return any(k.isdigit() for k in path.keys)


def _presence(path: AttrPath) -> Filter:
    """Some instance has something the term could compare: the superset of any comparison on it."""
    paths, lang = value_paths(path)
    if _digit_keys(path):
        return _attr_present(path.attr)
    everything = [*paths, lang] if lang is not None else list(paths)
    branches = [_any_instance(path.attr, {_dotted(p): {"$exists": True}}) for p in everything]
    return branches[0] if len(branches) == 1 else {"$or": branches}


def _literal(value: Value) -> Any:
    return value.value


def _compile_exists(term: Exists) -> Compiled:
    paths = existence_paths(term.path)
    if not paths:
        return _attr_present(term.path.attr), True
    if _digit_keys(term.path):
        return _attr_present(term.path.attr), False
    branches = [{f"{_attr_field(term.path.attr)}.{_dotted(p)}": {"$exists": True}} for p in paths]
    return (branches[0] if len(branches) == 1 else {"$or": branches}), True


def _operand_values(operand: Value | Range | ValueList) -> list[Value]:
    if isinstance(operand, Value):
        return [operand]
    if isinstance(operand, Range):
        return [operand.low, operand.high]
    return list(operand.items)


_OPS = {"==": "$eq", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


def _compile_comparison(term: Comparison) -> Compiled:
    path, op, operand = term.path, term.op, term.operand
    if _digit_keys(path):
        return _presence(path), False
    paths, lang = value_paths(path)
    lang_branch = [_any_instance(path.attr, {_dotted(lang): {"$exists": True}})] if lang else []
    fields = [_dotted(p) for p in paths]

    if op in ("~=", "!~="):
        portable = to_portable(operand.value) if op == "~=" else None  # type: ignore[union-attr, arg-type]
        if portable is None:
            return _presence(path), False
        branches = [_any_instance(path.attr, {f: {"$regex": portable}}) for f in fields]
        return {"$or": branches + lang_branch}, False

    values = _operand_values(operand)
    if any(is_datetime_literal(v) for v in values) or (op == "!=" and isinstance(operand, Range)):
        return _presence(path), False
    stringish = any(v.is_stringish for v in values)
    exact = not stringish and not isinstance(operand, Range)
    extra = lang_branch if stringish else []

    if op == "!=":
        # present and no member equals: distribute "present" (an OR of member existences) over
        # $elemMatch so that every $elemMatch body is a plain conjunction of field conditions.
        neg = ({"$nin": [_literal(v) for v in values]} if isinstance(operand, ValueList)
               else {"$ne": _literal(operand)})  # type: ignore[arg-type]
        branches = []
        for present in fields + ([_dotted(lang)] if lang and not stringish else []):
            body = {f: dict(neg) for f in fields}
            body[present] = {"$exists": True, **body.get(present, {})}
            branches.append(_any_instance(path.attr, body))
        return {"$or": branches + extra}, exact

    if isinstance(operand, Range):
        cond: Filter = {"$gte": _literal(operand.low), "$lte": _literal(operand.high)}
    elif isinstance(operand, ValueList):
        cond = {"$in": [_literal(v) for v in operand.items]}
    else:
        cond = {_OPS[op]: _literal(operand)}
    branches = [_any_instance(path.attr, {f: dict(cond)}) for f in fields]
    return {"$or": branches + extra}, exact


def compile_q(node: QNode) -> Compiled:
    """Filter and exactness of a q expression (monotone: no negation, so supersets compose)."""
    if isinstance(node, Comparison):
        return _compile_comparison(node)
    if isinstance(node, Exists):
        return _compile_exists(node)
    if isinstance(node, And):
        return _and([compile_q(n) for n in node.items])  # type: ignore[arg-type]
    if isinstance(node, Or):
        return _or([compile_q(n) for n in node.items])  # type: ignore[arg-type]
    raise TypeError(f"not a q node: {node!r}")


def compile_types(node: TypeNode) -> Filter:
    """Type expressions map one-to-one onto the ``type`` array."""
    if isinstance(node, TypeName):
        return {"type": node.iri}
    if all(isinstance(n, TypeName) for n in node.items):
        iris = [n.iri for n in node.items]  # type: ignore[union-attr]
        return {"type": {"$in" if isinstance(node, Or) else "$all": iris}}
    key = "$or" if isinstance(node, Or) else "$and"
    return {key: [compile_types(n) for n in node.items]}  # type: ignore[arg-type]


def compile_scope(node: ScopeNode) -> Filter:
    """Scope patterns become anchored portable regexes (plain equality when there are no wildcards)."""
    if isinstance(node, ScopeTerm):
        if not node.descendants and "+" not in node.segments:
            return {"scope": str(node)}
        return {"scope": {"$regex": scope_regex(node, r"\z")}}
    key = "$or" if isinstance(node, Or) else "$and"
    return {key: [compile_scope(n) for n in node.items]}  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- geo

_MARGIN = 1.000001
_EPS_DEG = 1e-9


def near_box(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    """A lon/lat box containing every point within ``metres`` (haversine) of (lon, lat).

    From hav(d/R) >= cos(lat1) cos(lat2) hav(dlon) with |lat2| <= |lat1| + d/R; when the box would
    reach a pole or cross the antimeridian it spans every longitude.
    """
    delta = metres / EARTH_RADIUS_M * _MARGIN
    phi = math.radians(lat)
    lat_lo = max(-90.0, math.degrees(phi - delta) - _EPS_DEG)
    lat_hi = min(90.0, math.degrees(phi + delta) + _EPS_DEG)
    full = (-180.0, lat_lo, 180.0, lat_hi)
    reach = abs(phi) + delta
    if reach >= math.pi / 2:
        return full
    ratio = math.sin(delta / 2) ** 2 / (math.cos(phi) * math.cos(reach))
    if ratio >= 1:
        return full
    dlon = math.degrees(2 * math.asin(math.sqrt(ratio))) * _MARGIN + _EPS_DEG
    if lon - dlon < -180 or lon + dlon > 180:
        return full
    return (lon - dlon, lat_lo, lon + dlon, lat_hi)


def _overlap(box: tuple[float, float, float, float]) -> Filter:
    x0, y0, x1, y1 = box
    return {"%bb.x0": {"$lte": x1}, "%bb.x1": {"$gte": x0}, "%bb.y0": {"$lte": y1}, "%bb.y1": {"$gte": y0}}


def compile_geo(geo: GeoQuery) -> Filter:
    """Bounding-box prefilter on the ``%bb`` of GeoProperty instances (never exact)."""
    if geo.georel == "disjoint" or geo.min_distance is not None:
        return _attr_present(geo.geoproperty)
    qgeom = query_geometry(geo.geometry, geo.coordinates)
    if geo.georel == "near":
        box = near_box(qgeom.x, qgeom.y, geo.max_distance)  # type: ignore[arg-type]
        return _any_instance(geo.geoproperty, _overlap(box))
    x0, y0, x1, y1 = qgeom.bounds
    if geo.georel == "within":  # entity box inside the query box
        cond = {"%bb.x0": {"$gte": x0}, "%bb.x1": {"$lte": x1}, "%bb.y0": {"$gte": y0}, "%bb.y1": {"$lte": y1}}
    elif geo.georel == "contains":  # query box inside the entity box
        cond = {"%bb.x0": {"$lte": x0}, "%bb.x1": {"$gte": x1}, "%bb.y0": {"$lte": y0}, "%bb.y1": {"$gte": y1}}
    else:
        cond = _overlap((x0, y0, x1, y1))
    return _any_instance(geo.geoproperty, cond)


# ----------------------------------------------------------------------------------------- entity


def compile_entity_query(query: EntityQuery) -> tuple[dict, bool]:
    """``(filter, exact)``: the filter never misses a match; ``exact`` means it has no extras."""
    parts: list[Compiled] = []
    if query.ids is not None:
        parts.append(({"_id": {"$in": list(query.ids)}}, True))
    if query.id_pattern is not None:
        portable = to_portable(query.id_pattern, full=True)
        parts.append(({"_id": {"$regex": portable}}, True) if portable is not None else ({}, False))
    if query.types is not None:
        parts.append((compile_types(query.types), True))
    if query.any_of is not None:
        alternatives = [compile_entity_query(alt) for alt in query.any_of]
        parts.append(_or(alternatives) if alternatives else ({"_id": {"$in": []}}, True))
    if query.attrs is not None:
        parts.append(({"attrNames": {"$in": list(query.attrs)}}, True))
    if query.q is not None:
        parts.append(compile_q(query.q))
    if query.scope_q is not None:
        parts.append((compile_scope(query.scope_q), True))
    if query.geo_q is not None:
        parts.append((compile_geo(query.geo_q), False))
    return _and(parts)
