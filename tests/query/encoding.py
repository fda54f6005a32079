"""Test-local encoder of a stored entity into the MongoDB document form the compiler targets.

Mirrors ``broker.store.codec`` as specified (key encoding, nested-array wrapping, ``%bb`` boxes and
``attrNames``) without importing it, so the compiler's tests stand on their own.
"""

from __future__ import annotations

from typing import Any


def encode_key(key: str) -> str:
    if not key:
        return "%_"
    key = key.replace("%", "%25").replace(".", "%2E")
    return "%24" + key[1:] if key.startswith("$") else key


def encode_value(value: Any) -> Any:
    """Encode compound keys; wrap arrays directly inside arrays as ``{"%a": [...]}``."""
    if isinstance(value, dict):
        return {encode_key(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [{"%a": encode_value(v)} if isinstance(v, list) else encode_value(v) for v in value]
    return value


def _positions(coords: Any) -> list[list[float]]:
    if isinstance(coords, list) and coords and isinstance(coords[0], int | float):
        return [coords]
    if isinstance(coords, list):
        return [p for c in coords for p in _positions(c)]
    return []


def bbox(geojson: Any) -> dict[str, float] | None:
    if not isinstance(geojson, dict):
        return None
    points = _positions(geojson.get("coordinates"))
    if not points:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return {"x0": min(xs), "y0": min(ys), "x1": max(xs), "y1": max(ys)}


def encode_instance(instance: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in instance.items():
        if key == "subs":
            out["subs"] = {encode_key(k): encode_instance(v) for k, v in val.items()}
        else:
            out[key] = encode_value(val)
    if instance.get("type") == "GeoProperty":
        box = bbox(instance.get("value"))
        if box is not None:
            out["%bb"] = box
    return out


def encode_entity(entity: dict[str, Any]) -> dict[str, Any]:
    """The MongoDB document of a stored entity."""
    doc: dict[str, Any] = {"_id": entity["id"]}
    for key, val in entity.items():
        if key not in ("id", "attrs"):
            doc[key] = val
    attrs = entity.get("attrs", {})
    doc["attrNames"] = [name for name, insts in attrs.items() if insts]
    doc["attrs"] = {encode_key(name): [encode_instance(i) for i in insts] for name, insts in attrs.items()}
    return doc
