"""Evaluator tests on hand-written stored entities: every operator, types, scopeQ and georel."""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import BadRequestData
from broker.query.evaluator import (
    distance_m,
    haversine,
    match_entity,
    match_geo,
    match_q,
    match_scope,
    match_types,
)
from broker.query.model import EntityQuery
from broker.query.parser import parse_geoq, parse_q, parse_scope_q, parse_type_expr

B = "https://example.org/"


def expand(name: str) -> str:
    return B + name


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


ENTITY: dict[str, Any] = {
    "id": "urn:ngsi-ld:Building:001",
    "type": [B + "Building", B + "Asset"],
    "scope": ["/Madrid/Gardens/North", "/Berlin"],
    "createdAt": "2024-01-01T00:00:00.000Z",
    "modifiedAt": "2024-01-02T00:00:00.000Z",
    "attrs": {
        B + "temperature": [
            prop(21.5, observedAt="2018-12-04T12:00:00.000Z", unitCode="CEL",
                 subs={B + "accuracy": prop(0.5, subs={B + "source": prop("sensor")})}),
            prop(30, datasetId="urn:ngsi-ld:Dataset:raw", observedAt="2018-12-04T13:00:00Z"),
        ],
        B + "name": [prop("Main Street 1")],
        B + "count": [prop(0)],
        B + "flag": [prop(True)],
        B + "tags": [prop(["red", "green", 7])],
        B + "matrix": [prop([[1, 2], [3, 4]])],
        B + "address": [prop({"city": "Madrid", "zip": {"code": "28001"}, "lines": [{"n": 1}, {"n": 2}],
                              "x.y": "dotted"})],
        B + "owner": [{"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}],
        B + "friends": [{"type": "Relationship", "object": ["urn:ngsi-ld:Person:2", "urn:ngsi-ld:Person:3"]}],
        B + "label": [{"type": "LanguageProperty", "languageMap": {"en": "House", "es": "Casa"}}],
        B + "category": [{"type": "VocabProperty", "vocab": B + "Commercial"}],
        B + "config": [{"type": "JsonProperty", "json": {"mode": "eco"}}],
        B + "readings": [{"type": "ListProperty", "valueList": [1, 5, 9]}],
        B + "parts": [{"type": "ListRelationship", "objectList": ["urn:ngsi-ld:Part:1"]}],
        B + "since": [prop({"@type": "DateTime", "@value": "2020-05-01T10:00:00Z"})],
        B + "seen": [prop("2018-12-04T12:00:00Z")],
        B + "nothing": [prop(None)],
    },
}


def matches(text: str, entity: dict[str, Any] = ENTITY) -> bool:
    return match_q(parse_q(text, expand), entity)


@pytest.mark.parametrize("text, expected", [
    # numbers and the six comparison operators
    ("temperature==21.5", True), ("temperature==30", True), ("temperature==22", False),
    ("temperature!=21.5", True),  # the dataset instance (30) differs
    ("count!=0", False), ("count!=1", True),
    ("temperature>29", True), ("temperature>30", False), ("temperature>=30", True),
    ("temperature<21.5", False), ("temperature<=21.5", True), ("temperature<22", True),
    ("count==0", True), ("count==false", False), ("flag==1", False),
    # booleans
    ("flag==true", True), ("flag==false", False), ("flag!=false", True), ("flag!=true", False),
    # strings, quoted or not
    ('name=="Main Street 1"', True), ('name!="Main Street 1"', False), ('name>"M"', True),
    ('name<"M"', False), ('name=="main street 1"', False),
    ("count==\"0\"", False), ("count!=\"0\"", True),
    # lists: any element for ==, none for !=
    ("tags==red", True), ("tags==7", True), ("tags==blue", False), ("tags>6", True), ("tags>7", False),
    ("tags!=red", False), ("tags!=blue", True),
    ("temperature==1,30", True), ("temperature==1,2", False), ("temperature!=21.5,30", False),
    ("temperature!=21.5,31", True),
    # nested lists are values, not elements
    ("matrix==1", False), ("matrix!=1", True),
    # ranges
    ("temperature==20..22", True), ("temperature==22..29", False), ("temperature!=20..40", False),
    ('name=="A".."N"', True), ('name=="N".."Z"', False),
    # relationships
    ("owner==urn:ngsi-ld:Person:1", True), ('owner=="urn:ngsi-ld:Person:1"', True),
    ("owner!=urn:ngsi-ld:Person:1", False),
    ("friends==urn:ngsi-ld:Person:3", True), ("friends!=urn:ngsi-ld:Person:3", False),
    # language, vocab, json, lists
    ("label==Casa", True), ("label==House", True), ("label==Haus", False), ("label!=Haus", True),
    ("label!=Casa", False), ('label~="^Ca"', True), ("label!=1", True),
    ("category==https://example.org/Commercial", True),
    ("readings==5", True), ("readings>8", True), ("readings==2..4", False), ("readings==4..6", True),
    ("parts==urn:ngsi-ld:Part:1", True),
    # typed literals
    ("since>2020-01-01T00:00:00Z", True), ("since==2020-05-01T10:00:00.000Z", True),
    # null values exist but equal nothing
    ("nothing", True), ("nothing==1", False), ("nothing!=1", True),
])
def test_comparisons(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("seen==2018-12-04T12:00:00.000Z", True),
    ("seen==2018-12-04T12:00:00.00Z", True),
    ("seen==2018-12-04T13:00:00+01:00", True),
    ('seen=="2018-12-04T12:00:00.000Z"', True),
    ("seen>2018-12-04T11:59:59.999Z", True),
    ("seen<2018-12-04T12:00:00.001Z", True),
    ("seen>2018-12-04T12:00:00Z", False),
    ("seen==2018-12-04T00:00:00Z..2018-12-05T00:00:00Z", True),
    ("seen>2018-12-04", True),  # a date is not a date-time: plain string order
    ("temperature.observedAt==2018-12-04T13:00:00.000Z", True),
    ("temperature.observedAt>2018-12-04T12:30:00Z", True),
    ("temperature.observedAt<2018-12-04T12:00:00Z", False),
])
def test_datetimes_compare_in_canonical_form(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize("text, expected", [
    ('name~="Street"', True), ("name~=^Main", True), ("name~=^Street", False),
    ('name~="(?i)main street"', True), (r'name~="\d$"', True), ("name~=x(y|z)", False),
    ('name!~="Street"', False), ("name!~=^Street", True),
    ("tags~=^gr", True), ("tags!~=^gr", False), ("tags!~=^bl", True),
    ("count~=0", False), ("count!~=0", False),  # regexes only see strings
    ("missing~=.*", False), ("missing!~=.*", False),
])
def test_regex_operators(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_oversized_or_invalid_regex_is_bad_request() -> None:
    from broker.query.evaluator import compile_regex

    with pytest.raises(BadRequestData):
        compile_regex("x" * 513)
    with pytest.raises(BadRequestData):
        match_entity(EntityQuery(id_pattern="("), ENTITY)


@pytest.mark.parametrize("text, expected", [
    ("temperature", True), ("missing", False), ("missing==1", False), ("missing!=1", False),
    ("temperature.accuracy", True), ("temperature.accuracy==0.5", True), ("temperature.accuracy>1", False),
    ("temperature.accuracy.source==sensor", True), ("temperature.other", False),
    ("temperature.other!=1", False),
    ("temperature.unitCode==CEL", True), ("temperature.unitCode!=CEL", False),  # the 2nd has none
    ("temperature.datasetId==urn:ngsi-ld:Dataset:raw", True), ("temperature.datasetId", True),
    ("name.unitCode", False), ("temperature.observedAt", True),
    ("address[city]==Madrid", True), ("address[city]!=Madrid", False), ("address[city]!=Paris", True),
    ("address[zip][code]==\"28001\"", True), ("address[zip][code]==28001", False),
    ("address[lines][n]==2", True), ("address[lines][n]>2", False), ("address[x.y]==dotted", True),
    ("address[zip]", True), ("address[nope]", False), ("address[nope]!=1", False),
    ("config[mode]==eco", True), ("temperature[k]", False),
])
def test_paths(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("temperature>25;flag==true", True), ("temperature>35;flag==true", False),
    ("temperature>35|flag==true", True), ("temperature>35|flag==false", False),
    ("(temperature>35|flag==true);name~=Main", True),
    ("temperature>35|flag==true;name~=Nope", False),
])
def test_logic(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_any_instance_matches_but_a_term_sees_one_instance_at_a_time() -> None:
    # the default instance has unitCode CEL and value 21.5; the dataset instance has 30
    assert matches("temperature==30;temperature.unitCode==CEL")
    assert matches("temperature.unitCode!=FAH")


# -------------------------------------------------------------------------------- types, scope


@pytest.mark.parametrize("expr, expected", [
    ("Building", True), ("Asset", True), ("Person", False), ("Person,Asset", True), ("Person|Car", False),
    ("Building;Asset", True), ("Building;Person", False), ("(Building;Person)|Asset", True),
])
def test_types(expr: str, expected: bool) -> None:
    assert match_types(parse_type_expr(expr, expand), ENTITY) is expected


@pytest.mark.parametrize("expr, expected", [
    ("/Madrid/Gardens/North", True), ("/Madrid/Gardens", False), ("/Madrid/#", True),
    ("/Madrid/Gardens/#", True), ("/Madrid/Gardens/North/#", True), ("/Madrid/+", False),
    ("/Madrid/Gardens/+", True), ("/Madrid/+/North", True), ("/+", True), ("/+/+", False),
    ("/#", True), ("/Paris/#", False), ("/Paris,/Berlin", True), ("/Berlin;/Madrid/#", True),
    ("/Berlin;/Paris", False), ("/Berl/#", False),
])
def test_scopes(expr: str, expected: bool) -> None:
    assert match_scope(parse_scope_q(expr), ENTITY) is expected


def test_entities_without_scope_match_no_scope_query() -> None:
    assert not match_scope(parse_scope_q("/#"), {"id": "x", "type": [], "attrs": {}})


# ------------------------------------------------------------------------------------------ geo

LOC = "https://uri.etsi.org/ngsi-ld/location"


def located(geometry: dict[str, Any], prop_name: str = LOC) -> dict[str, Any]:
    return {"id": "urn:x", "type": [B + "T"], "attrs": {prop_name: [{"type": "GeoProperty", "value": geometry}]}}


def square(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


GEOMS: dict[str, dict[str, Any]] = {
    "Point": {"type": "Point", "coordinates": [1.5, 1.5]},
    "MultiPoint": {"type": "MultiPoint", "coordinates": [[1.5, 1.5], [1.8, 1.2]]},
    "LineString": {"type": "LineString", "coordinates": [[1.2, 1.2], [1.8, 1.8]]},
    "MultiLineString": {"type": "MultiLineString", "coordinates": [[[1.2, 1.2], [1.4, 1.4]], [[1.6, 1.6], [1.8, 1.9]]]},
    "Polygon": {"type": "Polygon", "coordinates": [square(1.2, 1.2, 0.5)]},
    "MultiPolygon": {"type": "MultiPolygon", "coordinates": [[square(1.1, 1.1, 0.2)], [square(1.6, 1.6, 0.2)]]},
}
AREA = [square(1, 1, 1)]  # contains every GEOMS entry
FAR = [square(10, 10, 1)]


def geo(rel: str, geometry: str, coords: Any, prop_name: str | None = None) -> Any:
    return parse_geoq(rel, geometry, coords, prop_name, expand)


@pytest.mark.parametrize("kind", sorted(GEOMS))
def test_every_relation_on_every_entity_geometry(kind: str) -> None:
    entity = located(GEOMS[kind])
    assert match_geo(geo("within", "Polygon", AREA), entity)
    assert not match_geo(geo("within", "Polygon", FAR), entity)
    assert match_geo(geo("intersects", "Polygon", AREA), entity)
    assert not match_geo(geo("intersects", "Polygon", FAR), entity)
    assert match_geo(geo("disjoint", "Polygon", FAR), entity)
    assert not match_geo(geo("disjoint", "Polygon", AREA), entity)
    assert not match_geo(geo("contains", "Polygon", AREA), entity)
    assert match_geo(geo("equals", GEOMS[kind]["type"], GEOMS[kind]["coordinates"]), entity)
    assert not match_geo(geo("equals", "Polygon", AREA), entity)
    assert match_geo(geo("near;maxDistance==200000", "Point", [1.0, 1.0]), entity)
    assert not match_geo(geo("near;maxDistance==1000", "Point", [5.0, 5.0]), entity)
    assert match_geo(geo("near;minDistance==1000", "Point", [5.0, 5.0]), entity)
    assert not match_geo(geo("near;minDistance==2000000", "Point", [1.0, 1.0]), entity)


@pytest.mark.parametrize("geometry, coords, expected", [
    ("Point", [1.5, 1.5], True),
    ("Point", [1.0, 1.0], True),  # on the boundary: covered
    ("Point", [3.0, 3.0], False),
    ("MultiPoint", [[1.5, 1.5], [1.2, 1.8]], True),
    ("LineString", [[1.2, 1.2], [1.9, 1.9]], True),
    ("LineString", [[1.2, 1.2], [2.5, 2.5]], False),
    ("MultiLineString", [[[1.2, 1.2], [1.3, 1.3]], [[1.5, 1.5], [1.6, 1.6]]], True),
    ("Polygon", [square(1.2, 1.2, 0.5)], True),
    ("Polygon", [square(1.5, 1.5, 1.0)], False),
    ("MultiPolygon", [[square(1.1, 1.1, 0.2)], [square(1.6, 1.6, 0.2)]], True),
])
def test_contains_with_every_query_geometry(geometry: str, coords: Any, expected: bool) -> None:
    entity = located({"type": "Polygon", "coordinates": AREA})
    assert match_geo(geo("contains", geometry, coords), entity) is expected


@pytest.mark.parametrize("geometry, coords, expected", [
    ("Polygon", [square(1.5, 1.5, 1.0)], True),   # partial overlap
    ("Polygon", [square(1.2, 1.2, 0.2)], False),  # inside: not an overlap
    ("Polygon", [square(5, 5, 1)], False),
    ("MultiPolygon", [[square(1.5, 1.5, 1.0)], [square(5, 5, 1)]], True),
])
def test_overlaps(geometry: str, coords: Any, expected: bool) -> None:
    entity = located({"type": "Polygon", "coordinates": AREA})
    assert match_geo(geo("overlaps", geometry, coords), entity) is expected


def test_near_measures_to_the_nearest_point_of_the_geometry() -> None:
    line = located({"type": "LineString", "coordinates": [[0.0, 0.0], [0.0, 1.0]]})
    # 0.01 degree of longitude at the equator is about 1112 m from the line's middle
    assert match_geo(geo("near;maxDistance==1200", "Point", [0.01, 0.5]), line)
    assert not match_geo(geo("near;maxDistance==1000", "Point", [0.01, 0.5]), line)
    assert match_geo(geo("near;minDistance==1000", "Point", [0.01, 0.5]), line)
    inside = located({"type": "Polygon", "coordinates": AREA})
    assert match_geo(geo("near;maxDistance==0", "Point", [1.5, 1.5]), inside)


def test_haversine_and_distance() -> None:
    assert haversine(0, 0, 0, 1) == pytest.approx(111195, rel=1e-4)
    assert haversine(-3.7038, 40.4168, 2.1734, 41.3851) == pytest.approx(505_000, rel=0.01)  # Madrid-Barcelona
    from shapely.geometry import Point

    assert distance_m(Point(0, 0), Point(0, 0)) == 0


def test_geoproperty_other_than_location_and_non_geo_instances() -> None:
    entity = located({"type": "Point", "coordinates": [1.5, 1.5]}, B + "place")
    assert not match_geo(geo("within", "Polygon", AREA), entity)
    assert match_geo(geo("within", "Polygon", AREA, "place"), entity)
    not_geo = {"id": "x", "attrs": {LOC: [prop({"type": "Point", "coordinates": [1.5, 1.5]})]}}
    assert not match_geo(geo("within", "Polygon", AREA), not_geo)
    broken = located({"type": "Polygon", "coordinates": [[1, 2]]})
    assert not match_geo(geo("intersects", "Polygon", AREA), broken)


def test_any_geo_instance_may_match() -> None:
    entity = located({"type": "Point", "coordinates": [20, 20]})
    entity["attrs"][LOC].append({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1.5, 1.5]},
                                 "datasetId": "urn:d"})
    assert match_geo(geo("within", "Polygon", AREA), entity)


# --------------------------------------------------------------------------------------- entity


@pytest.mark.parametrize("query, expected", [
    (EntityQuery(), True),
    (EntityQuery(ids=["urn:ngsi-ld:Building:001", "urn:x"]), True),
    (EntityQuery(ids=["urn:x"]), False),
    (EntityQuery(ids=[]), False),
    (EntityQuery(id_pattern="urn:ngsi-ld:Building:.*"), True),
    (EntityQuery(id_pattern="urn:ngsi-ld:Building"), False),  # whole id
    (EntityQuery(id_pattern="Building:001"), False),
    (EntityQuery(attrs=[B + "nope", B + "name"]), True),
    (EntityQuery(attrs=[B + "nope"]), False),
    (EntityQuery(types=parse_type_expr("Asset", expand), q=parse_q("flag==true", expand),
                 scope_q=parse_scope_q("/Berlin")), True),
    (EntityQuery(types=parse_type_expr("Asset", expand), q=parse_q("flag==false", expand)), False),
    # several selectors: one met whole is enough; a selector's id and type must hold together
    (EntityQuery(any_of=[EntityQuery(ids=["urn:x"]),
                         EntityQuery(id_pattern=".*:001", types=parse_type_expr("Asset", expand))]), True),
    (EntityQuery(any_of=[EntityQuery(ids=["urn:ngsi-ld:Building:001"], types=parse_type_expr("Room", expand)),
                         EntityQuery(id_pattern=".*:002", types=parse_type_expr("Building", expand))]), False),
    (EntityQuery(any_of=[EntityQuery(types=parse_type_expr("Room", expand))],
                 ids=["urn:ngsi-ld:Building:001"]), False),
    (EntityQuery(any_of=[EntityQuery()], q=parse_q("flag==false", expand)), False),
    (EntityQuery(any_of=[]), False),
])
def test_match_entity(query: EntityQuery, expected: bool) -> None:
    assert match_entity(query, ENTITY) is expected
