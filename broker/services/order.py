"""``orderBy`` (NGSI-LD v1.9 clause 4.23): sort query answers by entity members and attribute values.

``orderBy=name;desc,name.subProperty,createdAt``: each item is ``id``, ``type``, ``createdAt``,
``modifiedAt``, an attribute (its value), or ``attribute.member`` where member is a sub-attribute or
``createdAt`` / ``modifiedAt`` / ``observedAt`` / ``unitCode`` / ``datasetId``; ``;asc`` (default) or
``;desc``. Entities lacking the value come last either way; values of different JSON types sort by
type first (null, booleans, numbers, strings, then the rest by their JSON text), so any mix is ordered.
Without ``orderBy`` the store's own (createdAt, id) order stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..entities.expand import VALUE_MEMBERS, check_name
from ..errors import BadRequestData
from ..jsonld.termmap import TermMap

_ENTITY_MEMBERS = ("id", "type", "createdAt", "modifiedAt")
_INSTANCE_MEMBERS = ("createdAt", "modifiedAt", "observedAt", "unitCode", "datasetId")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``orderBy`` item: an entity member, or an attribute IRI with an optional member / sub-attribute."""

    member: str | None
    attr: str | None = None
    sub: str | None = None       # instance member name or sub-attribute IRI
    sub_is_member: bool = False
    descending: bool = False


def parse_order_by(raw: str | None, tm: TermMap) -> list[OrderKey] | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise BadRequestData("orderBy must not be empty")
    keys: list[OrderKey] = []
    for item in raw.split(","):
        path, _, direction = item.strip().partition(";")
        direction = direction.strip().lower() or "asc"
        if direction not in ("asc", "desc"):
            raise BadRequestData(f"orderBy direction must be asc or desc; got {direction!r}")
        desc = direction == "desc"
        path = path.strip()
        if not path:
            raise BadRequestData("orderBy has an empty item")
        if path in _ENTITY_MEMBERS:
            keys.append(OrderKey(path, descending=desc))
            continue
        attr, _, sub = path.partition(".")
        attr_iri = tm.expand(check_name(attr, "orderBy attribute"))
        if not sub:
            keys.append(OrderKey(None, attr_iri, descending=desc))
        elif sub in _INSTANCE_MEMBERS:
            keys.append(OrderKey(None, attr_iri, sub, True, desc))
        else:
            keys.append(OrderKey(None, attr_iri, tm.expand(check_name(sub, "orderBy sub-attribute")),
                                 False, desc))
    return keys


def _value(inst: dict[str, Any]) -> Any:
    for member in VALUE_MEMBERS:
        if member in inst:
            return inst[member]
    return _MISSING


def _extract(entity: dict[str, Any], key: OrderKey) -> Any:
    if key.member is not None:
        value = entity.get(key.member, _MISSING)
        return sorted(value) if key.member == "type" and isinstance(value, list) else value
    instances = entity.get("attrs", {}).get(key.attr or "")
    if not instances:
        return _MISSING
    inst = min(instances, key=lambda i: "datasetId" in i)  # the default instance first
    if key.sub is None:
        return _value(inst)
    if key.sub_is_member:
        return inst.get(key.sub, _MISSING)
    sub = inst.get("subs", {}).get(key.sub)
    return _value(sub) if sub is not None else _MISSING


def _rank(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def sort_entities(entities: list[dict[str, Any]], keys: list[OrderKey]) -> None:
    """Sort in place; stable, so equal keys keep the store's (createdAt, id) order."""
    for key in reversed(keys):
        present = [(e, _extract(e, key)) for e in entities]
        have = [(e, v) for e, v in present if v is not _MISSING]
        have.sort(key=lambda ev: _rank(ev[1]), reverse=key.descending)
        entities[:] = [e for e, _ in have] + [e for e, v in present if v is _MISSING]
