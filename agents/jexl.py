"""JEXL for IoT agent expressions, with JavaScript value semantics and the iotagent-node-lib transform set.

Why not pyjexl: pyjexl 0.3.0 rejects ``x|f()`` (empty argument lists, used by the lib's own docs as
``location|split(', ')[1]|parsefloat()``) and evaluates with Python semantics (``'a' + 1`` raises,
``10 / 4`` on ints, no ``undefined``), while device expressions are written against npm ``jexl`` 2.3 running
on JavaScript. So this module re-implements that grammar (same precedences: ``|| &&`` 10, comparisons and
``in`` 20, ``+ -`` 30, ``* / //`` 40, ``% ^`` 50; transforms bind to the operand before the pipe; a ternary
takes the whole expression before ``?`` as its test; ``a ?: b``; object/array literals; filters ``a[.x > 1]``)
and JavaScript coercions (string concatenation, loose ``==``, ``NaN``), and re-implements every transform of
``lib/jexlTranformsMap.js`` in Python.

Absent variables: a variable missing from the context is ``undefined``. Arithmetic, concatenation and
transforms on ``undefined`` stay ``undefined`` (JavaScript would give ``NaN`` or ``"undefined..."``), and a
final ``undefined``/``NaN``/``Infinity`` is returned as ``None``, which the agents treat as "skip". ``null``
is an identifier as in jexl (so it is ``undefined`` unless the context defines it).

Expressions are compiled once to Python closures and kept in an LRU cache.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from agents.errors import InvalidExpression


class _Undefined:
    """JavaScript ``undefined``: distinct from ``None`` (``null``) while evaluating."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

# --------------------------------------------------------------------------------------------------
# JavaScript value helpers
# --------------------------------------------------------------------------------------------------

_MAX_SAFE = 2**53


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _norm(x: Any) -> Any:
    """Integral floats become ints so results serialise as JavaScript would (``5``, not ``5.0``)."""
    if isinstance(x, float) and math.isfinite(x) and x.is_integer() and abs(x) < _MAX_SAFE:
        return int(x)
    return x


def truthy(v: Any) -> bool:
    """JavaScript truthiness: ``[]`` and ``{}`` are true, ``NaN`` and ``""`` false."""
    if v is None or v is UNDEFINED or v is False:
        return False
    if is_number(v):
        return v != 0 and v == v
    if isinstance(v, str):
        return v != ""
    return True


def number_to_string(x: int | float) -> str:
    """``Number.prototype.toString()`` for finite and special values."""
    if isinstance(x, int):
        return str(x)
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    sign = "-" if x < 0 else ""
    _, digits, exp = Decimal(repr(abs(x))).as_tuple()
    s = "".join(map(str, digits)).rstrip("0") or "0"
    n = int(exp) + len(digits)
    k = len(s)
    if k <= n <= 21:
        out = s + "0" * (n - k)
    elif 0 < n <= 21:
        out = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + s
    else:
        e = n - 1
        mant = s if k == 1 else s[0] + "." + s[1:]
        out = f"{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + out


def to_js_string(v: Any) -> str:
    """``String(v)``."""
    if v is UNDEFINED:
        return "undefined"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if is_number(v):
        return number_to_string(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple):
        return ",".join("" if e is None or e is UNDEFINED else to_js_string(e) for e in v)
    if isinstance(v, dict):
        return "[object Object]"
    return str(v)


_NUM_LITERAL = re.compile(r"^[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$")


def to_number(v: Any) -> float | int:
    """``Number(v)``."""
    if v is UNDEFINED:
        return math.nan
    if v is None or v is False:
        return 0
    if v is True:
        return 1
    if is_number(v):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return 0
        if _NUM_LITERAL.match(s):
            return _norm(float(s))
        low = s.lower()
        for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
            if low.startswith(prefix):
                try:
                    return int(s[2:], base)
                except ValueError:
                    return math.nan
        return math.nan
    if isinstance(v, list):
        return to_number(to_js_string(v))
    return math.nan


def _primitive(v: Any) -> Any:
    return to_js_string(v) if isinstance(v, list | dict) else v


def strict_equals(a: Any, b: Any) -> bool:
    """``a === b`` (objects compare by identity)."""
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    if type(a) is not type(b):
        return False
    return a == b


def _same_value_zero(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b) and a != a and b != b:
        return True
    return strict_equals(a, b)


def loose_equals(a: Any, b: Any) -> bool:
    """``a == b`` with JavaScript's abstract equality."""
    nullish_a = a is None or a is UNDEFINED
    nullish_b = b is None or b is UNDEFINED
    if nullish_a or nullish_b:
        return nullish_a and nullish_b
    if isinstance(a, list | dict) and isinstance(b, list | dict):
        return a is b
    a, b = _primitive(a), _primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    return to_number(a) == to_number(b)


def _compare(a: Any, b: Any, op: Callable[[Any, Any], bool]) -> bool:
    a, b = _primitive(a), _primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return op(a, b)
    x, y = to_number(a), to_number(b)
    if x != x or y != y:
        return False
    return op(x, y)


def _add(a: Any, b: Any) -> Any:
    a, b = _primitive(a), _primitive(b)
    if isinstance(a, str) or isinstance(b, str):
        return to_js_string(a) + to_js_string(b)
    return _norm(to_number(a) + to_number(b))


def _div(a: Any, b: Any) -> Any:
    x, y = to_number(a), to_number(b)
    if y == 0:
        if x != x or x == 0:
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1, y)
    return _norm(x / y)


def _mod(a: Any, b: Any) -> Any:
    x, y = to_number(a), to_number(b)
    if y == 0 or x != x or y != y or math.isinf(x):
        return math.nan
    if math.isinf(y):
        return x
    return _norm(math.fmod(x, y))


def _pow(a: Any, b: Any) -> Any:
    x, y = to_number(a), to_number(b)
    try:
        return _norm(math.pow(x, y))
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


def _floordiv(a: Any, b: Any) -> Any:
    q = _div(a, b)
    if isinstance(q, float) and not math.isfinite(q):
        return q
    return math.floor(q)


def _arith(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def op(a: Any, b: Any) -> Any:
        if a is UNDEFINED or b is UNDEFINED:
            return UNDEFINED
        return fn(a, b)

    return op


def _in(a: Any, b: Any) -> bool:
    if isinstance(b, str):
        return to_js_string(a) in b
    if isinstance(b, list):
        return any(strict_equals(e, a) for e in b)
    return False


_BINARY: dict[str, tuple[int, Callable[[Any, Any], Any]]] = {
    "+": (30, _arith(_add)),
    "-": (30, _arith(lambda a, b: _norm(to_number(a) - to_number(b)))),
    "*": (40, _arith(lambda a, b: _norm(to_number(a) * to_number(b)))),
    "/": (40, _arith(_div)),
    "//": (40, _arith(_floordiv)),
    "%": (50, _arith(_mod)),
    "^": (50, _arith(_pow)),
    "==": (20, loose_equals),
    "!=": (20, lambda a, b: not loose_equals(a, b)),
    ">": (20, lambda a, b: _compare(a, b, lambda x, y: x > y)),
    ">=": (20, lambda a, b: _compare(a, b, lambda x, y: x >= y)),
    "<": (20, lambda a, b: _compare(a, b, lambda x, y: x < y)),
    "<=": (20, lambda a, b: _compare(a, b, lambda x, y: x <= y)),
    "in": (20, _in),
    "&&": (10, None),  # type: ignore[dict-item]  # short-circuit, handled by the compiler
    "||": (10, None),  # type: ignore[dict-item]
}

# --------------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------------

_IDENT_CHARS = "a-zA-Zа-яА-Я_\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff$"
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")
  | (?P<num>[0-9]*\.[0-9]+|[0-9]+)
  | (?P<ident>[IDSTART][IDREST]*)
  | (?P<op>//|==|!=|>=|<=|&&|\|\||[.\[\]|{}:,()?+\-*/%^><!])
    """.replace("IDSTART", _IDENT_CHARS).replace("IDREST", _IDENT_CHARS + "0-9"),
    re.VERBOSE,
)


def _unquote(raw: str) -> str:
    quote_char = raw[0]
    body = raw[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body) and body[i + 1] in (quote_char, "\\"):
            out.append(body[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _tokenize(expr: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m:
            raise InvalidExpression(expr, f"invalid token at {pos}: {expr[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            continue
        if kind == "str":
            tokens.append(("lit", _unquote(text)))
        elif kind == "num":
            tokens.append(("lit", _norm(float(text)) if "." in text else int(text)))
        elif kind == "ident":
            if text in ("true", "false"):
                tokens.append(("lit", text == "true"))
            elif text == "in":
                tokens.append(("op", "in"))
            else:
                tokens.append(("ident", text))
        else:
            tokens.append(("op", text))
    return tokens


# --------------------------------------------------------------------------------------------------
# Parser → closures.  A compiled node is ``fn(env) -> value`` where env = (context, relative_context).
# --------------------------------------------------------------------------------------------------

Node = Callable[[tuple[Mapping[str, Any], Any]], Any]


def _get_member(base: Any, key: Any) -> Any:
    """``base[key]`` / ``base.key`` without throwing: missing → ``undefined``."""
    if base is None or base is UNDEFINED:
        return UNDEFINED
    if isinstance(base, dict):
        return base.get(to_js_string(key) if not isinstance(key, str) else key, UNDEFINED)
    if isinstance(base, list | str):
        if key == "length":
            return len(base)
        idx = key if is_number(key) else to_number(key) if isinstance(key, str) else math.nan
        if is_number(idx) and idx == idx and float(idx).is_integer() and 0 <= idx < len(base):
            return base[int(idx)]
        return UNDEFINED
    return UNDEFINED


class _Parser:
    def __init__(self, expr: str, transforms: Mapping[str, _Transform]) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.pos = 0
        self.transforms = transforms
        self.relative_seen = False

    # token helpers
    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def is_op(self, *ops: str) -> bool:
        t = self.peek()
        return t is not None and t[0] == "op" and t[1] in ops

    def take(self) -> tuple[str, Any]:
        t = self.peek()
        if t is None:
            self.fail("unexpected end of expression")
        self.pos += 1
        return t  # type: ignore[return-value]

    def expect(self, op: str) -> None:
        t = self.take()
        if t != ("op", op):
            self.fail(f"expected {op!r}, found {t[1]!r}")

    def fail(self, detail: str) -> None:
        raise InvalidExpression(self.expr, detail)

    # grammar
    def parse(self) -> Node:
        if not self.tokens:
            self.fail("empty expression")
        node = self.expression()
        if self.peek() is not None:
            self.fail(f"unexpected token {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def expression(self) -> Node:
        test = self.binary(0)
        if not self.is_op("?"):
            return test
        self.take()
        consequent: Node | None = None
        if not self.is_op(":"):
            consequent = self.expression()
        self.expect(":")
        alternate = self.expression()

        def ternary(env: Any) -> Any:
            res = test(env)
            if truthy(res):
                return consequent(env) if consequent is not None else res
            return alternate(env)

        return ternary

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            t = self.peek()
            if t is None or t[0] != "op" or t[1] not in _BINARY:
                return left
            prec, fn = _BINARY[t[1]]
            if prec < min_prec:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = self._combine(t[1], fn, left, right)

    @staticmethod
    def _combine(op: str, fn: Callable[[Any, Any], Any] | None, left: Node, right: Node) -> Node:
        if op == "&&":
            return lambda env: (lambda lv: right(env) if truthy(lv) else lv)(left(env))
        if op == "||":
            return lambda env: (lambda lv: lv if truthy(lv) else right(env))(left(env))
        assert fn is not None
        return lambda env: fn(left(env), right(env))

    def unary(self) -> Node:
        if self.is_op("!"):
            self.take()
            operand = self.unary()
            return lambda env: not truthy(operand(env))
        if self.is_op("-"):
            self.take()
            operand = self.unary()

            def neg(env: Any) -> Any:
                v = operand(env)
                return UNDEFINED if v is UNDEFINED else _norm(-to_number(v))

            return neg
        return self.postfix(self.primary())

    def primary(self) -> Node:
        kind, val = self.take()
        if kind == "lit":
            return lambda env: val
        if kind == "ident":
            if self.is_op("("):
                return self.call(val, None)
            return lambda env: env[0].get(val, UNDEFINED)
        if val == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if val == "{":
            return self.object_literal()
        if val == "[":
            items = self.list_items("]")
            return lambda env: [n(env) for n in items]
        if val == ".":
            self.relative_seen = True
            kind2, name = self.take()
            if kind2 != "ident":
                self.fail("expected an identifier after '.'")
            return lambda env: _get_member(env[1], name)
        self.fail(f"unexpected token {val!r}")
        raise AssertionError  # pragma: no cover

    def object_literal(self) -> Node:
        entries: list[tuple[str, Node]] = []
        if self.is_op("}"):
            self.take()
            return lambda env: {}
        while True:
            kind, key = self.take()
            if kind not in ("ident", "lit"):
                self.fail("expected an object key")
            self.expect(":")
            entries.append((key if isinstance(key, str) else to_js_string(key), self.expression()))
            if self.is_op(","):
                self.take()
                continue
            self.expect("}")
            break
        return lambda env: {k: v(env) for k, v in entries}

    def list_items(self, closer: str) -> list[Node]:
        items: list[Node] = []
        if self.is_op(closer):
            self.take()
            return items
        while True:
            items.append(self.expression())
            if self.is_op(","):
                self.take()
                continue
            self.expect(closer)
            return items

    def call(self, name: str, subject: Node | None) -> Node:
        """A transform (``subject|name(args)``) or a function call (``name(args)``)."""
        transform = self.transforms.get(name)
        if transform is None:
            kind = "Transform" if subject is not None else "Jexl Function"
            self.fail(f"{kind} {name} is not defined.")
        args: list[Node] = []
        if self.is_op("("):
            self.take()
            args = self.list_items(")")
        fn, undefined_ok = transform.fn, transform.accepts_undefined
        expr = self.expr

        def run(env: Any) -> Any:
            if subject is None:
                values = [a(env) for a in args]
                if not values:
                    values = [UNDEFINED]
            else:
                values = [subject(env)] + [a(env) for a in args]
            if values[0] is UNDEFINED and not undefined_ok:
                return UNDEFINED
            try:
                return fn(*values)
            except InvalidExpression:
                raise
            except Exception as exc:  # a transform throwing is an invalid expression, as in the lib
                raise InvalidExpression(expr, f"{name}: {exc}") from None

        return run

    def postfix(self, node: Node) -> Node:
        while True:
            if self.is_op("."):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    self.fail("expected an identifier after '.'")
                node = (lambda base, key: lambda env: _member_dot(base(env), key))(node, name)
            elif self.is_op("["):
                self.take()
                if self.is_op("]"):
                    self.fail("empty filter")
                saved, self.relative_seen = self.relative_seen, False
                inner = self.expression()
                relative, self.relative_seen = self.relative_seen, saved
                self.expect("]")
                node = _filter(node, inner, relative)
            elif self.is_op("|"):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    self.fail("expected a transform name after '|'")
                node = self.call(name, node)
            else:
                return node


def _member_dot(base: Any, key: str) -> Any:
    if isinstance(base, list):  # jexl reads properties of an array from its first element
        base = base[0] if base else UNDEFINED
    return _get_member(base, key)


def _filter(subject_node: Node, inner: Node, relative: bool) -> Node:
    if relative:

        def rel(env: Any) -> Any:
            subject = subject_node(env)
            if not isinstance(subject, list):
                subject = [] if subject is UNDEFINED else [subject]
            return [e for e in subject if truthy(inner((env[0], e)))]

        return rel

    def static(env: Any) -> Any:
        subject = subject_node(env)
        res = inner(env)
        if isinstance(res, bool):
            return subject if res else UNDEFINED
        return _get_member(subject, res)

    return static


# --------------------------------------------------------------------------------------------------
# Transforms (iotagent-node-lib ``lib/jexlTranformsMap.js``, re-implemented)
# --------------------------------------------------------------------------------------------------


class _Transform:
    __slots__ = ("fn", "accepts_undefined")

    def __init__(self, fn: Callable[..., Any], accepts_undefined: bool) -> None:
        self.fn = fn
        self.accepts_undefined = accepts_undefined


def _safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The lib wraps many transforms so that a throw yields ``null``."""

    def wrapped(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            return None

    wrapped.__name__ = fn.__name__
    return wrapped


def _to_int_or_inf(v: Any) -> float | int:
    n = to_number(v)
    if n != n:
        return 0
    if math.isinf(n):
        return n
    return int(n)


def _clamp_index(i: float | int, length: int) -> int:
    if i < 0:
        return int(max(length + i, 0))
    return int(min(i, length))


def _js_slice(seq: Any, start: Any = UNDEFINED, end: Any = UNDEFINED) -> Any:
    if not isinstance(seq, list | str):
        raise TypeError("slice of a non-array")
    n = len(seq)
    s = 0 if start is UNDEFINED else _clamp_index(_to_int_or_inf(start), n)
    e = n if end is UNDEFINED else _clamp_index(_to_int_or_inf(end), n)
    return seq[s:e] if e > s else seq[:0]


def _substr(val: Any, start: Any = UNDEFINED, length: Any = UNDEFINED) -> str:
    s = to_js_string(val)
    n = len(s)
    st = _clamp_index(_to_int_or_inf(start), n) if start is not UNDEFINED else 0
    ln = n - st if length is UNDEFINED else _to_int_or_inf(length)
    if ln <= 0:
        return ""
    return s[st:st + int(min(ln, n - st))]


_PARSE_INT_RE = re.compile(r"^\s*([+-]?)(\d+)")
_PARSE_FLOAT_RE = re.compile(r"^\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")


def _parseint(val: Any) -> int | None:
    m = _PARSE_INT_RE.match(to_js_string(val))
    if not m:
        return None
    return int(m.group(1) + m.group(2))


def _parsefloat(val: Any) -> int | float | None:
    m = _PARSE_FLOAT_RE.match(to_js_string(val))
    if not m:
        return None
    return _norm(float(m.group(1)))


js_parse_int = _parseint
js_parse_float = _parsefloat

_ISO_DATE_RE = re.compile(
    r"^(?P<y>[+-]\d{6}|\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?"
    r"\s*(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_DATE_MS = 8.64e15


def js_date(val: Any) -> datetime | None:
    """``new Date(val)`` → aware UTC datetime, or ``None`` for an Invalid Date.

    Date-times without an offset are read as UTC (the agents run in UTC containers).
    """
    if val is UNDEFINED:
        return None
    if val is None or isinstance(val, bool) or is_number(val):
        ms = to_number(val)
        if ms != ms or math.isinf(ms) or abs(ms) > _MAX_DATE_MS:
            return None
        try:
            return _EPOCH + timedelta(milliseconds=ms)
        except OverflowError:
            return None
    if isinstance(val, datetime):
        return val if val.tzinfo else val.replace(tzinfo=UTC)
    s = to_js_string(val).strip()
    m = _ISO_DATE_RE.match(s)
    if m:
        try:
            frac = (m.group("f") or "0")[:6].ljust(6, "0")
            dt = datetime(
                int(m.group("y")), int(m.group("mo") or 1), int(m.group("d") or 1),
                int(m.group("h") or 0), int(m.group("mi") or 0), int(m.group("s") or 0), int(frac),
                tzinfo=UTC,
            )
        except ValueError:
            return None
        tz = m.group("tz")
        if tz and tz not in ("Z", "z"):
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            dt -= sign * offset
        return dt
    try:
        dt = parsedate_to_datetime(s)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso_string(dt: datetime) -> str:
    """``Date.prototype.toISOString()``: UTC, milliseconds, ``Z``."""
    dt = dt.astimezone(UTC)
    if 1000 <= dt.year:  # the f-string is ~4x strftime (every measure's observedAt); %Y pads differently
        return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}."
                f"{dt.microsecond // 1000:03d}Z")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _epoch_ms(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _date_op(fn: Callable[[datetime], Any]) -> Callable[[Any], Any]:
    def op(val: Any) -> Any:
        dt = js_date(val)
        return None if dt is None else fn(dt)

    return op


def js_json_dumps(v: Any) -> str | None:
    """``JSON.stringify`` (compact, JavaScript number formatting); ``None`` when JS gives ``undefined``."""
    if v is UNDEFINED:
        return None

    def enc(x: Any) -> str | None:
        if x is None or x is UNDEFINED:
            return "null" if x is None else None
        if x is True:
            return "true"
        if x is False:
            return "false"
        if is_number(x):
            return number_to_string(x) if math.isfinite(x) else "null"
        if isinstance(x, str):
            return json.dumps(x, ensure_ascii=False)
        if isinstance(x, list | tuple):
            return "[" + ",".join(e if (e := enc(i)) is not None else "null" for i in x) + "]"
        if isinstance(x, dict):
            parts = []
            for k, val in x.items():
                e = enc(val)
                if e is not None:
                    parts.append(json.dumps(str(k), ensure_ascii=False) + ":" + e)
            return "{" + ",".join(parts) + "}"
        return json.dumps(str(x), ensure_ascii=False)

    return enc(v)


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def js_json_loads(text: str, **options: Any) -> Any:
    """``JSON.parse``: rejects ``NaN``/``Infinity`` that Python's json would accept (``options`` go to
    ``json.loads``)."""
    try:
        return json.loads(text, parse_constant=_no_constants, **options)
    except RecursionError:  # nesting beyond Python's recursion limit: a ValueError like any invalid JSON
        raise ValueError("JSON nested too deep") from None


def _jsonparse(val: Any) -> Any:
    return js_json_loads(to_js_string(val))


_URI_KEEP = ";,/?:@&=+$-_.!~*'()#"
_URI_RESERVED = set(";/?:@&=+$,#")
_PCT_RE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _urlencode(val: Any) -> str:
    return quote(to_js_string(val), safe=_URI_KEEP)


def _urldecode(val: Any) -> str:
    s = to_js_string(val)
    if re.search(r"%(?![0-9A-Fa-f]{2})", s):
        raise ValueError("URIError: malformed URI sequence")

    def dec(m: re.Match[str]) -> str:
        raw = m.group()
        text = bytes.fromhex(raw.replace("%", "")).decode("utf-8")  # strict: malformed → URIError
        out, i = [], 0
        for ch in text:  # decodeURI keeps escapes of reserved characters
            width = len(ch.encode("utf-8")) * 3
            out.append(raw[i:i + width] if ch in _URI_RESERVED else ch)
            i += width
        return "".join(out)

    return _PCT_RE.sub(dec, s)


def _js_replacement(to: Any) -> Callable[[re.Match[str]], str]:
    """JavaScript replacement patterns (``$&``, ``$1``, ``$$``) for ``re.sub``."""
    template = to_js_string(to)

    def repl(m: re.Match[str]) -> str:
        def sub(t: re.Match[str]) -> str:
            tok = t.group()
            if tok == "$$":
                return "$"
            if tok == "$&":
                return m.group(0)
            idx = int(tok[1:])
            if 0 < idx <= (m.re.groups or 0):
                return m.group(idx) or ""
            return tok

        return re.sub(r"\$\$|\$&|\$\d{1,2}", sub, template)

    return repl


def _require_str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{what} on a non-string")
    return v


def _replacestr(s: Any, frm: Any, to: Any) -> str:
    s = _require_str(s, "replace")
    needle = to_js_string(frm)
    idx = s.find(needle)
    if idx < 0:
        return s
    m = re.compile(re.escape(needle)).match(s, idx)
    assert m is not None
    return s[:idx] + _js_replacement(to)(m) + s[idx + len(needle):]


def _replaceallstr(s: Any, frm: Any, to: Any) -> str:
    s = _require_str(s, "replaceAll")
    return re.sub(re.escape(to_js_string(frm)), _js_replacement(to), s)


def _replaceregexp(s: Any, reg: Any, to: Any, count: int = 1) -> str:
    s = _require_str(s, "replace")
    return re.sub(re.compile(to_js_string(reg)), _js_replacement(to), s, count=count)


def _split(s: Any, sep: Any = UNDEFINED) -> list[str]:
    s = _require_str(s, "split")
    if sep is UNDEFINED:
        return [s]
    sep = to_js_string(sep)
    return list(s) if sep == "" else s.split(sep)


def _joinarrtostr(arr: Any, sep: Any = UNDEFINED) -> str:
    if not isinstance(arr, list):
        raise TypeError("join of a non-array")
    return (",".join if sep is UNDEFINED else to_js_string(sep).join)(
        "" if e is None or e is UNDEFINED else to_js_string(e) for e in arr
    )


def _concatarr(arr: Any, *others: Any) -> list[Any]:
    if not isinstance(arr, list):
        raise TypeError("concat of a non-array")
    out = list(arr)
    for o in others:
        out.extend(o) if isinstance(o, list) else out.append(o)
    return out


def _index(choices: Any, i: int | None) -> Any:
    if i is None or not isinstance(choices, list | str) or not 0 <= i < len(choices):
        return UNDEFINED
    return choices[i]


def _mapper(val: Any, values: Any, choices: Any) -> Any:
    idx = next((i for i, t in enumerate(values) if strict_equals(t, val)), None)
    return _index(choices, idx)


def _thmapper(val: Any, values: Any, choices: Any) -> Any:
    idx = next((i for i, t in enumerate(values) if _compare(val, t, lambda x, y: x <= y)), None)
    return _index(choices, idx)


def _to_int32(v: Any) -> int:
    n = to_number(v)
    if n != n or math.isinf(n):
        return 0
    n = int(n) & 0xFFFFFFFF
    return n - 0x1_0000_0000 if n >= 0x8000_0000 else n


def _bitwisemask(i: Any, mask: Any, op: Any, shf: Any) -> int:
    base = _parseint(i)
    base_n = math.nan if base is None else base
    if op == "&":
        r = _to_int32(base_n) & _to_int32(mask)
    elif op == "|":
        r = _to_int32(base_n) | _to_int32(mask)
    elif op == "^":
        r = _to_int32(base_n) ^ _to_int32(mask)
    else:
        r = _to_int32(i)
    return _to_int32(r >> (_to_int32(shf) & 31))


def _set_list(arr: Any) -> list[Any]:
    items = list(arr) if isinstance(arr, list | str) else []
    out: list[Any] = []
    for e in items:
        if not any(_same_value_zero(e, o) for o in out):
            out.append(e)
    return out


def _addset(arr: Any, x: Any) -> list[Any]:
    out = _set_list(arr)
    if not any(_same_value_zero(x, o) for o in out):
        out.append(x)
    return out


def _removeset(arr: Any, x: Any) -> list[Any]:
    return [e for e in _set_list(arr) if not _same_value_zero(e, x)]


def _math(fn: Callable[[float], Any]) -> Callable[[Any], Any]:
    def op(v: Any) -> Any:
        n = to_number(v)
        if n != n or math.isinf(n):
            return n
        return fn(n)

    return op


def _tofixed(val: Any, decimals: Any = 0) -> str | None:
    num = _parsefloat(val)
    dec = _parseint(decimals)
    if num is None or dec is None:
        return None
    if not 0 <= dec <= 100:
        raise ValueError("toFixed() digits argument must be between 0 and 100")
    if isinstance(num, float) and not math.isfinite(num):
        return number_to_string(num)
    if abs(num) >= 1e21:
        return number_to_string(num)
    q = Decimal(num).quantize(Decimal(1).scaleb(-dec), rounding=ROUND_HALF_UP)
    text = f"{q:f}"
    return text[1:] if text.startswith("-") and Decimal(text) == 0 and num >= 0 else text


def _tostring(val: Any) -> str | None:
    if val is None or val is UNDEFINED:
        return None
    return to_js_string(val)


def _typeof(val: Any) -> str:
    if val is UNDEFINED:
        return "undefined"
    if isinstance(val, bool):
        return "boolean"
    if is_number(val):
        return "number"
    if isinstance(val, str):
        return "string"
    return "object"


def _isnan(val: Any) -> bool:
    n = to_number(val)
    return n != n


def _addreduce(arr: Any) -> Any:
    if not isinstance(arr, list) or not arr:
        raise TypeError("Reduce of empty array with no initial value")
    acc = arr[0]
    for v in arr[1:]:
        acc = _add(acc, v)
    return acc


def _lengtharray(arr: Any) -> Any:
    if arr is None:
        raise TypeError("Cannot read properties of null (reading 'length')")
    if isinstance(arr, list | str):
        return len(arr)
    return UNDEFINED


def _js_length(val: Any) -> int:
    return len(to_js_string(val).encode("utf-16-le")) // 2


def _hextostring(val: Any) -> str | None:
    if not isinstance(val, str) or not re.fullmatch(r"[0-9a-fA-F]+", val) or len(val) % 2:
        return None
    return bytes.fromhex(val).decode("utf-8", errors="replace")


def _entries(val: Any) -> list[tuple[str, Any]]:
    if val is None:
        raise TypeError("Cannot convert undefined or null to object")
    if isinstance(val, dict):
        return [(str(k), v) for k, v in val.items()]
    if isinstance(val, list | str):
        return [(str(i), v) for i, v in enumerate(val)]
    return []


def _valuepicker(val: Any, pick: Any) -> list[str]:
    return [k for k, v in _entries(val) if strict_equals(v, pick)]


def _valuepickermulti(val: Any, picks: Any) -> list[str]:
    if not isinstance(picks, list | str):
        raise TypeError("pick.includes is not a function")
    if isinstance(picks, str):
        return [k for k, v in _entries(val) if isinstance(v, str) and v in picks]
    return [k for k, v in _entries(val) if any(_same_value_zero(v, p) for p in picks)]


def _hash(val: Any) -> str:
    s = to_js_string(val)
    h = 0
    units = s.encode("utf-16-le")
    for i in range(0, len(units), 2):
        c = units[i] | (units[i + 1] << 8)
        h = _to_int32(_to_int32(h << 5) - h + c)
    return format(abs(h), "X").rjust(8, "0")


def _now(*_: Any) -> int:
    return int(time.time() * 1000)


def _indexof(val: Any, needle: Any) -> int:
    return to_js_string(val).find(to_js_string(needle))


_TRANSFORMS: dict[str, _Transform] = {}


def register_transform(name: str, fn: Callable[..., Any], *, accepts_undefined: bool = False) -> None:
    """Add or replace a transform (the json agent's ``IOTA_EXTRA_JEXL_TRANSFORMATIONS_PATH`` equivalent).

    Unless ``accepts_undefined``, a transform applied to an ``undefined`` subject is not called and yields
    ``undefined`` (so expressions over absent measures are skipped).
    """
    _TRANSFORMS[name] = _Transform(fn, accepts_undefined)
    compile_expression.cache_clear()


def transform_names() -> list[str]:
    return sorted(_TRANSFORMS)


for _name, _fn, _undef in [
    ("jsonparse", _safe(_jsonparse), False),
    ("jsonstringify", _safe(js_json_dumps), False),
    ("indexOf", _indexof, False),
    ("length", _js_length, False),
    ("trim", lambda v: to_js_string(v).strip(), False),
    ("substr", _substr, False),
    ("addreduce", _safe(_addreduce), False),
    ("lengtharray", _lengtharray, False),
    ("typeof", _typeof, True),
    ("isarray", lambda v: isinstance(v, list), True),
    ("isnan", _isnan, True),
    ("parseint", _parseint, False),
    ("parsefloat", _parsefloat, False),
    ("toisodate", _date_op(iso_string), False),
    ("toisostring", _date_op(iso_string), False),
    ("timeoffset", _date_op(lambda dt: 0), False),
    ("gettime", _date_op(_epoch_ms), False),
    ("tostring", _safe(_tostring), True),
    ("urlencode", _urlencode, False),
    ("urldecode", _safe(_urldecode), False),
    ("replacestr", _replacestr, False),
    ("replaceallstr", _replaceallstr, False),
    ("replaceregexp", _safe(_replaceregexp), False),
    ("replaceallregexp", _safe(lambda s, r, t: _replaceregexp(s, r, t, count=0)), False),
    ("split", _split, False),
    ("joinarrtostr", _joinarrtostr, False),
    ("concatarr", _concatarr, False),
    ("mapper", _mapper, False),
    ("thmapper", _thmapper, False),
    ("bitwisemask", _bitwisemask, False),
    ("slice", _js_slice, False),
    ("addset", _addset, False),
    ("removeset", _removeset, False),
    ("touppercase", lambda v: to_js_string(v).upper(), False),
    ("tolowercase", lambda v: to_js_string(v).lower(), False),
    ("floor", _math(math.floor), False),
    ("ceil", _math(math.ceil), False),
    ("round", _math(lambda n: math.floor(n + 0.5)), False),
    ("tofixed", _tofixed, False),
    ("now", _now, True),
    ("hextostring", _safe(_hextostring), False),
    ("valuePicker", _valuepicker, False),
    ("valuePickerMulti", _valuepickermulti, False),
    ("hash", _safe(_hash), False),
]:
    _TRANSFORMS[_name] = _Transform(_fn, _undef)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _to_python(v: Any) -> Any:
    """Final result: ``undefined``/``NaN``/``±Infinity`` → ``None`` (what the lib sends as ``null``)."""
    if v is UNDEFINED:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [None if e is UNDEFINED else e for e in v]
    if isinstance(v, dict):
        return {k: e for k, e in v.items() if e is not UNDEFINED}
    return v


class Expression:
    """A compiled JEXL expression; evaluate it many times against different contexts."""

    __slots__ = ("source", "_node")

    def __init__(self, source: str, node: Node) -> None:
        self.source = source
        self._node = node

    def evaluate(self, context: Mapping[str, Any] | None = None) -> Any:
        """Value of the expression; ``None`` when it is undefined/NaN. Raises ``InvalidExpression``."""
        ctx = context if context is not None else {}
        try:
            return _to_python(self._node((ctx, ctx)))
        except InvalidExpression:
            raise
        except (RecursionError, TypeError, ValueError, KeyError, IndexError, AttributeError,
                OverflowError, ZeroDivisionError, InvalidOperation) as exc:
            raise InvalidExpression(self.source, str(exc)) from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Parse once (cached); raises :class:`InvalidExpression` on syntax errors or unknown transforms."""
    if not isinstance(source, str):
        raise InvalidExpression(str(source), "expression must be a string")
    try:
        node = _Parser(source, _TRANSFORMS).parse()
    except RecursionError:
        raise InvalidExpression(source, "expression nested too deeply") from None
    return Expression(source, node)


def evaluate(source: str, context: Mapping[str, Any] | None = None) -> Any:
    """Compile (cached) and evaluate, like the lib's ``jexlParser.parse``."""
    return compile_expression(source).evaluate(context)


def apply_expression(source: str, context: Mapping[str, Any]) -> Any:
    """Like the lib's ``applyExpression``: ``null``/``NaN`` context entries count as absent."""
    clean = {
        k: v for k, v in context.items() if v is not None and not (isinstance(v, float) and v != v)
    }
    return evaluate(source, clean)


def is_valid_expression(source: str) -> bool:
    """Syntax check for provisioning-time validation."""
    try:
        compile_expression(source)
    except InvalidExpression:
        return False
    return True
