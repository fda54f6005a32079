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


# Strategies are built once: constructing them inside composites dominates generation time.
_kinds = st.sampled_from(["Property", "Property", "Relationship", "LanguageProperty", "VocabProperty",
                          "JsonProperty", "ListProperty", "ListRelationship"])
_urn = st.sampled_from(URNS)
_string = st.sampled_from(STRINGS)
_objects = st.one_of(_urn, st.lists(_urn, max_size=2))
_strings = st.one_of(_string, st.lists(_string, max_size=2))
_language_maps = st.dictionaries(st.sampled_from(["en", "fr"]), _strings, max_size=2)
_value_lists = st.lists(json_values, max_size=3)
_object_lists = st.lists(_urn, max_size=3)
_datetime = st.sampled_from(DATETIMES)
_unit = st.sampled_from(["CEL", "FAH"])
_one_in_3 = st.integers(0, 2)
_one_in_4 = st.integers(0, 3)
_one_in_5 = st.integers(0, 4)


@st.composite
def instances(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """One attribute instance of any NGSI-LD attribute type, with optional members and subs."""
    kind = draw(_kinds)
    inst: dict[str, Any] = {"type": kind}
    if kind == "Property":
        inst["value"] = draw(json_values)
    elif kind == "Relationship":
        inst["object"] = draw(_objects)
    elif kind == "LanguageProperty":
        inst["languageMap"] = draw(_language_maps)
    elif kind == "VocabProperty":
        inst["vocab"] = draw(_strings)
    elif kind == "JsonProperty":
        inst["json"] = draw(json_values)
    elif kind == "ListProperty":
        inst["valueList"] = draw(_value_lists)
    else:
        inst["objectList"] = draw(_object_lists)
    if draw(st.booleans()):
        inst["observedAt"] = draw(_datetime)
    if draw(_one_in_4) == 0:
        inst["unitCode"] = draw(_unit)
    if depth == 0 and draw(_one_in_3) == 0:
        inst["subs"] = draw(_sub_attrs)
    return inst


_sub_attrs = st.dictionaries(st.sampled_from(SUBS).map(expand), instances(1), min_size=1, max_size=2)
_instance_lists = st.lists(instances(), min_size=1, max_size=2)


@st.composite
def attribute(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The instances of one attribute: a default instance and/or some datasetIds."""
    insts = draw(_instance_lists)
    for n, inst in enumerate(insts):
        if n or draw(st.booleans()):
            inst["datasetId"] = f"urn:ngsi-ld:Dataset:{n}"
    return insts


_geometry_lists = st.lists(geometries, min_size=1, max_size=2)


@st.composite
def geo_attribute(draw: st.DrawFn) -> list[dict[str, Any]]:
    geoms = draw(_geometry_lists)
    insts = [{"type": "GeoProperty", "value": g} for g in geoms]
    for n, inst in enumerate(insts[1:], start=1):
        inst["datasetId"] = f"urn:ngsi-ld:Dataset:{n}"
    return insts


_id = st.sampled_from(IDS)
_types = st.lists(st.sampled_from(TYPES).map(expand), min_size=1, max_size=2, unique=True)
_scopes = st.lists(st.sampled_from(SCOPES), min_size=1, max_size=2, unique=True)
_attrs = st.dictionaries(st.sampled_from(ATTRS).map(expand), attribute(), max_size=3)
_geo_attribute = geo_attribute()


@st.composite
def _entity(draw: st.DrawFn, with_location: bool | None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": draw(_id),
        "type": draw(_types),
        "createdAt": "2024-01-01T00:00:00.000Z",
        "modifiedAt": "2024-01-01T00:00:00.000Z",
    }
    if draw(st.booleans()):
        entity["scope"] = draw(_scopes)
    attrs = draw(_attrs)
    if with_location if with_location is not None else draw(st.booleans()):
        attrs[LOCATION] = draw(_geo_attribute)
    entity["attrs"] = attrs
    return entity


_entities = {flag: _entity(flag) for flag in (None, True, False)}


def entities(with_location: bool | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Stored entity dicts (names expanded with :func:`expand`); optionally force a location."""
    return _entities[with_location]


# ------------------------------------------------------------------------------------- queries

_NUMBERS = ("1", "-2", "0", "0.5", "2.0", "1e3", "3")
_STRINGISH = ('"x"', '"ab"', "x", '"X1"', "urn:ngsi-ld:T:1", '""', '"ünï"', "2018-12-04", "12:00:00",
              '"x\\n"')
_DATES = ("2018-12-04T12:00:00Z", "2018-12-04T12:00:00.00Z", "2018-12-04T11:00:00Z", '"2019-01-01T00:00:00Z"')
_RANGES = ("0..2", "-3..0.5", '"a".."y"', "2018-01-01T00:00:00Z..2018-12-31T00:00:00Z", "x..y")
_LISTS = ("1,2", '"x",2,true', "urn:ngsi-ld:T:1,urn:ngsi-ld:T:2", '"ab","y"', "true,false")
_REGEXES = ("x", "^x$", '"a|b"', "X[0-9]", r"\d", "(?i)x", "^urn:.*1$", ".*", '"^$"', "T:(1|2)", "ü")

_single = st.sampled_from(_NUMBERS + _STRINGISH + _DATES + ("true", "false"))
_eq_operand = st.one_of(_single, st.sampled_from(_RANGES + _LISTS))
_regex = st.sampled_from(_REGEXES)
_ops = st.sampled_from(["", "==", "!=", ">", ">=", "<", "<=", "~=", "!~=", "==", "!="])
_attr_name = st.sampled_from(ATTRS)
_sub_name = st.sampled_from(SUBS)
_member = st.sampled_from(["observedAt", "unitCode", "datasetId"])
_keys = st.lists(st.sampled_from(KEYS), min_size=1, max_size=2)
_tail = st.integers(0, 5)


@st.composite
def attr_paths(draw: st.DrawFn) -> str:
    """``attr``, ``attr.sub``, ``attr.member``, ``attr[key]...`` texts."""
    text = draw(_attr_name)
    if draw(_one_in_4) == 0:
        text += "." + draw(_sub_name)
    tail = draw(_tail)
    if tail == 0:
        text += "." + draw(_member)
    elif tail == 1:
        text += "".join(f"[{k}]" for k in draw(_keys))
    return text


_attr_paths = attr_paths()


@st.composite
def terms(draw: st.DrawFn) -> str:
    path = draw(_attr_paths)
    op = draw(_ops)
    if not op:
        return path
    if op in ("~=", "!~="):
        return path + op + draw(_regex)
    if op in ("==", "!="):
        return path + op + draw(_eq_operand)
    return path + op + draw(_single)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda items, sep: "(" + sep.join(items) + ")",
                     st.lists(children, min_size=2, max_size=3), st.sampled_from([";", "|"]))


_queries = st.recursive(terms(), _combine, max_leaves=4).map(
    lambda s: s[1:-1] if s.startswith("(") and s.endswith(")") else s)


def queries() -> st.SearchStrategy[str]:
    """q texts; parse them with ``parse_q(text, expand)``."""
    return _queries


def _combine_any(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda items, sep: "(" + sep.join(items) + ")",
                     st.lists(children, min_size=2, max_size=3), st.sampled_from([",", "|", ";"]))


_type_exprs = st.recursive(st.sampled_from(TYPES + ("T4",)), _combine_any, max_leaves=4)
_scope_queries = st.recursive(
    st.sampled_from(["/Madrid", "/Madrid/#", "/#", "/Madrid/+", "/+/Gardens", "/Madrid/Gardens/#",
                     "/Berlin/+", "/+", "/Madrid/+/#", "/Nowhere/#"]),
    _combine_any, max_leaves=3)


def type_exprs() -> st.SearchStrategy[str]:
    """Type expression texts; parse with ``parse_type_expr(text, expand)``."""
    return _type_exprs


def scope_queries() -> st.SearchStrategy[str]:
    """scopeQ texts; parse with ``parse_scope_q(text)``."""
    return _scope_queries


_query_shapes = st.one_of(
    st.builds(lambda c: ("Point", c), _point),
    st.builds(lambda r: ("Polygon", [r]), _ring),
    st.builds(lambda c: ("LineString", c), st.lists(_point, min_size=2, max_size=3, unique_by=tuple)),
    st.builds(lambda c: ("MultiPoint", c), st.lists(_point, min_size=1, max_size=3)),
    st.builds(lambda rs: ("MultiPolygon", [[r] for r in rs]), st.lists(_ring, min_size=1, max_size=2)),
)
_georels = st.sampled_from(["near;maxDistance", "near;minDistance", "within", "contains", "intersects",
                            "disjoint", "overlaps", "equals"])
_distances = st.sampled_from([0, 1000, 25000, 111000, 300000])


@st.composite
def _geo_args(draw: st.DrawFn) -> tuple[str, str, list, None]:
    rel = draw(_georels)
    if rel.startswith("near"):
        return f"{rel}=={draw(_distances)}", "Point", draw(_point), None
    geometry, coords = draw(_query_shapes)
    return rel, geometry, coords, None


_geo_args_strategy = _geo_args()


def geo_args() -> st.SearchStrategy[tuple[str, str, list, None]]:
    """Arguments ``(georel, geometry, coordinates, geoproperty)`` for ``parse_geoq``.

    Some are invalid (a MultiPolygon whose parts overlap): callers skip those BadRequestData.
    """
    return _geo_args_strategy


_id_lists = st.lists(_id, max_size=2)
_id_patterns = st.sampled_from(["urn:ngsi-ld:E:.*", "urn:ngsi-ld:E:1$", r".*:\d+", "urn:ngsi-ld:[EF]:x\\.y",
                                "(?i)URN.*", ".*"])
_attr_lists = st.lists(_attr_name, max_size=2)


@st.composite
def _selector(draw: st.DrawFn) -> EntityQuery:
    """One entity selector of a POST Query's several: ids, idPattern and type, any of them."""
    sel = EntityQuery()
    if draw(_one_in_4) == 0:
        sel.ids = draw(_id_lists)
    if draw(st.booleans()):
        sel.id_pattern = draw(_id_patterns)
    if draw(st.booleans()):
        sel.types = parse_type_expr(draw(_type_exprs), expand)
    return sel


@st.composite
def _entity_query(draw: st.DrawFn) -> EntityQuery:
    query = EntityQuery()
    if draw(_one_in_5) == 0:
        query.any_of = draw(st.lists(_selector(), max_size=3))
    if draw(_one_in_5) == 0:
        query.ids = draw(_id_lists)
    if draw(_one_in_5) == 0:
        query.id_pattern = draw(_id_patterns)
    if draw(_one_in_4) == 0:
        query.types = parse_type_expr(draw(_type_exprs), expand)
    if draw(_one_in_5) == 0:
        query.attrs = [expand(a) for a in draw(_attr_lists)]
    if draw(st.booleans()):
        query.q = parse_q(draw(_queries), expand)
    if draw(_one_in_4) == 0:
        query.scope_q = parse_scope_q(draw(_scope_queries))
    if draw(_one_in_4) == 0:
        try:
            query.geo_q = parse_geoq(*draw(_geo_args_strategy), expand)
        except BadRequestData:  # e.g. a MultiPolygon whose parts overlap
            pass
    return query


_entity_queries = _entity_query()


def entity_queries() -> st.SearchStrategy[EntityQuery]:
    """Whole EntityQuery objects mixing ids, idPattern, types, several selectors (``any_of``),
    attrs, q, scopeQ and geoQ."""
    return _entity_queries
