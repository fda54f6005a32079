"""How entities are written into MongoDB so that both MongoDB and FerretDB accept them.

FerretDB (and DocumentDB) reject keys containing ``.`` or starting with ``$`` and arrays nested
directly in arrays. Attribute names are IRIs full of dots, and GeoJSON polygons are nested
arrays, so the stored form escapes keys (``%`` -> ``%25``, ``.`` -> ``%2E``, leading ``$`` ->
``%24``; reversible, unlike Orion-LD's ``.`` -> ``=``), wraps inner arrays as ``{"%a": [...]}``
and adds to each GeoProperty instance a bounding box ``%bb`` that queries use as a prefilter.
"""

from __future__ import annotations

import re
from typing import Any

from shapely.geometry import shape

from ..errors import BadRequestData

NESTED = "%a"
BBOX = "%bb"
_DECODE = re.compile(r"%(25|2E|24|00)")
_DECODE_MAP = {"25": "%", "2E": ".", "24": "$", "00": "\x00"}


def encode_key(key: str) -> str:
    if not key:
        return "%_"
    key = key.replace("%", "%25").replace(".", "%2E")
    if "\x00" in key:  # BSON keys are C strings (a JSON object key in a value may hold NUL)
        key = key.replace("\x00", "%00")
    if key[0] == "$":
        key = "%24" + key[1:]
    return key


def decode_key(key: str) -> str:
    if key == "%_":
        return ""
    if "%" not in key:
        return key
    return _DECODE.sub(lambda m: _DECODE_MAP[m.group(1)], key)


def encode_value(value: Any, in_array: bool = False) -> Any:
    if isinstance(value, dict):
        return {encode_key(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [encode_value(v, True) for v in value]
        return {NESTED: items} if in_array else items
    if type(value) is int and not -(2**63) <= value < 2**63:
        # BSON has no larger integers; refused here rather than as a driver error mid-write
        raise BadRequestData(f"Integer {value} does not fit 64 signed bits")
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and NESTED in value:
            return [decode_value(v) for v in value[NESTED]]
        return {decode_key(k): decode_value(v) for k, v in value.items() if k != BBOX}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def bbox_of(geojson: Any) -> dict[str, float] | None:
    """Bounding box of a GeoJSON geometry, or None when it is not a valid geometry."""
    if isinstance(geojson, dict) and geojson.get("type") == "Point":
        c = geojson.get("coordinates")
        if isinstance(c, list) and len(c) >= 2 and all(isinstance(v, int | float) for v in c[:2]):
            return {"x0": c[0], "y0": c[1], "x1": c[0], "y1": c[1]}
    try:
        x0, y0, x1, y1 = shape(geojson).bounds
    except Exception:  # noqa: BLE001 - any malformed geometry simply gets no box
        return None
    if x0 != x0:  # NaN: empty geometry
        return None
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1}


def _encode_instance(inst: dict[str, Any]) -> dict[str, Any]:
    out = encode_value(inst)
    if inst.get("type") == "GeoProperty":
        box = bbox_of(inst.get("value"))
        if box is not None:
            out[BBOX] = box
    return out


def encode_entity(entity: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": entity["id"]}
    for k, v in entity.items():
        if k == "id":
            continue
        if k == "attrs":
            doc["attrs"] = {encode_key(name): [_encode_instance(i) for i in insts]
                            for name, insts in v.items()}
            doc["attrNames"] = list(v)
        else:
            doc[encode_key(k)] = encode_value(v)
    return doc


def decode_entity(doc: dict[str, Any]) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": doc["_id"]}
    for k, v in doc.items():
        if k in ("_id", "attrNames"):
            continue
        if k == "attrs":
            entity["attrs"] = {decode_key(name): [decode_value(i) for i in insts] for name, insts in v.items()}
        else:
            entity[decode_key(k)] = decode_value(v)
    return entity
