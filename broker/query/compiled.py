"""q compiled once into closures: the hot-path form of the evaluator's reference semantics.

``evaluator.match_q_reference`` walks the AST and resolves eight member paths per instance; that
costs milliseconds per query over thousands of entities. Here each AST node (hashable, so cached)
becomes a closure with its literal pre-classified and, for a plain attribute term, the candidate
values read straight from the instance's members. ``tests/query/test_compiled.py`` demands the same
answer as the reference on generated entities and queries.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from broker.query.ast import And, Comparison, Exists, Or, QNode, Range, Value, ValueList
from broker.query.regex import compile_regex
from broker.query.targets import flatten_values
from broker.query.values import normalize_datetime

Entity = dict[str, Any]
Pred = Callable[[Any], bool]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_PLAIN_MEMBERS = ("value", "object", "vocab", "json", "valueList", "objectList")


def _literal_test(op: str, literal: Value) -> Pred:
    """``candidate OP literal`` with the reference's kind rules (bool is not a number)."""
    fn = _OPS[op]
    lit = literal.value
    if literal.kind == "number":
        return lambda c: not isinstance(c, bool) and isinstance(c, int | float) and fn(c, lit)
    if literal.kind == "boolean":
        return lambda c: isinstance(c, bool) and fn(c, lit)
    lit_dt = normalize_datetime(lit) if isinstance(lit, str) else None
    if lit_dt is None:
        return lambda c: isinstance(c, str) and fn(c, lit)

    def dt_test(c: Any) -> bool:
        if not isinstance(c, str):
            return False
        cand = normalize_datetime(c)
        return fn(cand, lit_dt) if cand is not None else fn(c, lit)

    return dt_test


def _equality(operand: Value | Range | ValueList) -> Pred:
    if isinstance(operand, Value):
        return _literal_test("==", operand)
    if isinstance(operand, Range):
        low, high = _literal_test(">=", operand.low), _literal_test("<=", operand.high)
        return lambda c: low(c) and high(c)
    tests = [_literal_test("==", v) for v in operand.items]
    return lambda c: any(t(c) for t in tests)


def _plain_candidates(inst: dict[str, Any]) -> tuple[bool, list[Any]]:
    """(present, values) of a plain attribute term: the reference's member paths, read directly."""
    raws: list[Any] = []
    for member in _PLAIN_MEMBERS:
        if member in inst:
            raw = inst[member]
            raws.append(raw)
            if member == "value":
                if isinstance(raw, dict):
                    if "@value" in raw:
                        raws.append(raw["@value"])
                elif isinstance(raw, list):
                    raws.extend(e["@value"] for e in raw if isinstance(e, dict) and "@value" in e)
    lang_maps = [inst["languageMap"]] if "languageMap" in inst else []
    return bool(raws) or bool(lang_maps), flatten_values(raws, lang_maps)


_NOT_SCALAR = object()
_SCALAR_MEMBER = {"Property": "value", "GeoProperty": "value", "Relationship": "object"}


def _scalar(inst: dict[str, Any]) -> Any:
    """The one candidate of a Property or Relationship instance holding a single string, number or
    boolean (what most instances hold): ``_plain_candidates`` would give exactly ``[value]``, since an
    instance carries only its own type's value member. ``_NOT_SCALAR`` for anything else."""
    member = _SCALAR_MEMBER.get(inst.get("type"))  # type: ignore[arg-type]
    if member is None:
        return _NOT_SCALAR
    v = inst.get(member, _NOT_SCALAR)
    tv = type(v)
    if tv is str or tv is float or tv is int or tv is bool:
        return v
    return _NOT_SCALAR


def _instance_test(term: Comparison) -> Pred:
    from broker.query.evaluator import _candidates

    path = term.path
    if not path.subs and path.member is None and not path.keys:
        candidates: Callable[[dict[str, Any]], tuple[bool, list[Any]]] = _plain_candidates
    else:
        def candidates(inst: dict[str, Any]) -> tuple[bool, list[Any]]:
            return _candidates(inst, term)

    op, operand = term.op, term.operand
    plain = candidates is _plain_candidates

    def any_value(pred: Pred, negate: bool = False) -> Pred:
        """Present, and some candidate meets ``pred`` (none, with ``negate``); one scalar is read directly."""
        def test(inst: dict[str, Any]) -> bool:
            if plain:
                v = _scalar(inst)
                if v is not _NOT_SCALAR:
                    return pred(v) != negate
            present, values = candidates(inst)
            return present and any(pred(v) for v in values) != negate

        return test

    if op in ("==", "!="):
        return any_value(_equality(operand), negate=op == "!=")  # type: ignore[arg-type]
    if op in ("~=", "!~="):
        rx = compile_regex(operand.value)  # type: ignore[union-attr, arg-type]
        negate = op == "!~="

        def regex_test(inst: dict[str, Any]) -> bool:
            present, values = candidates(inst)
            if not present:
                return False
            strings = [v for v in values if isinstance(v, str)]
            hit = any(rx.search(s) for s in strings)
            return (bool(strings) and not hit) if negate else hit

        return regex_test
    return any_value(_literal_test(op, operand))  # type: ignore[arg-type]


def _fused_comparison(node: Comparison, test: Pred) -> Callable[[Entity], bool] | None:
    """``attr OP literal`` on a plain attribute as one closure for the usual entity (one instance
    holding one scalar): the scan of a query runs this per entity. Anything else takes ``test``."""
    path, operand, op = node.path, node.operand, node.op
    if path.subs or path.member is not None or path.keys or not isinstance(operand, Value):
        return None
    if op not in _OPS and op != "!=":
        return None
    lit = operand.value
    if operand.kind == "number":
        kinds: tuple[type, ...] = (int, float)
    elif operand.kind == "boolean":
        kinds = (bool,)
    elif isinstance(lit, str) and normalize_datetime(lit) is None:
        kinds = (str,)
    else:
        return None
    negate = op == "!="
    fn = operator.eq if negate else _OPS[op]
    attr = path.attr

    def comparison(entity: Entity) -> bool:
        attrs = entity.get("attrs")
        instances = attrs.get(attr) if type(attrs) is dict else None
        if type(instances) is not list:
            return False
        for inst in instances:  # any instance (datasetId) may satisfy the term
            member = _SCALAR_MEMBER.get(inst.get("type")) if type(inst) is dict else None
            if member is not None:
                v = inst.get(member, _NOT_SCALAR)
                tv = type(v)
                if tv is str or tv is float or tv is int or tv is bool:
                    if (tv in kinds and fn(v, lit)) != negate:
                        return True
                    continue
            if test(inst):
                return True
        return False

    return comparison


@lru_cache(maxsize=16384)
def compile_q(node: QNode) -> Callable[[Entity], bool]:
    """The entity predicate of a q AST (cached per node: subscriptions and queries share it)."""
    if isinstance(node, Comparison):
        attr = node.path.attr
        test = _instance_test(node)
        fused = _fused_comparison(node, test)
        if fused is not None:
            return fused

        def comparison(entity: Entity) -> bool:
            attrs = entity.get("attrs")
            instances = attrs.get(attr) if isinstance(attrs, dict) else None
            if not isinstance(instances, list):
                return False
            if len(instances) == 1:
                return test(instances[0])
            return any(test(i) for i in instances)

        return comparison
    if isinstance(node, Exists):
        from broker.query.evaluator import _exists

        return lambda entity: _exists(entity, node)
    if isinstance(node, And):
        preds = [compile_q(n) for n in node.items]  # type: ignore[arg-type]
        if len(preds) == 2:
            first, second = preds
            return lambda entity: first(entity) and second(entity)
        return lambda entity: all(p(entity) for p in preds)
    if isinstance(node, Or):
        preds = [compile_q(n) for n in node.items]  # type: ignore[arg-type]
        return lambda entity: any(p(entity) for p in preds)
    raise TypeError(f"not a q node: {node!r}")
