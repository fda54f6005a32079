"""A small pure-Python model of MongoDB query matching, for testing the filter compiler only.

Covers the operators the compiler emits (``$and $or $nor $not $eq $ne $gt $gte $lt $lte $in $nin
$exists $regex $elemMatch $all $size``) with MongoDB's dotted-path array traversal, type brackets
(a boolean is not a number) and "missing matches negations" rules.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any


def matches(query: dict[str, Any], doc: Any) -> bool:
    """Whether ``doc`` satisfies the MongoDB ``query`` document."""
    if not isinstance(doc, dict):
        return False
    for key, cond in query.items():
        if key == "$and":
            ok = all(matches(q, doc) for q in cond)
        elif key == "$or":
            ok = any(matches(q, doc) for q in cond)
        elif key == "$nor":
            ok = not any(matches(q, doc) for q in cond)
        elif key.startswith("$"):
            raise ValueError(f"unsupported top-level operator {key}")
        else:
            ok = _field(_resolve(doc, key.split(".")), cond)
        if not ok:
            return False
    return True


def _resolve(doc: Any, parts: list[str]) -> list[Any]:
    """Values reached by a dotted path; arrays are traversed one level (not arrays of arrays)."""
    current = [doc]
    for part in parts:
        found: list[Any] = []
        for item in current:
            if isinstance(item, dict):
                if part in item:
                    found.append(item[part])
            elif isinstance(item, list):
                if part.isdigit() and int(part) < len(item):
                    found.append(item[int(part)])
                found.extend(e[part] for e in item if isinstance(e, dict) and part in e)
        current = found
    return current


def _expand(values: list[Any]) -> list[Any]:
    """A field holding an array matches through the array itself and through each element."""
    out: list[Any] = []
    for v in values:
        out.append(v)
        if isinstance(v, list):
            out.extend(v)
    return out


def _is_operator_doc(cond: Any) -> bool:
    return isinstance(cond, dict) and bool(cond) and all(k.startswith("$") for k in cond)


def _field(values: list[Any], cond: Any) -> bool:
    if _is_operator_doc(cond):
        return all(_operator(op, arg, values) for op, arg in cond.items())
    return _operator("$eq", cond, values)


def _bracket(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def equal(a: Any, b: Any) -> bool:
    """BSON equality: no cross-type equality except between numeric types."""
    if _bracket(a) != _bracket(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    return a == b


def _ordered(a: Any, b: Any, op: str) -> bool:
    if _bracket(a) != _bracket(b) or _bracket(a) not in ("number", "string", "bool"):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


@lru_cache(maxsize=512)
def python_regex(pattern: str) -> re.Pattern[str]:
    """Compile a PCRE/RE2 pattern with Python: only ``\\z`` (absolute end) needs translating."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append("\\Z" if pattern[i + 1] == "z" else pattern[i:i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return re.compile("".join(out))


def _operator(op: str, arg: Any, values: list[Any]) -> bool:
    if op == "$eq":
        return any(equal(v, arg) for v in _expand(values))
    if op == "$ne":
        return not _operator("$eq", arg, values)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return any(_ordered(v, arg, op) for v in _expand(values))
    if op == "$in":
        return any(equal(v, a) for v in _expand(values) for a in arg)
    if op == "$nin":
        return not _operator("$in", arg, values)
    if op == "$exists":
        return bool(values) == bool(arg)
    if op == "$regex":
        rx = python_regex(arg)
        return any(isinstance(v, str) and rx.search(v) is not None for v in _expand(values))
    if op == "$not":
        return not _field(values, arg)
    if op == "$all":
        return all(_operator("$eq", a, values) for a in arg)
    if op == "$size":
        return any(isinstance(v, list) and len(v) == arg for v in values)
    if op == "$elemMatch":
        for v in values:
            if not isinstance(v, list):
                continue
            for elem in v:
                if _is_operator_doc(arg):
                    if all(_operator(o, a, [elem]) for o, a in arg.items()):
                        return True
                elif matches(arg, elem):
                    return True
        return False
    raise ValueError(f"unsupported operator {op}")
