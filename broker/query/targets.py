"""What an attribute path designates inside a stored attribute instance.

Shared by the evaluator and the MongoDB compiler so that both read exactly the same members: the
evaluator resolves these paths with MongoDB's array-traversal rules, which is what makes an
``exact`` pushed-down filter possible at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from broker.query.ast import AttrPath, ScopeTerm
from broker.query.regex import escape_text

RelPath = tuple[str, ...]

# Members holding the comparable content of each attribute type; "value.@value" unwraps typed
# literals such as {"@type": "DateTime", "@value": "..."}. languageMap is handled separately since
# its keys are not known in advance.
VALUE_MEMBERS: tuple[RelPath, ...] = (
    ("value",), ("value", "@value"), ("object",), ("vocab",), ("json",), ("valueList",), ("objectList",))
LANGUAGE_MAP = "languageMap"


def sub_prefix(path: AttrPath) -> RelPath:
    """Instance-relative prefix reaching the (nested) sub-attribute instance."""
    return tuple(x for sub in path.subs for x in ("subs", sub))


@lru_cache(maxsize=4096)
def value_paths(path: AttrPath) -> tuple[tuple[RelPath, ...], RelPath | None]:
    """Instance-relative paths compared by a q term, and the languageMap path if it applies."""
    prefix = sub_prefix(path)
    if path.member:
        return (prefix + (path.member,),), None
    if path.keys:  # a compound value's keys; of a LanguageProperty, its language tag (``name[pt]``)
        return (prefix + ("value",) + path.keys, prefix + ("json",) + path.keys,
                prefix + (LANGUAGE_MAP,) + path.keys), None
    return tuple(prefix + m for m in VALUE_MEMBERS), prefix + (LANGUAGE_MAP,)


@lru_cache(maxsize=4096)
def existence_paths(path: AttrPath) -> tuple[RelPath, ...]:
    """Instance-relative paths whose presence makes a bare-attribute term true (empty: any instance)."""
    prefix = sub_prefix(path)
    if path.member:
        return (prefix + (path.member,),)
    if path.keys:
        return (prefix + ("value",) + path.keys, prefix + ("json",) + path.keys,
                prefix + (LANGUAGE_MAP,) + path.keys)
    return (prefix,) if prefix else ()


def resolve(obj: Any, path: RelPath) -> list[Any]:
    """Values at ``path`` with MongoDB semantics: arrays on the way are traversed one level."""
    current = [obj]
    for key in path:
        found: list[Any] = []
        for item in current:
            if isinstance(item, dict):
                if key in item:
                    found.append(item[key])
            elif isinstance(item, list):
                found.extend(e[key] for e in item if isinstance(e, dict) and key in e)
        if not found:
            return found
        current = found
    return current


def flatten_values(raws: list[Any], lang_maps: list[Any]) -> list[Any]:
    """Comparable values: lists count element-wise (one level), languageMap texts all count."""
    values: list[Any] = []
    for raw in raws:
        if isinstance(raw, list):
            values.extend(raw)
        else:
            values.append(raw)
    for lang_map in lang_maps:
        if isinstance(lang_map, dict):
            for text in lang_map.values():
                if isinstance(text, str):
                    values.append(text)
                elif isinstance(text, list):
                    values.extend(t for t in text if isinstance(t, str))
    return values


def scope_regex(term: ScopeTerm, end: str) -> str:
    """Regex of a scope pattern; ``end`` is ``\\Z`` for Python and ``\\z`` for PCRE/RE2."""
    body = "".join("/" + ("[^/]+" if s == "+" else escape_text(s)) for s in term.segments)
    return "^" + body + (f"(?:/|{end})" if term.descendants else end)
