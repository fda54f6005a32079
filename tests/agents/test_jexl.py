"""JEXL evaluator: vectors re-typed from iotagent-node-lib ``test/unit/expressions/jexlExpression-test.js``."""

from __future__ import annotations

import re

import pytest

from agents import jexl
from agents.errors import InvalidExpression
from agents.jexl import apply_expression, compile_expression, evaluate, is_valid_expression

SCOPE = {
    "value": 6,
    "other": 3,
    "theString": "12.6,   -19.4",
    "spaces": "5 a b c d 5",
    "big": 2000,
    "number": 145,
    "number2": 155,
    "number3inside": 200,
    "floatNumber": 1.2,
    "array": [1, 2],
    "object": {"name": "John", "surname": "Doe"},
    "invalidJson": '{"name": "John", surname": "Doe"}',
    "invalidDate": "invalid-date",
    "emptyArray": [],
    "invalidHex": "zz",
    "nonNumeric": "not-a-number",
}

ARITHMETIC = [
    ("5 * value", 30),
    ("(6 + value) * 3", 36),
    ("value / 12 + 1", 1.5),
    ("(5 + 2) * (value + 7)", 91),
    ("(5 - other) * (value + 7)", 26),
    ("3 * 5.2", 15.6),
    ("value * 5.2", 31.2),
]


@pytest.mark.parametrize(("expr", "expected"), ARITHMETIC)
def test_arithmetic_vectors(expr: str, expected: float) -> None:
    assert evaluate(expr, SCOPE) == pytest.approx(expected, abs=1e-6)


LIB_VECTORS = [
    ('"Pruebas" + "DeStrings"', "PruebasDeStrings"),
    ('theString|substr(theString|indexOf(",") + 1, theString|length)|trim', "-19.4"),
    ("number + number2 + number3inside", 500),
    ("floatNumber * 2", 2.4),
    ('floatNumber +"echo"', "1.2echo"),
    ("((number) * (number2))", 22475),
    ("spaces|trim", "5 a b c d 5"),
    ('"Pruebas " + "De Strings"', "Pruebas De Strings"),
    ("'Pruebas ' + 'De Strings'", "Pruebas De Strings"),
    ('"number " + 5', "number 5"),
    ('(24 * big)|indexOf("80")', 1),
    ('"AABBCC"|slice(2,4)', "BB"),
    ("value == 6? true : false", True),
    ('value == 6 && spaces|indexOf("a")>0', True),
    ("array|concatarr(array)", [1, 2, 1, 2]),
    ('array|joinarrtostr("_")', "1_2"),
    ("array[1]+1", 3),
    ("object.name", "John"),
    ('"{\\"name\\":\\"John\\",\\"surname\\":\\"Doe\\"}"|jsonparse', {"name": "John", "surname": "Doe"}),
    ('{name: "John",surname: "Doe"}|jsonstringify', '{"name":"John","surname":"Doe"}'),
    ('{type:"Point",coordinates: [value,other]}', {"type": "Point", "coordinates": [6, 3]}),
    ('object["nothing"]', None),
    ('object["nothing"]?object["nothing"]:null', None),
    # invalid inputs give null, not an error
    ("invalidJson|jsonparse", None),
    ("invalidDate|toisodate", None),
    ("invalidDate|timeoffset", None),
    ("emptyArray|addreduce", None),
    ("nonNumeric|parseint", None),
    ("nonNumeric|parsefloat", None),
    ("invalidHex|hextostring", None),
    ('theString|replaceregexp("[a-z", "replacement")', None),
    ('theString|replaceallregexp("[a-z", "replacement")', None),
    ("null|tostring", None),
    ("undefined|tostring", None),
    ('"%%%invalidURI"|urldecode', None),
    ('"notANumber"|tofixed(2)', None),
    ('"123.456"|tofixed("invalid")', None),
    ('"invalidDate"|gettime', None),
    ("null|gettime", None),
    ('"test"|hash', "00364492"),
    ('""|hash', "00000000"),
]


@pytest.mark.parametrize(("expr", "expected"), LIB_VECTORS)
def test_lib_vectors(expr: str, expected: object) -> None:
    assert evaluate(expr, SCOPE) == expected


def test_ngsi_operator_object_key() -> None:
    assert evaluate("{$inc:ina-outa}", {"ina": 34, "outa": 4}) == {"$inc": 30}


def test_hash_is_stable_uppercase_hex() -> None:
    first = evaluate("value|hash", SCOPE)
    assert re.fullmatch(r"[0-9A-F]{8}", first)
    assert evaluate("value|hash", SCOPE) == first
    assert re.fullmatch(r"[0-9A-F]{8}", evaluate("number|hash", SCOPE))


def test_parse_error_is_invalid_expression() -> None:
    with pytest.raises(InvalidExpression) as info:
        evaluate('"numb+sd ññ ((', SCOPE)
    assert info.value.to_body()["name"] == "INVALID_EXPRESSION"
    assert info.value.status == 400


IDIOMS = [
    ("level / 100", {"level": 50}, 0.5),
    ("5 * value", {"value": 2}, 10),
    ("{coordinates:[longitude,latitude], type:'Point'}", {"longitude": 1.5, "latitude": 2},
     {"coordinates": [1.5, 2], "type": "Point"}),
    ("location|split(', ')[1]|parsefloat()", {"location": "40.4, -3.7"}, -3.7),
    ("location|split(', ')[0]|parsefloat", {"location": "40.4, -3.7"}, 40.4),
    ("ts|toisodate", {"ts": 1438760101468}, "2015-08-05T07:35:01.468Z"),
    ("ts|toisodate", {"ts": "2015-08-05T09:35:01.468+02:00"}, "2015-08-05T07:35:01.468Z"),
    ("variable|trim|replacestr('hello','hi')", {"variable": "  hello world hello "}, "hi world hello"),
    ("a|substr(0,2)", {"a": "abcdef"}, "ab"),
    ("t?t*2:null", {"t": 21}, 42),
    ("t?t*2:null", {}, None),
    ("id + '__' + sn", {"id": "dev1", "sn": "A7"}, "dev1__A7"),
    ("'https://host/' + service + subservice + '/' + id", {"service": "s", "subservice": "/ss", "id": "d"},
     "https://host/s/ss/d"),
    ("v|mapper([1,2,3],['low','mid','high'])", {"v": 2}, "mid"),
    ("v|mapper([1,2,3],['low','mid','high'])", {"v": 9}, None),
    ("v|thmapper([10,20,30],['cold','mild','hot'])", {"v": 15}, "mild"),
    ("v|thmapper([10,20,30],['cold','mild','hot'])", {"v": 99}, None),
    ("v|bitwisemask(0xF0,'&',4)", {"v": 0xAB}, None),  # hex literals are not JEXL
    ("v|bitwisemask(240,'&',4)", {"v": 171}, 10),
    ("v|bitwisemask(1,'|',0)", {"v": "4"}, 5),
    ("v|hextostring", {"v": "48656c6c6f"}, "Hello"),
    ("v|valuePicker(true)", {"v": {"a": True, "b": False, "c": True}}, ["a", "c"]),
    ("v|valuePickerMulti([1,2])", {"v": {"a": 1, "b": 3, "c": 2}}, ["a", "c"]),
    ("v|round", {"v": 2.5}, 3),
    ("v|round", {"v": -2.5}, -2),
    ("v|floor", {"v": 2.7}, 2),
    ("v|ceil", {"v": 2.1}, 3),
    ("v|tofixed(1)", {"v": 2.25}, "2.3"),
    ("v|tofixed(0)", {"v": 2.5}, "3"),
    ("v|tolowercase", {"v": "ABC"}, "abc"),
    ("v|touppercase", {"v": "abc"}, "ABC"),
    ("v|parseint", {"v": "42.9px"}, 42),
    ("v|parsefloat", {"v": "  3.5e2x"}, 350),
    ("v|typeof", {"v": [1]}, "object"),
    ("v|typeof", {}, "undefined"),
    ("v|isarray", {"v": [1]}, True),
    ("v|isnan", {"v": "x"}, True),
    ("v|tostring", {"v": 1.5}, "1.5"),
    ("v|urlencode", {"v": "a b/ñ?x=1"}, "a%20b/%C3%B1?x=1"),
    ("v|urldecode", {"v": "a%20b%2F%C3%B1"}, "a b%2Fñ"),
    ("v|replaceregexp('(\\\\d+)', '<$1>')", {"v": "a1b22"}, "a<1>b22"),
    ("v|replaceallregexp('\\\\d', '#')", {"v": "a1b22"}, "a#b##"),
    ("v|replaceallstr('a', 'b')", {"v": "banana"}, "bbnbnb"),
    ("v|split('')", {"v": "ab"}, ["a", "b"]),
    ("v|slice(-2)", {"v": [1, 2, 3]}, [2, 3]),
    ("v|addreduce", {"v": [1, 2, 3]}, 6),
    ("v|lengtharray", {"v": [1, 2, 3]}, 3),
    ("v|length", {"v": "ab"}, 2),
    ("v|addset(3)", {"v": [1, 2, 2]}, [1, 2, 3]),
    ("v|removeset(2)", {"v": [1, 2, 2]}, [1]),
    ("v|jsonstringify", {"v": {"a": [1, 2.5, None]}}, '{"a":[1,2.5,null]}'),
    ("v|gettime", {"v": "1970-01-01T00:00:01Z"}, 1000),
    ("v|toisostring", {"v": 0}, "1970-01-01T00:00:00.000Z"),
    ("arr[.v > 1]", {"arr": [{"v": 1}, {"v": 2}]}, [{"v": 2}]),
    ("arr[.v > 1].v", {"arr": [{"v": 1}, {"v": 2}]}, 2),
    ("'b' in arr", {"arr": ["a", "b"]}, True),
    ("'ell' in s", {"s": "hello"}, True),
    ("a ?: 'fallback'", {}, "fallback"),
    ("a || b && c", {"a": 1, "b": 0, "c": 2}, 2),  # jexl: || and && share a precedence, left-assoc
    ("!a|length", {"a": ""}, True),  # the pipe binds tighter than !
    ("2 ^ 3 ^ 2", {}, 64),  # left-associative in jexl
    ("7 // 2", {}, 3),
    ("-7 % 3", {}, -1),
    ("1 / 0 > 5", {}, True),
    ("'5' == 5", {}, True),
    ("'10' < '9'", {}, True),
    ("10 < '9'", {}, False),
    ("s.length", {"s": "abc"}, 3),
    ("null == undefined", {}, True),
]


@pytest.mark.parametrize(("expr", "ctx", "expected"), IDIOMS)
def test_idioms_and_transforms(expr: str, ctx: dict, expected: object) -> None:
    if "0xF0" in expr:
        with pytest.raises(InvalidExpression):
            evaluate(expr, ctx)
        return
    assert evaluate(expr, ctx) == expected


@pytest.mark.parametrize(
    "expr",
    ["missing * 2", "missing + 'x'", "'x' + missing", "missing|trim", "missing.a.b", "missing[0]",
     "missing|split(',')[1]|parsefloat()", "-missing", "a / b"],
)
def test_absent_variables_evaluate_to_none(expr: str) -> None:
    assert evaluate(expr, {}) is None


def test_results_use_javascript_numbers() -> None:
    assert evaluate("10 / 2", {}) == 5 and isinstance(evaluate("10 / 2", {}), int)
    assert evaluate("'n' + 2.50", {}) == "n2.5"
    assert evaluate("'v' + x", {"x": 1e21}) == "v1e+21"
    assert evaluate("'v' + x", {"x": 0.0000001}) == "v1e-7"
    assert evaluate("'v' + x", {"x": True}) == "vtrue"
    assert evaluate("'v' + x", {"x": [1, None, 2]}) == "v1,,2"
    assert evaluate("1 / 0", {}) is None  # Infinity cannot be sent


@pytest.mark.parametrize(
    "expr",
    ["", "a +", "a ? b", "(a", "[1, 2", "{a 1}", "a | ", "a|nosuchtransform", "nosuchfunction(1)",
     "a ! b", "'unterminated", "a.5", "#", "a[]"],
)
def test_invalid_expressions(expr: str) -> None:
    assert not is_valid_expression(expr)
    with pytest.raises(InvalidExpression):
        evaluate(expr, {"a": 1})


@pytest.mark.parametrize(
    ("expr", "ctx"),
    [("v|split(',')", {"v": 5}), ("v|replacestr('a','b')", {"v": 5}), ("v|joinarrtostr(',')", {"v": "x"}),
     ("v|slice(1)", {"v": 5}), ("v|valuePicker(1)", {"v": None}), ("v|lengtharray", {"v": None})],
)
def test_transform_type_errors_raise_invalid_expression(expr: str, ctx: dict) -> None:
    with pytest.raises(InvalidExpression):
        evaluate(expr, ctx)


def test_compile_is_cached() -> None:
    assert compile_expression("a + 1") is compile_expression("a + 1")
    assert compile_expression("a + 1").evaluate({"a": 1}) == 2


def test_apply_expression_ignores_null_and_nan_context_entries() -> None:
    assert apply_expression("a ? a : 'none'", {"a": None}) == "none"
    assert apply_expression("a ? a : 'none'", {"a": float("nan")}) == "none"


def test_register_extra_transform() -> None:
    jexl.register_transform("double", lambda v: v * 2)
    try:
        assert evaluate("x|double", {"x": 4}) == 8
        assert evaluate("x|double", {}) is None
    finally:
        jexl._TRANSFORMS.pop("double")
        compile_expression.cache_clear()


def test_transform_set_covers_the_lib_map() -> None:
    expected = {
        "jsonparse", "jsonstringify", "indexOf", "length", "trim", "substr", "addreduce", "lengtharray",
        "typeof", "isarray", "isnan", "parseint", "parsefloat", "toisodate", "timeoffset", "tostring",
        "urlencode", "urldecode", "replacestr", "replaceregexp", "replaceallstr", "replaceallregexp", "split",
        "joinarrtostr", "concatarr", "mapper", "thmapper", "bitwisemask", "slice", "addset", "removeset",
        "touppercase", "tolowercase", "round", "floor", "ceil", "tofixed", "gettime", "toisostring", "now",
        "hextostring", "valuePicker", "valuePickerMulti", "hash",
    }
    assert expected <= set(jexl.transform_names())


def test_now_is_epoch_milliseconds() -> None:
    assert evaluate("0|now", {}) > 1_600_000_000_000
