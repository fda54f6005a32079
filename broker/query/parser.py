"""Parsers from request text to the AST in ``broker.query.ast``.

Every syntax error becomes ``BadRequestData`` naming the character position of the fault, since a
client cannot fix a long URL-encoded q without it.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import shapely
from lark import Token, Transformer, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from broker.errors import BadRequestData, TooComplexQuery
from broker.query.ast import (
    DEFAULT_GEOPROPERTY,
    GEOMETRIES,
    INSTANCE_MEMBERS,
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
from broker.query.grammar import GEOREL_PARSER, Q_PARSER, SCOPE_PARSER, TYPE_PARSER
from broker.query.regex import compile_regex
from broker.query.values import classify_unquoted

Expand = Callable[[str], str]

_CACHE_SIZE = 8192


class _Lru:
    """Tiny LRU; functools.lru_cache cannot key on a caller-chosen identity of ``expand``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        try:
            self.data.move_to_end(key)
        except KeyError:
            return None
        return self.data[key]

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.size:
            self.data.popitem(last=False)


_q_cache = _Lru(_CACHE_SIZE)
_type_cache = _Lru(_CACHE_SIZE)
_scope_cache = _Lru(_CACHE_SIZE)


class _Fault(Exception):
    """Semantic error found while building the AST; carries the position for the message."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def _syntax_error(what: str, text: str, exc: UnexpectedInput) -> BadRequestData:
    if isinstance(exc, UnexpectedEOF):
        pos, message = len(text), "unexpected end of input"
    elif isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            pos, message = len(text), "unexpected end of input"
        else:
            pos, message = exc.token.start_pos, f"unexpected {exc.token.value!r}"
    elif isinstance(exc, UnexpectedCharacters):
        pos, message = exc.pos_in_stream, f"unexpected character {text[exc.pos_in_stream]!r}"
    else:  # pragma: no cover - lark has no other subclasses today
        pos, message = getattr(exc, "pos_in_stream", None) or 0, str(exc)
    return BadRequestData(f"Invalid {what} at position {pos}: {message}")


def _flatten(cls: type[And] | type[Or], items: list[Any]) -> And | Or:
    out: list[Any] = []
    for item in items:
        out.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(out))


_JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unquote(token: Token) -> str:
    """JSON-like unescaping of a quoted literal; unknown escapes keep the escaped character."""
    body = token.value[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u" and len(body) >= i + 6:
            try:
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            except ValueError:
                pass
        out.append(_JSON_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def _unquote_regex(token: Token) -> str:
    """A quoted regex keeps its backslashes (they belong to the regex); only ``\\"`` is unescaped."""
    return token.value[1:-1].replace('\\"', '"')


class _QBuilder(Transformer):
    def __init__(self, expand: Expand) -> None:
        super().__init__()
        self.expand = expand

    def disj(self, items: list[Any]) -> Or | And:
        return _flatten(Or, items)

    def conj(self, items: list[Any]) -> Or | And:
        return _flatten(And, items)

    def name(self, items: list[Token]) -> Token:
        return items[0]

    def path(self, items: list[Token]) -> AttrPath:
        names = [t for t in items if t.type != "KEY"]
        keys = tuple(t.value for t in items if t.type == "KEY")
        attr = self._iri(names[0])
        subs: list[str] = []
        member: str | None = None
        for tok in names[1:]:
            if member is not None:
                raise _Fault(tok.start_pos, f"nothing may follow the member {member!r}")
            if tok.type == "ATTRNAME" and tok.value in INSTANCE_MEMBERS:
                member = tok.value
            else:
                subs.append(self._iri(tok))
        if member is not None and keys:
            raise _Fault(names[-1].start_pos, f"{member!r} has no compound keys")
        return AttrPath(attr, tuple(subs), member, keys)

    def _iri(self, tok: Token) -> str:
        if tok.type == "BRACKET_IRI":
            return tok.value[1:-1]
        if tok.type == "IRI":
            return tok.value
        return self.expand(tok.value)

    def value(self, items: list[Token]) -> Value:
        tok = items[0]
        if tok.type == "STRING":
            return Value("string", _unquote(tok))
        val = classify_unquoted(tok.value)
        if isinstance(val.value, float) and not math.isfinite(val.value):
            raise _Fault(tok.start_pos, f"number out of range {tok.value!r}")
        return val

    def range(self, items: list[Value]) -> Range:
        return Range(items[0], items[1])

    def vlist(self, items: list[Value]) -> ValueList:
        return ValueList(tuple(items))

    def regex(self, items: list[Token]) -> tuple[str, int]:
        tok = items[0]
        return (_unquote_regex(tok) if tok.type == "STRING" else tok.value), tok.start_pos

    def exists(self, items: list[AttrPath]) -> Exists:
        return Exists(items[0])

    def compare(self, items: list[Any]) -> Comparison:
        path, op, operand = items
        if isinstance(operand, Range):
            low, high = operand.low, operand.high
            if low.is_stringish != high.is_stringish or "boolean" in (low.kind, high.kind):
                raise _Fault(op.end_pos, "range bounds must both be numbers or both be strings")
        return Comparison(path, op.value, operand)

    def pattern(self, items: list[Any]) -> Comparison:
        path, op, (regex, pos) = items
        try:
            compile_regex(regex)
        except BadRequestData as exc:
            raise _Fault(pos, exc.detail) from None
        return Comparison(path, op.value, Value("string", regex))


# Nesting of q / scopeQ / type expressions (one parse-tree level per nested and/or group): the
# transformer, compiler and evaluators recurse, and MongoDB caps filter depth. Real queries nest a few.
MAX_NESTING = 32


def _check_nesting(what: str, tree: Tree) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise TooComplexQuery(f"{what} nests and/or groups more than {MAX_NESTING} levels deep")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _transform(what: str, tree: Tree, builder: Transformer) -> Any:
    _check_nesting(what, tree)
    try:
        return builder.transform(tree)
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, _Fault):
            raise BadRequestData(f"Invalid {what} at position {orig.pos}: {orig.message}") from None
        if isinstance(orig, BadRequestData):
            raise orig from None
        raise


# A conjunction of plain comparisons (``a>5;b=="x"``), the usual q: no parentheses, ``|``, paths,
# compound keys, or ``;`` / escapes inside quotes, so splitting at ``;`` gives its terms exactly.
_SIMPLE_TERM = r'[A-Za-z_]\w*(?:==|!=|>=|<=|>|<)(?:"[^"\\;]*"|[^;|()",\s=<>!~\[\]]+)'
_SIMPLE_CONJ = re.compile(rf"{_SIMPLE_TERM}(?:;{_SIMPLE_TERM})+")


def parse_q(text: str, expand: Expand, cache_key: object | None = None) -> QNode:
    """Parse an NGSI-LD q expression; ``expand`` maps attribute short names to IRIs.

    ``cache_key`` identifies the @context behind ``expand`` (default: the identity of ``expand``); callers
    pass the term map itself, since a reloaded context gives a new term map under the same URL.
    A conjunction of plain comparisons is parsed term by term, each through the cache: clients vary
    one term's value (``temperature>N;type=="x"``), so whole expressions rarely repeat while their
    terms do, and the grammar costs ~60 µs a parse. Any fault sends it back to the whole-text parse,
    which reports the position in the text the client sent.
    """
    key = (text, id(expand) if cache_key is None else cache_key)
    hit = _q_cache.get(key)
    if hit is not None:
        return hit
    node: QNode | None = None
    if _SIMPLE_CONJ.fullmatch(text):
        try:
            node = And(tuple(parse_q(term, expand, key[1]) for term in text.split(";")))
        except BadRequestData:
            node = None
    if node is None:
        node = parse_q_text(text, expand)
    _q_cache.put(key, node)
    return node


def parse_q_text(text: str, expand: Expand) -> QNode:
    """``parse_q`` of the whole text by the grammar, uncached."""
    if not text:
        raise BadRequestData("Invalid q at position 0: empty expression")
    try:
        tree = Q_PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error("q", text, exc) from None
    return _transform("q", tree, _QBuilder(expand))


class _TypeBuilder(Transformer):
    def __init__(self, expand: Expand) -> None:
        super().__init__()
        self.expand = expand

    def disj(self, items: list[Any]) -> Or | And:
        return _flatten(Or, items)

    def conj(self, items: list[Any]) -> Or | And:
        return _flatten(And, items)

    def typename(self, items: list[Token]) -> TypeName:
        return TypeName(self.expand(items[0].value))


def parse_type_expr(text: str, expand: Expand, cache_key: object | None = None) -> TypeNode:
    """Parse ``type=`` (``A,B`` / ``A|B`` or, ``A;B`` and, parentheses) into expanded type IRIs."""
    key = (text, id(expand) if cache_key is None else cache_key)
    hit = _type_cache.get(key)
    if hit is not None:
        return hit
    if not text:
        raise BadRequestData("Invalid type expression at position 0: empty expression")
    try:
        tree = TYPE_PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error("type expression", text, exc) from None
    node = _transform("type expression", tree, _TypeBuilder(expand))
    _type_cache.put(key, node)
    return node


class _ScopeBuilder(Transformer):
    def disj(self, items: list[Any]) -> Or | And:
        return _flatten(Or, items)

    def conj(self, items: list[Any]) -> Or | And:
        return _flatten(And, items)

    def scope(self, items: list[Token]) -> ScopeTerm:
        parts = items[0].value.split("/")[1:]
        if parts[-1] == "#":
            return ScopeTerm(tuple(parts[:-1]), True)
        return ScopeTerm(tuple(parts), False)


def parse_scope_q(text: str) -> ScopeNode:
    """Parse scopeQ: ``/a/b``, ``/a/#`` (a and below), ``/a/+`` (one level below a), ``/#`` (any)."""
    hit = _scope_cache.get(text)
    if hit is not None:
        return hit
    if not text:
        raise BadRequestData("Invalid scopeQ at position 0: empty expression")
    try:
        tree = SCOPE_PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error("scopeQ", text, exc) from None
    _check_nesting("scopeQ", tree)
    node = _ScopeBuilder().transform(tree)
    _scope_cache.put(text, node)
    return node


# -------------------------------------------------------------------------------------------- geo


def _freeze(value: Any, depth: int = 0) -> Any:
    if isinstance(value, list | tuple):
        if depth >= 4:  # a MultiPolygon nests four arrays; deeper input is no geometry (nor a deep recursion)
            raise BadRequestData("Invalid geoQ coordinates: arrays nested too deep")
        return tuple(_freeze(v, depth + 1) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestData(f"Invalid geoQ coordinates: {value!r} is not a number")
    if not math.isfinite(value):
        raise BadRequestData("Invalid geoQ coordinates: non-finite number")
    return value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _positions(value: Any) -> list[tuple[Any, ...]]:
    if value and isinstance(value[0], tuple):
        return [p for v in value for p in _positions(v)]
    return [value]


def parse_georel(georel: str) -> tuple[str, float | None, float | None]:
    """``near;maxDistance==N`` / ``near;minDistance==N`` / a plain relation -> (rel, max, min)."""
    try:
        tree = GEOREL_PARSER.parse(georel)
    except UnexpectedInput as exc:
        raise _syntax_error("georel", georel, exc) from None
    if tree.data == "relation":
        return tree.children[0].value, None, None
    _near, kind, number = tree.children
    distance = float(number.value)
    if not math.isfinite(distance):
        raise BadRequestData("Invalid georel: distance out of range")
    return ("near", distance, None) if kind.value == "maxDistance" else ("near", None, distance)


def parse_geoq(georel: str, geometry: str, coordinates: str | list, geoproperty: str | None,
               expand: Expand) -> GeoQuery:
    """Validate and normalise a geo-query from URL parameters or a JSON body.

    ``coordinates`` is the JSON text of the URL parameter or the already-decoded list of a body.
    """
    rel, max_d, min_d = parse_georel(georel)
    if geometry not in GEOMETRIES:
        raise BadRequestData(f"Invalid geoQ geometry {geometry!r}")
    if rel == "near" and geometry != "Point":
        raise BadRequestData("Invalid geoQ: georel near requires a Point geometry")
    if isinstance(coordinates, str):
        text = coordinates.strip()
        try:
            coords = json.loads(text)
        except RecursionError:
            raise BadRequestData("Invalid geoQ coordinates: arrays nested too deep") from None
        except ValueError:
            try:  # tolerated shorthand: coordinates=8,40
                coords = json.loads(f"[{text}]")
            except ValueError:
                raise BadRequestData(f"Invalid geoQ coordinates: {coordinates!r} is not JSON") from None
    else:
        coords = coordinates
    if not isinstance(coords, list | tuple):
        raise BadRequestData("Invalid geoQ coordinates: not an array")
    frozen = _freeze(coords)
    try:
        shape = shapely.geometry.shape({"type": geometry, "coordinates": _thaw(frozen)})
    except Exception as exc:  # shapely raises several types for malformed input
        raise BadRequestData(f"Invalid geoQ coordinates for {geometry}: {exc}") from None
    if not shape.is_empty and not shape.is_valid:
        repaired = shapely.make_valid(shape)  # keep what a slightly self-intersecting ring means
        if repaired.is_empty or ("Polygon" in geometry and repaired.area == 0):
            raise BadRequestData(f"Invalid geoQ {geometry}: {shapely.is_valid_reason(shape)}")
    if shape.is_empty:
        raise BadRequestData(f"Invalid geoQ {geometry}: empty geometry")
    for pos in _positions(frozen):
        if len(pos) < 2 or not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
            raise BadRequestData(f"Invalid geoQ coordinates: position {list(pos)} out of range")
    prop = expand(geoproperty) if geoproperty else DEFAULT_GEOPROPERTY
    return GeoQuery(rel, geometry, frozen, prop, max_d, min_d)  # type: ignore[arg-type]

