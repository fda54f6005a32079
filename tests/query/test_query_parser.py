"""Parser tests: the whole q grammar, type expressions, scopeQ, geoQ and error positions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.ast import (
    DEFAULT_GEOPROPERTY,
    And,
    AttrPath,
    Comparison,
    Exists,
    GeoQuery,
    Or,
    Range,
    ScopeTerm,
    TypeName,
    Value,
    ValueList,
)
from broker.query.parser import parse_geoq, parse_q, parse_q_text, parse_scope_q, parse_type_expr

B = "https://example.org/"


def expand(name: str) -> str:
    return B + name


def q(text: str):  # noqa: ANN201 - any QNode
    return parse_q(text, expand)


def path(attr: str, *subs: str, member: str | None = None, keys: tuple[str, ...] = ()) -> AttrPath:
    return AttrPath(B + attr, tuple(B + s for s in subs), member, keys)


# ----------------------------------------------------------------------------------------- q terms


@pytest.mark.parametrize("op", ["==", "!=", ">", ">=", "<", "<="])
def test_every_comparison_operator(op: str) -> None:
    assert q(f"temp{op}20") == Comparison(path("temp"), op, Value("number", 20))  # type: ignore[arg-type]


@pytest.mark.parametrize("text, value", [
    ("20", Value("number", 20)),
    ("-20", Value("number", -20)),
    ("20.5", Value("number", 20.5)),
    ("-1.5e3", Value("number", -1500.0)),
    ("2E2", Value("number", 200.0)),
    ("true", Value("boolean", True)),
    ("false", Value("boolean", False)),
    ('"text"', Value("string", "text")),
    ('"true"', Value("string", "true")),
    ('"20"', Value("string", "20")),
    ('"a;b|c(d)e,f..g"', Value("string", "a;b|c(d)e,f..g")),
    (r'"say \"hi\" \\ \u00e9\n"', Value("string", 'say "hi" \\ é\n')),
    ("plain", Value("string", "plain")),
    ("urn:ngsi-ld:Building:001", Value("uri", "urn:ngsi-ld:Building:001")),
    ("https://example.org/x.y", Value("uri", "https://example.org/x.y")),
    ("2018-12-04T12:00:00Z", Value("datetime", "2018-12-04T12:00:00Z")),
    ("2018-12-04T12:00:00.00Z", Value("datetime", "2018-12-04T12:00:00.00Z")),
    ("2018-12-04T12:00:00+01:00", Value("datetime", "2018-12-04T12:00:00+01:00")),
    ("2018-12-04", Value("date", "2018-12-04")),
    ("12:00:00", Value("time", "12:00:00")),
])
def test_value_kinds(text: str, value: Value) -> None:
    assert q("a==" + text) == Comparison(path("a"), "==", value)


def test_ranges_of_numbers_strings_and_datetimes() -> None:
    assert q("a==10..20").operand == Range(Value("number", 10), Value("number", 20))  # type: ignore[union-attr]
    assert q("a==-1.5..2").operand == Range(Value("number", -1.5), Value("number", 2))  # type: ignore[union-attr]
    assert q('a=="a".."z"').operand == Range(Value("string", "a"), Value("string", "z"))  # type: ignore[union-attr]
    assert q("a!=2018-12-04T12:00:00.00Z..2018-12-05T00:00:00Z").operand == Range(  # type: ignore[union-attr]
        Value("datetime", "2018-12-04T12:00:00.00Z"), Value("datetime", "2018-12-05T00:00:00Z"))


def test_value_lists_after_equality_operators() -> None:
    assert q('a==1,"x",true,urn:a:b').operand == ValueList(  # type: ignore[union-attr]
        (Value("number", 1), Value("string", "x"), Value("boolean", True), Value("uri", "urn:a:b")))
    assert q("a!=1,2").op == "!="  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["a>1,2", "a<1..2", "a==1..", "a==..1", "a==1...2"])
def test_lists_and_ranges_only_after_equality(text: str) -> None:
    with pytest.raises(BadRequestData):
        q(text)


def test_range_bounds_must_have_one_kind() -> None:
    with pytest.raises(BadRequestData, match="position 3"):
        q('a==1.."z"')
    with pytest.raises(BadRequestData):
        q("a==true..false")


@pytest.mark.parametrize("text, regex", [
    ("a~=^Bar.*", "^Bar.*"),
    ("a~=foo(bar|baz)+", "foo(bar|baz)+"),
    ("a~=(a(b(c)))x", "(a(b(c)))x"),
    (r"a~=x\)y", r"x\)y"),
    (r'a~="(?i)x;y|\d"', r"(?i)x;y|\d"),
    (r'a~="q\"t"', 'q"t'),
    ("a!~=^x$", "^x$"),
])
def test_regex_operands(text: str, regex: str) -> None:
    node = q(text)
    assert isinstance(node, Comparison) and node.operand == Value("string", regex)


def test_unquoted_regex_ends_at_the_term() -> None:
    assert q("a~=x(y|z);b|c~=w") == Or((
        And((Comparison(path("a"), "~=", Value("string", "x(y|z)")), Exists(path("b")))),
        Comparison(path("c"), "~=", Value("string", "w"))))
    assert q("(a~=x(y))") == Comparison(path("a"), "~=", Value("string", "x(y)"))


def test_invalid_regex_names_its_position() -> None:
    with pytest.raises(BadRequestData, match="position 8"):
        q('b==1;a~="("')
    with pytest.raises(BadRequestData, match="longer than 512"):
        q('a~="' + "x" * 513 + '"')


# ------------------------------------------------------------------------------------ attribute paths


def test_paths_with_sub_attributes_members_and_compound_keys() -> None:
    assert q("a") == Exists(path("a"))
    assert q("a.s.t>1").path == path("a", "s", "t")  # type: ignore[union-attr]
    assert q("a[k1][k.2]==1").path == path("a", keys=("k1", "k.2"))  # type: ignore[union-attr]
    assert q("a.s[k]==1").path == path("a", "s", keys=("k",))  # type: ignore[union-attr]
    for member in ("observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"):
        assert q(f"a.{member}==1").path == path("a", member=member)  # type: ignore[union-attr]
    assert q("a.s.observedAt==1").path == path("a", "s", member="observedAt")  # type: ignore[union-attr]


def test_compound_keys_are_not_expanded_but_names_are() -> None:
    seen: list[str] = []

    def recording(name: str) -> str:
        seen.append(name)
        return "urn:x:" + name

    node = parse_q("temp.sub.observedAt>1;addr[city][zip]==1", recording)
    assert seen == ["temp", "sub", "addr"]
    assert node.items[1].path == AttrPath("urn:x:addr", (), None, ("city", "zip"))  # type: ignore[union-attr]


def test_attribute_name_characters_and_full_iris() -> None:
    assert q("ngsi-ld:x_1/y#z@w>1").path == AttrPath(B + "ngsi-ld:x_1/y#z@w")  # type: ignore[union-attr]
    assert q("https://ex.org/v1/temp>1").path == AttrPath("https://ex.org/v1/temp")  # type: ignore[union-attr]
    assert q("<https://ex.org/temp>.observedAt>1").path == AttrPath(  # type: ignore[union-attr]
        "https://ex.org/temp", member="observedAt")


@pytest.mark.parametrize("text, pos", [
    ("a.observedAt.s==1", 13),
    ("a.unitCode[k]==1", 2),
])
def test_members_end_the_path(text: str, pos: int) -> None:
    with pytest.raises(BadRequestData, match=f"position {pos}"):
        q(text)


# ------------------------------------------------------------------------------------------- logic


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    a, b, c = Exists(path("a")), Exists(path("b")), Exists(path("c"))
    assert q("a;b|c") == Or((And((a, b)), c))
    assert q("a|b;c") == Or((a, And((b, c))))
    assert q("a;(b|c)") == And((a, Or((b, c))))
    assert q("((a))") == a
    assert q("a;b;c") == q("(a;b);c") == And((a, b, c))


@pytest.mark.parametrize("text, pos", [
    ("", 0),
    ("a==", 3),
    ("a=1", 1),
    ("(a==1", 5),
    ("a==1)", 4),
    ("a==1;;b", 5),
    ("a==1|", 5),
    ("a== 1", 3),
    ("a>>1", 2),
    ("a==x=y", 4),
    ("a==!x", 3),
    ('a=="open', 3),
    ("a[k==1", 6),
    ("temp>20;(name==x|", 17),
])
def test_syntax_errors_name_the_position(text: str, pos: int) -> None:
    with pytest.raises(BadRequestData) as info:
        q(text)
    assert re.search(rf"Invalid q at position {pos}\b", info.value.detail), info.value.detail


def test_parse_cache_is_keyed_by_context() -> None:
    one = parse_q("a==1", expand, cache_key="ctx1")
    assert parse_q("a==1", expand, cache_key="ctx1") is one
    other = parse_q("a==1", lambda n: "urn:" + n, cache_key="ctx2")
    assert other.path.attr == "urn:a"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- types and scopeQ


def test_type_expressions() -> None:
    t = {n: TypeName(B + n) for n in "ABCD"}
    assert parse_type_expr("A", expand) == t["A"]
    assert parse_type_expr("A,B", expand) == parse_type_expr("A|B", expand) == Or((t["A"], t["B"]))
    assert parse_type_expr("A;B", expand) == And((t["A"], t["B"]))
    assert parse_type_expr("(A;B)|C,D", expand) == Or((And((t["A"], t["B"])), t["C"], t["D"]))
    assert parse_type_expr("A;(B,C)", expand) == And((t["A"], Or((t["B"], t["C"]))))
    assert parse_type_expr("https://x.org/T", lambda s: s) == TypeName("https://x.org/T")


@pytest.mark.parametrize("text, pos", [("A,", 2), ("(A", 2), ("A;;B", 2), ("", 0), ("A)", 1)])
def test_type_expression_errors(text: str, pos: int) -> None:
    with pytest.raises(BadRequestData, match=f"position {pos}"):
        parse_type_expr(text, expand)


def test_scope_queries() -> None:
    assert parse_scope_q("/Madrid/Gardens") == ScopeTerm(("Madrid", "Gardens"))
    assert parse_scope_q("/Madrid/#") == ScopeTerm(("Madrid",), True)
    assert parse_scope_q("/#") == ScopeTerm((), True)
    assert parse_scope_q("/Madrid/+") == ScopeTerm(("Madrid", "+"))
    assert parse_scope_q("/a,/b|/c") == Or((ScopeTerm(("a",)), ScopeTerm(("b",)), ScopeTerm(("c",))))
    assert parse_scope_q("/a;(/b,/c/#)") == And((ScopeTerm(("a",)), Or((ScopeTerm(("b",)), ScopeTerm(("c",), True)))))
    assert str(ScopeTerm(("Madrid",), True)) == "/Madrid/#"


@pytest.mark.parametrize("text, pos", [("Madrid", 0), ("/a/#/b", 4), ("/a//b", 2), ("/a,", 3), ("/", 0)])
def test_scope_errors(text: str, pos: int) -> None:
    with pytest.raises(BadRequestData, match=f"scopeQ at position {pos}"):
        parse_scope_q(text)


# ------------------------------------------------------------------------------------------- geoQ

SQUARE = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]


def test_geoq_from_url_text_and_from_json_body() -> None:
    from_url = parse_geoq("near;maxDistance==2000", "Point", "[-8.5,41.2]", None, expand)
    assert from_url == GeoQuery("near", "Point", (-8.5, 41.2), DEFAULT_GEOPROPERTY, 2000.0, None)
    assert parse_geoq("near;maxDistance==2000", "Point", [-8.5, 41.2], None, expand) == from_url
    assert parse_geoq("near;minDistance==5", "Point", "-8.5,41.2", None, expand).min_distance == 5.0
    within = parse_geoq("within", "Polygon", SQUARE, "place", expand)
    assert within.coordinates == (((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)),)
    assert within.geoproperty == B + "place"
    hash(within)


@pytest.mark.parametrize("geometry, coords", [
    ("Point", [1, 2]),
    ("MultiPoint", [[1, 2], [3, 4]]),
    ("LineString", [[1, 2], [3, 4]]),
    ("MultiLineString", [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
    ("Polygon", SQUARE),
    ("MultiPolygon", [SQUARE, [[[2, 2], [3, 2], [3, 3], [2, 2]]]]),
])
@pytest.mark.parametrize("rel", ["within", "contains", "intersects", "disjoint", "overlaps", "equals"])
def test_every_relation_with_every_geometry(rel: str, geometry: str, coords: list) -> None:
    assert parse_geoq(rel, geometry, coords, None, expand).georel == rel


@pytest.mark.parametrize("georel, geometry, coords", [
    ("near", "Point", [1, 2]),
    ("near;maxDistance=1", "Point", [1, 2]),
    ("near;distance==1", "Point", [1, 2]),
    ("near;maxDistance==-1", "Point", [1, 2]),
    ("near;maxDistance==1", "Polygon", SQUARE),
    ("crosses", "Point", [1, 2]),
    ("within", "Circle", [1, 2]),
    ("within", "Point", "[1,"),
    ("within", "Point", [1]),
    ("within", "Point", [200, 0]),
    ("within", "Point", [0, 91]),
    ("within", "Point", ["1", 2]),
    ("within", "Point", [True, 2]),
    ("within", "Polygon", [0, 0]),
    ("within", "Polygon", [[[0, 0], [1, 0], [0, 0]]]),
    ("within", "LineString", [[1, 2]]),
    ("within", "Point", {"x": 1}),
])
def test_invalid_geoq(georel: str, geometry: str, coords: object) -> None:
    with pytest.raises(BadRequestData):
        parse_geoq(georel, geometry, coords, None, expand)  # type: ignore[arg-type]


@pytest.mark.parametrize(("geometry", "coords"), [
    ("Polygon", [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]),  # self-intersecting bow tie
    ("MultiPolygon", [SQUARE, SQUARE]),  # overlapping members
])
def test_repairable_geometries_are_accepted(geometry: str, coords: object) -> None:
    """Slightly invalid polygons (the ETSI suite sends some) are repaired, not refused."""
    from broker.query.evaluator import match_geo

    geo = parse_geoq("intersects", geometry, coords, None, expand)  # type: ignore[arg-type]
    inside = {"id": "urn:x:1", "type": ["T"], "attrs": {"https://uri.etsi.org/ngsi-ld/location": [
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [0.9, 0.5]}}]}}
    assert match_geo(geo, inside)


def test_georel_error_names_the_position() -> None:
    with pytest.raises(BadRequestData, match="georel at position 5"):
        parse_geoq("near;max==1", "Point", [1, 2], None, expand)


@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a*)*", r"(\w)\1", "((ab)+c)*"])
def test_backtracking_regexes_are_refused(pattern: str) -> None:
    """Exponential-time patterns would stall the event loop: they are a 400, not a hang."""
    from broker.query.evaluator import match_q

    with pytest.raises(BadRequestData, match="exponential"):
        node = parse_q(f'name~="{pattern}"', expand)
        match_q(node, {"id": "urn:x:1", "type": ["T"], "attrs": {expand("name"): [
            {"type": "Property", "value": "a" * 40 + "!"}]}})


def test_equals_holds_for_the_same_slightly_invalid_polygon() -> None:
    """ETSI 019_11_01: an entity whose polygon self-intersects equals a query with the same one."""
    from broker.query.evaluator import match_geo

    bow = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
    geo = parse_geoq("equals", "Polygon", bow, None, expand)
    entity = {"id": "urn:x:1", "type": ["T"], "attrs": {"https://uri.etsi.org/ngsi-ld/location": [
        {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": bow}}]}}
    assert match_geo(geo, entity)


# ---------------------------------------------------------------------------- term-by-term parsing

_PLAIN_TERMS = st.builds(
    lambda n, o, v: f"{n}{o}{v}",
    st.sampled_from(["a", "temp", "servesDataset", "x_1", "é"]),
    st.sampled_from(["==", "!=", ">", ">=", "<", "<="]),
    st.sampled_from(["5", "-1.5", "1e3", "true", "abc", '"x y"', '"urn:ngsi-ld:R:1"', "1..5", '"a".."b"',
                     "2023-04-01T10:00:00Z", "2023-04-01T10:00:00.123+01:00", "1..", "..", "1e999", "urn:x:y",
                     "<5", "a.b", "-", "1.2.3"]))
_ODD_TERMS = st.builds(
    lambda n, o, v: f"{n}{o}{v}",
    st.sampled_from(["a", "a.b", "a[k]", "(a", "", "temp"]),
    st.sampled_from(["==", ">", "~=", "=", ">>", ""]),
    st.sampled_from(["5", '"a;b"', '"esc\\"q"', "1,2,3", "", '"', "a b", "[1]", "x)"]))
_TERMS = st.one_of(_PLAIN_TERMS, _PLAIN_TERMS, _PLAIN_TERMS, _ODD_TERMS)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TERMS, min_size=2, max_size=4), st.sampled_from([";", ";", ";", "|", ";;"]))
def test_term_by_term_parse_equals_the_whole_text_parse(terms: list[str], sep: str) -> None:
    """parse_q's shortcut for conjunctions of plain comparisons gives the grammar's answer, or its
    error with the same position, for every text."""
    text = sep.join(terms)
    try:
        whole = parse_q_text(text, expand)
    except BadRequestData as exc:
        with pytest.raises(BadRequestData) as info:
            parse_q(text, expand, cache_key=object())
        assert info.value.detail == exc.detail
        return
    assert parse_q(text, expand, cache_key=object()) == whole
