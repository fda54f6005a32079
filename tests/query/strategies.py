"""Hypothesis strategies of stored entities and query texts, reusable against a real FerretDB.

Domains are deliberately tiny (three attributes, a handful of literals) so that generated queries
match generated entities often, and they include the hard cases: datasetIds, sub-attributes,
compound values with nested lists, typed literals, LanguageProperties, date-times in different
spellings, compound keys that need encoding (``x.y``, ``$d``) or look like array indexes (``0``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.model import EntityQuery
from broker.query.parser import parse_geoq, parse_q, parse_scope_q, parse_type_expr

BASE = "https://example.org/"
ATTRS = ("a", "b", "c")
SUBS = ("s", "t")
KEYS = ("k", "l", "x.y", "$d", "0")
TYPES = ("T1", "T2", "T3")
SCOPES = ("/Madrid", "/Madrid/Gardens", "/Madrid/Gardens/North", "/Madrid/Parks", "/Berlin")
IDS = ("urn:ngsi-ld:E:1", "urn:ngsi-ld:E:22", "urn:ngsi-ld:F:x.y", "urn:ngsi-ld:E:1\n")
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
DATETIMES = ("2018-12-04T12:00:00Z", "2018-12-04T12:00:00.000Z", "2018-12-04T13:00:00+01:00",
             "2018-12-04T12:00:00.5Z", "2019-01-01T00:00:00.000Z", "2017-06-30T23:59:59.999Z")
STRINGS = ("x", "y", "ab", "X1", "", "x\n", "urn:ngsi-ld:T:1", "2018-12-04", "12:00:00", "ünï")
URNS = ("urn:ngsi-ld:T:1", "urn:ngsi-ld:T:2", "urn:ngsi-ld:U:1")


def expand(name: str) -> str:
    """The identity-ish @context of these tests: ``name`` -> ``https://example.org/name``."""
    return BASE + name


# ------------------------------------------------------------------------------------ entities

scalars: st.SearchStrategy[Any] = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e3]),
    st.booleans(),
    st.sampled_from(STRINGS + DATETIMES),
    st.none(),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
        st.builds(lambda v: {"@type": "DateTime", "@value": v}, st.sampled_from(DATETIMES)),
    ),
    max_leaves=6,
)


def _coord(lon: float, lat: float) -> list[float]:
    return [lon, lat]


_lon = st.integers(-20, 20).map(lambda i: i / 10)
_lat = st.integers(390, 420).map(lambda i: i / 10)
_point = st.builds(_coord, _lon, _lat)


def _box(x0: float, y0: float, w: float, h: float) -> list[list[float]]:
    return [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h], [x0, y0]]


_size = st.integers(1, 15).map(lambda i: i / 10)
_ring = st.builds(_box, _lon, _lat, _size, _size)

geometries: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(lambda c: {"type": "Point", "coordinates": c}, _point),
    st.builds(lambda c: {"type": "MultiPoint", "coordinates": c}, st.lists(_point, min_size=1, max_size=3)),
    st.builds(lambda c: {"type": "LineString", "coordinates": c},
              st.lists(_point, min_size=2, max_size=3, unique_by=tuple)),
    st.builds(lambda c: {"type": "MultiLineString", "coordinates": c},
              st.lists(st.lists(_point, min_size=2, max_size=3, unique_by=tuple), min_size=1, max_size=2)),
    st.builds(lambda r: {"type": "Polygon", "coordinates": [r]}, _ring),
    st.builds(lambda rs: {"type": "MultiPolygon", "coordinates": [[r] for r in rs]},
              st.lists(_ring, min_size=1, max_size=2)),
)


@st.composite
def instances(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """One attribute instance of any NGSI-LD attribute type, with optional members and subs."""
    kind = draw(st.sampled_from(["Property", "Property", "Relationship", "LanguageProperty",
                                 "VocabProperty", "JsonProperty", "ListProperty", "ListRelationship"]))
    inst: dict[str, Any] = {"type": kind}
    if kind == "Property":
        inst["value"] = draw(json_values)
    elif kind == "Relationship":
        inst["object"] = draw(st.one_of(st.sampled_from(URNS), st.lists(st.sampled_from(URNS), max_size=2)))
    elif kind == "LanguageProperty":
        inst["languageMap"] = draw(st.dictionaries(
            st.sampled_from(["en", "fr"]),
            st.one_of(st.sampled_from(STRINGS), st.lists(st.sampled_from(STRINGS), max_size=2)),
            max_size=2))
    elif kind == "VocabProperty":
        inst["vocab"] = draw(st.one_of(st.sampled_from(STRINGS), st.lists(st.sampled_from(STRINGS), max_size=2)))
    elif kind == "JsonProperty":
        inst["json"] = draw(json_values)
    elif kind == "ListProperty":
        inst["valueList"] = draw(st.lists(json_values, max_size=3))
    else:
        inst["objectList"] = draw(st.lists(st.sampled_from(URNS), max_size=3))
    if draw(st.booleans()):
        inst["observedAt"] = draw(st.sampled_from(DATETIMES))
    if draw(st.integers(0, 3)) == 0:
        inst["unitCode"] = draw(st.sampled_from(["CEL", "FAH"]))
    if depth == 0 and draw(st.integers(0, 2)) == 0:
        inst["subs"] = draw(st.dictionaries(st.sampled_from(SUBS).map(expand), instances(depth + 1),
                                            min_size=1, max_size=2))
    return inst


@st.composite
def attribute(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The instances of one attribute: a default instance and/or some datasetIds."""
    insts = draw(st.lists(instances(), min_size=1, max_size=2))
    for n, inst in enumerate(insts):
        if n or draw(st.booleans()):
            inst["datasetId"] = f"urn:ngsi-ld:Dataset:{n}"
    return insts


@st.composite
def geo_attribute(draw: st.DrawFn) -> list[dict[str, Any]]:
    geoms = draw(st.lists(geometries, min_size=1, max_size=2))
    insts = [{"type": "GeoProperty", "value": g} for g in geoms]
    for n, inst in enumerate(insts[1:], start=1):
        inst["datasetId"] = f"urn:ngsi-ld:Dataset:{n}"
    return insts


@st.composite
def _entity(draw: st.DrawFn, with_location: bool | None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": draw(st.sampled_from(IDS)),
        "type": draw(st.lists(st.sampled_from(TYPES).map(expand), min_size=1, max_size=2, unique=True)),
        "createdAt": "2024-01-01T00:00:00.000Z",
        "modifiedAt": "2024-01-01T00:00:00.000Z",
    }
    if draw(st.booleans()):
        entity["scope"] = draw(st.lists(st.sampled_from(SCOPES), min_size=1, max_size=2, unique=True))
    attrs = draw(st.dictionaries(st.sampled_from(ATTRS).map(expand), attribute(), max_size=3))
    if with_location if with_location is not None else draw(st.booleans()):
        attrs[LOCATION] = draw(geo_attribute())
    entity["attrs"] = attrs
    return entity


def entities(with_location: bool | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Stored entity dicts (names expanded with :func:`expand`); optionally force a location."""
    return _entity(with_location)


# ------------------------------------------------------------------------------------- queries

_NUMBERS = ("1", "-2", "0", "0.5", "2.0", "1e3", "3")
_STRINGISH = ('"x"', '"ab"', "x", '"X1"', "urn:ngsi-ld:T:1", '""', '"ünï"', "2018-12-04", "12:00:00",
              '"x\\n"')
_DATES = ("2018-12-04T12:00:00Z", "2018-12-04T12:00:00.00Z", "2018-12-04T11:00:00Z", '"2019-01-01T00:00:00Z"')
_RANGES = ("0..2", "-3..0.5", '"a".."y"', "2018-01-01T00:00:00Z..2018-12-31T00:00:00Z", "x..y")
_LISTS = ("1,2", '"x",2,true', "urn:ngsi-ld:T:1,urn:ngsi-ld:T:2", '"ab","y"', "true,false")
_REGEXES = ("x", "^x$", '"a|b"', "X[0-9]", r"\d", "(?i)x", "^urn:.*1$", ".*", '"^$"', "T:(1|2)", "ü")

_single = st.sampled_from(_NUMBERS + _STRINGISH + _DATES + ("true", "false"))


@st.composite
def attr_paths(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(ATTRS))
    if draw(st.integers(0, 3)) == 0:
        text += "." + draw(st.sampled_from(SUBS))
    tail = draw(st.integers(0, 5))
    if tail == 0:
        text += "." + draw(st.sampled_from(["observedAt", "unitCode", "datasetId"]))
    elif tail == 1:
        text += "".join(f"[{k}]" for k in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2)))
    return text


@st.composite
def terms(draw: st.DrawFn) -> str:
    path = draw(attr_paths())
    op = draw(st.sampled_from(["", "==", "!=", ">", ">=", "<", "<=", "~=", "!~=", "==", "!="]))
    if not op:
        return path
    if op in ("~=", "!~="):
        return path + op + draw(st.sampled_from(_REGEXES))
    if op in ("==", "!="):
        return path + op + draw(st.one_of(_single, st.sampled_from(_RANGES + _LISTS)))
    return path + op + draw(_single)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda items, sep: "(" + sep.join(items) + ")",
                     st.lists(children, min_size=2, max_size=3), st.sampled_from([";", "|"]))


def queries() -> st.SearchStrategy[str]:
    """q texts; parse them with ``parse_q(text, expand)``."""
    return st.recursive(terms(), _combine, max_leaves=4).map(
        lambda s: s[1:-1] if s.startswith("(") and s.endswith(")") else s)


def type_exprs() -> st.SearchStrategy[str]:
    """Type expression texts; parse with ``parse_type_expr(text, expand)``."""
    leaf = st.sampled_from(TYPES + ("T4",))
    return st.recursive(leaf, lambda c: st.builds(
        lambda items, sep: "(" + sep.join(items) + ")", st.lists(c, min_size=2, max_size=3),
        st.sampled_from([",", "|", ";"])), max_leaves=4)


def scope_queries() -> st.SearchStrategy[str]:
    """scopeQ texts; parse with ``parse_scope_q(text)``."""
    leaf = st.sampled_from(["/Madrid", "/Madrid/#", "/#", "/Madrid/+", "/+/Gardens", "/Madrid/Gardens/#",
                            "/Berlin/+", "/+", "/Madrid/+/#", "/Nowhere/#"])
    return st.recursive(leaf, lambda c: st.builds(
        lambda items, sep: "(" + sep.join(items) + ")", st.lists(c, min_size=2, max_size=3),
        st.sampled_from([",", "|", ";"])), max_leaves=3)


_query_shapes = st.one_of(
    st.builds(lambda c: ("Point", c), _point),
    st.builds(lambda r: ("Polygon", [r]), _ring),
    st.builds(lambda c: ("LineString", c), st.lists(_point, min_size=2, max_size=3, unique_by=tuple)),
    st.builds(lambda c: ("MultiPoint", c), st.lists(_point, min_size=1, max_size=3)),
    st.builds(lambda rs: ("MultiPolygon", [[r] for r in rs]),
              st.lists(_ring, min_size=1, max_size=2).filter(lambda rs: len(rs) < 2 or rs[0] != rs[1])),
)


@st.composite
def geo_args(draw: st.DrawFn) -> tuple[str, str, list, None]:
    """Arguments ``(georel, geometry, coordinates, geoproperty)`` for ``parse_geoq``."""
    rel = draw(st.sampled_from(["near;maxDistance", "near;minDistance", "within", "contains",
                                "intersects", "disjoint", "overlaps", "equals"]))
    if rel.startswith("near"):
        dist = draw(st.sampled_from([0, 1000, 25000, 111000, 300000]))
        return f"{rel}=={dist}", "Point", draw(_point), None
    geometry, coords = draw(_query_shapes)
    return rel, geometry, coords, None


@st.composite
def _entity_query(draw: st.DrawFn) -> EntityQuery:
    query = EntityQuery()
    if draw(st.integers(0, 4)) == 0:
        query.ids = draw(st.lists(st.sampled_from(IDS), max_size=2))
    if draw(st.integers(0, 4)) == 0:
        query.id_pattern = draw(st.sampled_from(["urn:ngsi-ld:E:.*", "urn:ngsi-ld:E:1$", r".*:\d+",
                                                 "urn:ngsi-ld:[EF]:x\\.y", "(?i)URN.*", ".*"]))
    if draw(st.integers(0, 3)) == 0:
        query.types = parse_type_expr(draw(type_exprs()), expand)
    if draw(st.integers(0, 4)) == 0:
        query.attrs = [expand(a) for a in draw(st.lists(st.sampled_from(ATTRS), max_size=2))]
    if draw(st.booleans()):
        query.q = parse_q(draw(queries()), expand)
    if draw(st.integers(0, 3)) == 0:
        query.scope_q = parse_scope_q(draw(scope_queries()))
    if draw(st.integers(0, 3)) == 0:
        try:
            query.geo_q = parse_geoq(*draw(geo_args()), expand)
        except BadRequestData:  # e.g. a MultiPolygon whose parts overlap
            pass
    return query


def entity_queries() -> st.SearchStrategy[EntityQuery]:
    """Whole EntityQuery objects mixing ids, idPattern, types, attrs, q, scopeQ and geoQ."""
    return _entity_query()
