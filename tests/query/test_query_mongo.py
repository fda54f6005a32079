"""Compiler tests: filter shapes, the ``exact`` rule, portable regexes and the near bounding box."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.evaluator import haversine, match_entity
from broker.query.model import EntityQuery
from broker.query.mongo import compile_entity_query, encode_key, near_box
from broker.query.parser import parse_geoq, parse_q, parse_scope_q, parse_type_expr
from broker.query.regex import to_portable
from tests.query.encoding import encode_entity
from tests.query.mongo_matcher import matches, python_regex
from tests.query.strategies import entities, entity_queries, expand

B = "https://example.org/"

# operators FerretDB 1.24 supports; nothing else may appear in a filter
ALLOWED = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$type", "$regex",
           "$elemMatch", "$all", "$size", "$and", "$or", "$nor", "$not"}


def operators(filt: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(filt, dict):
        for key, val in filt.items():
            if key.startswith("$"):
                found.add(key)
            found |= operators(val)
    elif isinstance(filt, list):
        for item in filt:
            found |= operators(item)
    return found


def elem_match_bodies(filt: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(filt, dict):
        for key, val in filt.items():
            if key == "$elemMatch":
                out.append(val)
            out.extend(elem_match_bodies(val))
    elif isinstance(filt, list):
        for item in filt:
            out.extend(elem_match_bodies(item))
    return out


def compiled_q(text: str) -> tuple[dict, bool]:
    return compile_entity_query(EntityQuery(q=parse_q(text, expand)))


def test_encode_key_matches_the_codec_rules() -> None:
    assert encode_key("https://a.b/c%d") == "https://a%2Eb/c%25d"
    assert encode_key("$x.$y") == "%24x%2E$y"
    assert encode_key("") == "%_"


def test_empty_query_is_an_exact_empty_filter() -> None:
    assert compile_entity_query(EntityQuery()) == ({}, True)


@pytest.mark.parametrize("text, exact", [
    ("a==1", True), ("a!=1", True), ("a>1", True), ("a>=1.5", True), ("a<1", True), ("a<=-1", True),
    ("a==1,2", True), ("a!=1,2", True), ("a==true", True), ("a!=false", True), ("a", True),
    ("a.s", True), ("a.observedAt", True), ("a[k][l]", True), ("a.unitCode==1", True),
    ("a[k]>1", True), ("a.s[k]!=1", True), ("a==1;b>2", True), ("a==1|b>2", True),
    # inexact: strings (languageMap), date-times, ranges, digit keys, regexes
    ('a=="x"', False), ("a==urn:x:1", False), ("a!=x", False), ("a>x", False), ("a==1,x", False),
    ("a.observedAt>2018-12-04T12:00:00Z", False), ('a=="2018-12-04T12:00:00Z"', False),
    ("a==1..2", False), ("a!=1..2", False), ("a[0]==1", False), ("a[0]", False),
    ("a~=x", False), ("a!~=x", False), ("a==1;b==x", False), ("a==1|b==x", False),
])
def test_exact_rule(text: str, exact: bool) -> None:
    filt, got = compiled_q(text)
    assert got is exact, filt
    assert operators(filt) <= ALLOWED


def test_filters_use_encoded_paths() -> None:
    filt, _ = compiled_q("a.s[x.y][$d]>1")
    dumped = json.dumps(filt)
    assert "attrs.https://example%2Eorg/a.subs.https://example%2Eorg/s.value.x%2Ey.%24d" in dumped


def test_elem_match_bodies_hold_field_conditions_only() -> None:
    """FerretDB evaluates $elemMatch bodies of plain field conditions; keep logic outside."""
    for text in ("a!=1", "a!=x,y", "a!=true", "a.s[k]!=1", "a==1..2"):
        filt, _ = compiled_q(text)
        for body in elem_match_bodies(filt):
            assert not any(k.startswith("$") for k in body), (text, body)


def test_missing_attribute_does_not_match_inequality() -> None:
    filt, exact = compiled_q("a!=1")
    assert exact
    assert not matches(filt, encode_entity({"id": "x", "type": [], "attrs": {}}))
    assert not matches(filt, encode_entity({"id": "x", "type": [], "attrs": {B + "a": [{"type": "Property"}]}}))
    assert matches(filt, encode_entity({"id": "x", "type": [], "attrs": {B + "a": [
        {"type": "Property", "value": "one"}]}}))


def test_types_ids_attrs_scopes() -> None:
    query = EntityQuery(ids=["urn:a"], types=parse_type_expr("T1,T2", expand), attrs=[B + "a"],
                        scope_q=parse_scope_q("/Madrid/#,/Berlin"))
    filt, exact = compile_entity_query(query)
    assert exact
    assert filt == {"$and": [
        {"_id": {"$in": ["urn:a"]}},
        {"type": {"$in": [B + "T1", B + "T2"]}},
        {"attrNames": {"$in": [B + "a"]}},
        {"$or": [{"scope": {"$regex": r"^/Madrid(?:/|\z)"}}, {"scope": "/Berlin"}]},
    ]}
    assert compile_entity_query(EntityQuery(types=parse_type_expr("T1;T2", expand)))[0] == {
        "type": {"$all": [B + "T1", B + "T2"]}}
    nested = compile_entity_query(EntityQuery(types=parse_type_expr("(T1;T2)|T3", expand)))[0]
    assert nested == {"$or": [{"type": {"$all": [B + "T1", B + "T2"]}}, {"type": B + "T3"}]}


@pytest.mark.parametrize("pattern, exact", [
    ("urn:ngsi-ld:E:.*", True), ("urn:ngsi-ld:E:1$", True), ("[a-z]+:x{2,3}", True),
    (r"urn:\d+", False), ("(?i)urn", False), ("(?=u)urn", False), (r"u(?!x)rn", False), (r"\burn", False),
])
def test_id_pattern_is_exact_only_when_portable(pattern: str, exact: bool) -> None:
    filt, got = compile_entity_query(EntityQuery(id_pattern=pattern))
    assert got is exact
    assert ("_id" in filt) is exact


def test_invalid_id_pattern_is_bad_request() -> None:
    with pytest.raises(BadRequestData):
        compile_entity_query(EntityQuery(id_pattern="(x"))


# ------------------------------------------------------------------------------ portable regexes

_ALPHABET = "ab\n.:-_éX1"
_PATTERNS = ["a", "^a", "a$", "^a$", "a|b", "(a|b)+$", "[a-c]", "[^a]", "a{2}", "a{,2}b", "a*?b", ".", "^$",
             "é", r"\.", "x?$", r"\A a", r"a\Z", "(?:ab)*", "[.:-]", r"\n", "^(a|b$)", "a{2,}"]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_PATTERNS), st.text(_ALPHABET, max_size=6), st.booleans())
def test_portable_regex_matches_exactly_what_python_matches(pattern: str, text: str, full: bool) -> None:
    portable = to_portable(pattern, full)
    if portable is None:
        return
    assert "{," not in portable
    expected = (re.fullmatch if full else re.search)(pattern, text) is not None
    assert (python_regex(portable).search(text) is not None) is expected, portable


def test_portable_regex_syntax() -> None:
    assert to_portable("a$") == r"a\n?\z"
    assert to_portable("a$", full=True) == r"^(?:a\z)\z"
    assert to_portable("a{,3}") == "(?:a){0,3}"
    assert to_portable(" ") == r"\x20"
    assert to_portable("a$|b") is None  # "$" not at the very end
    assert to_portable(r"\d") is None and to_portable(r"\w") is None and to_portable(r"\s") is None


# ------------------------------------------------------------------------------------------- geo


@settings(max_examples=500, deadline=None)
@given(st.floats(-180, 180), st.floats(-89.999, 89.999), st.floats(0, 3_000_000),
       st.floats(0, 1), st.floats(0, 2 * math.pi))
def test_near_box_contains_every_point_within_the_distance(lon: float, lat: float, dist: float,
                                                           frac: float, bearing: float) -> None:
    """Walk ``frac * dist`` along a great circle and check the destination is in the box."""
    d = frac * dist / 6371008.8
    phi1, lam1 = math.radians(lat), math.radians(lon)
    phi2 = math.asin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * math.cos(bearing))
    lam2 = lam1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(phi1),
                             math.cos(d) - math.sin(phi1) * math.sin(phi2))
    lon2 = (math.degrees(lam2) + 540) % 360 - 180
    lat2 = math.degrees(phi2)
    if haversine(lon, lat, lon2, lat2) > dist:  # rounding at the very edge
        return
    x0, y0, x1, y1 = near_box(lon, lat, dist)
    assert x0 <= lon2 <= x1 and y0 <= lat2 <= y1


def test_near_box_edges() -> None:
    assert near_box(179.9, 0, 50_000)[0] == -180  # crosses the antimeridian
    assert near_box(0, 89.9, 50_000)[::2] == (-180, 180)  # reaches the pole
    assert near_box(0, 89.9, 50_000)[3] == 90
    x0, y0, x1, y1 = near_box(0, 0, 111_195)
    assert x0 == pytest.approx(-1, abs=1e-3) and y1 == pytest.approx(1, abs=1e-3)


def test_geo_filters_are_bbox_prefilters() -> None:
    square = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]
    loc = "attrs.https://uri%2Eetsi%2Eorg/ngsi-ld/location"
    for rel in ("within", "contains", "intersects", "overlaps", "equals"):
        filt, exact = compile_entity_query(EntityQuery(geo_q=parse_geoq(rel, "Polygon", square, None, expand)))
        assert not exact and set(filt) == {loc} and set(filt[loc]["$elemMatch"]) == {
            "%bb.x0", "%bb.x1", "%bb.y0", "%bb.y1"}
    filt, _ = compile_entity_query(EntityQuery(geo_q=parse_geoq("disjoint", "Polygon", square, None, expand)))
    assert filt == {loc: {"$exists": True, "$ne": []}}
    filt, _ = compile_entity_query(EntityQuery(geo_q=parse_geoq("near;minDistance==5", "Point", [0, 0], None,
                                                                expand)))
    assert filt == {loc: {"$exists": True, "$ne": []}}


# ---------------------------------------------------------------------------- the matcher itself


def test_matcher_follows_mongodb_array_semantics() -> None:
    doc = {"a": [1, 5], "b": [{"c": 1}, {"c": [2, 3]}], "d": True, "n": None, "w": [{"%a": [7]}]}
    assert matches({"a": 5}, doc) and matches({"a": {"$gt": 4}}, doc)
    assert matches({"a": {"$gt": 2, "$lt": 4}}, doc)  # different elements satisfy each bound
    assert not matches({"a": {"$elemMatch": {"$gt": 2, "$lt": 4}}}, doc)
    assert matches({"b.c": 3}, doc) and not matches({"b.c": {"$ne": 3}}, doc)
    assert matches({"missing": {"$ne": 1}}, doc) and not matches({"missing": {"$exists": True}}, doc)
    assert not matches({"d": 1}, doc) and matches({"d": {"$gt": False}}, doc)
    assert matches({"n": {"$exists": True}}, doc) and matches({"n": {"$ne": 1}}, doc)
    assert not matches({"w": 7}, doc)
    assert matches({"a": {"$all": [1, 5]}}, doc) and matches({"a": {"$size": 2}}, doc)
    assert matches({"$nor": [{"a": 9}]}, doc) and matches({"a": {"$not": {"$gt": 9}}}, doc)
    assert matches({"b": {"$elemMatch": {"c": {"$in": [3]}}}}, doc)
    assert python_regex(r"a\z").search("a") and not python_regex(r"a\z").search("a\n")
    assert python_regex(r"\\z").search("\\z")


# -------------------------------------------------------------------- against the real codec form


@settings(max_examples=300, deadline=None)
@given(entities(), entity_queries())
def test_superset_on_the_project_codec(entity: dict[str, Any], query: EntityQuery) -> None:
    """Same property on documents written by ``broker.store.codec`` (when that module is present)."""
    codec = pytest.importorskip("broker.store.codec")
    expected = match_entity(query, entity)
    filt, exact = compile_entity_query(query)
    got = matches(filt, codec.encode_entity(entity))
    assert got or not expected, filt
    if exact:
        assert got == expected, filt
