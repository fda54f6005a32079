"""Measures → NGSI-LD entities, reproducing iotagent-node-lib's ``entities-NGSI-LD.js`` (``sendUpdateValueNgsiLD``).

The result is the body of ``POST /ngsi-ld/v1/entityOperations/upsert/?options=update`` without the
``@context`` (the caller adds it): one or more normalized entities per measure group, in arrival order (the
same id may repeat in a multimeasure; the broker applies them in order).

Rules kept from the lib: attributes are processed static → lazy → active (array order), each expression
sees the results of the previous ones; measures matching no provisioned attribute are appended unless
``explicitAttrs``; ``skipValue`` (default ``null``) drops an attribute; ``id``/``type`` measures become
``measure_id``/``measure_type``; an ``entity_name`` on an attribute routes it to another entity; ids not
starting ``urn:ngsi-ld:`` become ``urn:ngsi-ld:<type>:<name>``; the type table of ``convertAttrNGSILD``
(geo strings ``"a, b"`` → ``coordinates: [a, b]`` with no lat/lon swap, Relationship → ``object`` …).

Timestamps: with the timestamp flag on, every attribute gets ``observedAt`` = the ``TimeInstant`` of its
entity (a mapped attribute, else the measure) or the server time; with it off, ``TimeInstant`` is dropped.

Deliberate differences (documented in the tests): a ``TimeInstant`` measure also stamps the other entities
of a multi-entity group and still counts when ``explicitAttrs`` hides it (``doc/api.md``: "TimeInstant
attribute will be also included if enabled"; the LD code falls back to server time); expressions over absent
variables give ``null`` and are skipped (the lib would send ``"Humidity NaN ..."``); ``Boolean`` turns the string ``"false"`` into
``false`` (JavaScript ``!!"false"`` is ``true``); a JEXL ``explicitAttrs`` evaluating to ``null`` counts as
``false`` instead of dropping every attribute; invalid coordinates raise ``BAD_GEOCOORDINATES`` instead of
sending ``null`` coordinates.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from agents.clock import iso_of
from agents.errors import BadGeocoordinates, BadTimestamp, InvalidExpression, TypeNotFound
from agents.jexl import (
    UNDEFINED,
    apply_expression,
    iso_string,
    js_date,
    js_json_loads,
    js_parse_float,
    js_parse_int,
    strict_equals,
    to_js_string,
    to_number,
    truthy,
)

NGSI_LD_URN = "urn:ngsi-ld:"
TIMESTAMP_ATTRIBUTE = "TimeInstant"
MEASURE_PREFIX = "measure_"
DEFAULT_ATTRIBUTE_TYPE = "Text"
COMMAND_STATUS_TYPE = "commandStatus"
COMMAND_RESULT_TYPE = "commandResult"

DataType = Literal["none", "@type", "valueType"]


# --------------------------------------------------------------------------------------------------
# Effective device (device fields falling back to its config group)
# --------------------------------------------------------------------------------------------------


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(exclude_none=True)
    raise TypeError(f"cannot read provisioning data from {type(obj).__name__}")


def _attr_dicts(items: Any) -> list[dict[str, Any]]:
    out = []
    for item in items or []:
        d = _as_dict(item)
        out.append({k: v for k, v in d.items() if v is not None or k == "skipValue"})
    return out


def _with_default_ids(attrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for a in attrs:
        if not a.get("object_id") and a.get("name"):
            a["object_id"] = a["name"]
        if not a.get("name") and a.get("object_id"):
            a["name"] = a["object_id"]
    return attrs


def _merge_arrays(device: list[dict[str, Any]], group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lib's ``mergeArrays``: group entries are added unless the device already maps that id/name."""
    dev_ids = {a.get("object_id") for a in device}
    grp_ids = [a.get("object_id") for a in group]
    by_id = [a for a in group if a.get("object_id") and a.get("object_id") not in dev_ids]
    dev_names = {a.get("name") for a in device}
    by_name = [
        a for a in group
        if a.get("name") not in dev_names and (not a.get("object_id") or a.get("object_id") not in grp_ids)
    ]
    return device + by_id + by_name


@dataclass
class DeviceProfile:
    """What the mapping needs to know about a device, group defaults already applied."""

    device_id: str
    entity_type: str
    entity_name: str | None = None
    service: str = ""
    subservice: str = "/"
    attributes: list[dict[str, Any]] = field(default_factory=list)
    lazy: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    static_attributes: list[dict[str, Any]] = field(default_factory=list)
    explicit_attrs: bool | str | list[Any] = False
    entity_name_exp: str | None = None
    timestamp: bool = True
    timezone: str | None = None

    @property
    def name(self) -> str:
        """Entity name before the URN rewrite (``entity_name``, else the device id)."""
        return self.entity_name or self.device_id

    @property
    def entity_id(self) -> str:
        return ngsi_ld_id(self.name, self.entity_type)


def effective_device(
    device: Any,
    group: Any = None,
    *,
    service: str | None = None,
    subservice: str | None = None,
    timestamp_default: bool = True,
    explicit_attrs_default: bool | str = False,
) -> DeviceProfile:
    """Merge a device with its config group as ``mergeDeviceWithConfiguration`` does.

    Attribute lists merge (device entries win by object_id/name); ``explicitAttrs``, ``timestamp`` and
    ``timezone`` prefer the device; ``entityNameExp`` is a group setting. ``device`` may be ``None`` for
    an autoprovisioned device known only by id (pass ``{"device_id": ...}``).
    """
    dev = _as_dict(device)
    grp = _as_dict(group)
    device_id = dev.get("device_id") or dev.get("id")
    if not device_id:
        raise TypeNotFound(None)
    entity_type = dev.get("entity_type") or grp.get("entity_type") or dev.get("type") or grp.get("type")
    if not entity_type:
        raise TypeNotFound(device_id)

    def merged(key: str, defaults_ids: bool) -> list[dict[str, Any]]:
        d = _attr_dicts(dev.get(key))
        g = _attr_dicts(grp.get(key))
        if defaults_ids:
            d, g = _with_default_ids(d), _with_default_ids(g)
        if d and g:
            return _merge_arrays(d, g)
        return d or g

    def pick(key: str, default: Any) -> Any:
        if dev.get(key) is not None:
            return dev[key]
        if grp.get(key) is not None:
            return grp[key]
        return default

    return DeviceProfile(
        device_id=device_id,
        entity_type=entity_type,
        entity_name=dev.get("entity_name"),
        service=service if service is not None else dev.get("service") or grp.get("service") or "",
        subservice=subservice if subservice is not None else (
            dev.get("service_path") or dev.get("subservice") or grp.get("subservice") or "/"
        ),
        attributes=merged("attributes", True),
        lazy=merged("lazy", True),
        commands=merged("commands", True),
        static_attributes=merged("static_attributes", False),
        explicit_attrs=pick("explicitAttrs", explicit_attrs_default),
        entity_name_exp=grp.get("entityNameExp") or dev.get("entityNameExp") or None,
        timestamp=bool(pick("timestamp", timestamp_default)),
        timezone=pick("timezone", None),
    )


def ngsi_ld_id(name: str, entity_type: str) -> str:
    """``formatAsNGSILD``: names that are not NGSI-LD URNs become ``urn:ngsi-ld:<type>:<name>``."""
    name = str(name)
    return name if name.startswith(NGSI_LD_URN) else f"{NGSI_LD_URN}{entity_type}:{name}"


# --------------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------------

_ISO8601_RE = re.compile(
    r"^(?P<date>[+-]\d{6}-\d{2}-\d{2}|\d{4}-\d{2}-\d{2}|\d{4}-\d{2}|\d{8}|\d{4})"
    r"(?:[T ](?P<time>\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?|\d{2}(?:\d{2}(?:\d{2}(?:[.,]\d+)?)?)?)"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_iso8601(value: Any) -> datetime | None:
    """Strict ISO 8601 (moment's ``ISO_8601`` strict mode, calendar dates) → aware UTC datetime."""
    if not isinstance(value, str):
        return None
    m = _ISO8601_RE.match(value)
    if not m:
        return None
    date = m.group("date").replace("-", "") if not m.group("date").startswith(("+", "-")) else None
    try:
        if date is None:
            y, mo, d = int(m.group("date")[:7]), int(m.group("date")[8:10]), int(m.group("date")[11:13])
        else:
            y, mo, d = int(date[:4]), int(date[4:6] or 1), int(date[6:8] or 1)
        t = (m.group("time") or "").replace(":", "")
        frac = ""
        for sep in (".", ","):
            if sep in t:
                t, frac = t.split(sep)
        hh, mi, ss = int(t[:2] or 0), int(t[2:4] or 0), int(t[4:6] or 0)
        micro = int(frac[:6].ljust(6, "0")) if frac else 0
        if hh == 24 and mi == ss == micro == 0:
            dt = datetime(y, mo, d, tzinfo=UTC) + timedelta(days=1)
        else:
            dt = datetime(y, mo, d, hh, mi, ss, micro, tzinfo=UTC)
    except ValueError:
        return None
    tz = m.group("tz")
    if tz and tz != "Z":
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        dt = dt - offset if tz[0] == "+" else dt + offset
    return dt


def observed_at(value: datetime) -> str:
    """``observedAt`` as the lib writes it: UTC, milliseconds, ``Z`` (``timezone`` does not show in LD)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return iso_of(value)


# --------------------------------------------------------------------------------------------------
# Attribute conversion (convertAttrNGSILD)
# --------------------------------------------------------------------------------------------------

_NO_VALUE_TYPE = {
    "property", "geoproperty", "point", "geo:point", "geo:json", "linestring", "geo:linestring",
    "polygon", "geo:polygon", "multipoint", "geo:multipoint", "multilinestring", "geo:multilinestring",
    "multipolygon", "geo:multipolygon", "relationship", "languageproperty", "vocabproperty",
    "jsonproperty", "listproperty", "listrelationship",
}
_GEO_TYPES = {
    "geoproperty": "Point", "point": "Point", "geo:point": "Point", "geo:json": "Point",
    "linestring": "LineString", "geo:linestring": "LineString",
    "polygon": "Polygon", "geo:polygon": "Polygon",
    "multipoint": "MultiPoint", "geo:multipoint": "MultiPoint",
    "multilinestring": "MultiLineString", "geo:multilinestring": "MultiLineString",
    "multipolygon": "MultiPolygon", "geo:multipolygon": "MultiPolygon",
}
_SPECIAL = {
    "relationship": ("Relationship", "object"),
    "languageproperty": ("LanguageProperty", "languageMap"),
    "vocabproperty": ("VocabProperty", "vocab"),
    "jsonproperty": ("JsonProperty", "json"),
    "listproperty": ("ListProperty", "listValue"),
    "listrelationship": ("ListRelationship", "listObject"),
}


class _Drop(Exception):
    """The attribute is not sent (null/NaN value or a failed cast)."""


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _js_isnan(v: Any) -> bool:
    n = to_number(v)
    return n != n


def _flatten_lnglats(value: Any) -> list[float]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[float] = []
    for item in items:
        if isinstance(item, list | tuple):
            out.extend(_flatten_lnglats(item))
        elif isinstance(item, str) and "," in item:
            out.extend(_flatten_lnglats(item))
        else:
            num = js_parse_float(item)
            if num is None:
                raise ValueError(f"not a coordinate: {item!r}")
            out.append(num)
    return out


def geo_value(geo_type: str, value: Any) -> Any:
    """``getLngLats``: ``"23, 12.5"`` → ``{"type": "Point", "coordinates": [23, 12.5]}`` (order kept).

    Objects (already GeoJSON) pass through; an odd number of coordinates raises ``ValueError``.
    """
    if not isinstance(value, str | list | tuple):
        return value
    coords = _flatten_lnglats(value)
    if len(coords) == 2:
        return {"type": geo_type, "coordinates": coords}
    if len(coords) % 2 != 0:
        raise ValueError("odd number of coordinates")
    return {"type": geo_type, "coordinates": [[coords[i], coords[i + 1]] for i in range(0, len(coords), 2)]}


def _cast(kind: str, value: Any) -> Any:
    if kind == "boolean":
        if isinstance(value, str) and value.strip().lower() == "false":
            return False
        return truthy(value)
    if kind in ("float", "integer", "number"):
        if _js_isnan(value) or isinstance(value, list | dict):
            raise _Drop
        text = to_js_string(value)
        if kind == "float" or (kind == "number" and "." in text):
            num = js_parse_float(text)
        else:
            num = js_parse_int(text)
        if num is None:
            raise _Drop
        return num
    if kind in ("object", "array"):
        if isinstance(value, str):
            try:
                return js_json_loads(value)
            except ValueError:
                return value
        return value
    if kind in ("datetime", "date", "time"):
        dt = js_date(("2000-01-01 " + to_js_string(value)) if kind == "time" else value)
        if dt is None:
            raise _Drop
        if kind == "datetime":
            return iso_string(dt)
        return dt.strftime("%Y-%m-%d") if kind == "date" else dt.strftime("%H:%M:%S")
    return value


def convert_attribute(
    attr_type: str | None,
    value: Any,
    metadata: Mapping[str, Any] | None = None,
    *,
    observed: str | None = None,
    data_type: DataType = "none",
) -> dict[str, Any] | None:
    """One NGSI-LD attribute from ``(type, value, metadata)``; ``None`` when the lib would not send it.

    Raises ``ValueError`` for unusable geo coordinates (the caller reports ``BAD_GEOCOORDINATES``).
    """
    if value is None or value is UNDEFINED or _is_nan(value):
        return None
    t = attr_type or DEFAULT_ATTRIBUTE_TYPE
    kind = t.lower()
    obj: dict[str, Any] = {"type": "Property"}
    if kind in _GEO_TYPES:
        obj = {"type": "GeoProperty", "value": geo_value(_GEO_TYPES[kind], value)}
    elif kind in _SPECIAL:
        ld_type, key = _SPECIAL[kind]
        obj = {"type": ld_type, key: value}
    else:
        try:
            obj["value"] = _cast(kind, value)
        except _Drop:
            return None
    if kind not in _NO_VALUE_TYPE:
        if data_type == "@type":
            obj["value"] = {"@type": t, "@value": obj["value"]}
        elif data_type == "valueType":
            obj["valueType"] = t
    for key, md in (metadata or {}).items():
        md_map = md if isinstance(md, Mapping) else {"value": md}
        if key == TIMESTAMP_ATTRIBUTE:
            continue
        if key == "unitCode":
            if md_map.get("value") is not None:
                obj["unitCode"] = md_map.get("value")
            continue
        sub = convert_attribute(md_map.get("type") or "Property", md_map.get("value"), data_type=data_type)
        if sub is not None:
            obj[key] = sub
    if observed is not None:
        obj["observedAt"] = observed
    return obj


# --------------------------------------------------------------------------------------------------
# The mapping
# --------------------------------------------------------------------------------------------------


@dataclass
class _Attr:
    name: str
    type: str | None
    value: Any
    object_id: str | None = None
    metadata: dict[str, Any] | None = None
    skip_value: Any = None
    provisioned: bool = True


def _eval(expression: str, ctx: dict[str, Any]) -> Any:
    """An attribute expression: invalid or failing ones give ``None`` (the lib logs and nulls them)."""
    try:
        value = apply_expression(expression, ctx)
    except InvalidExpression:
        return None
    return None if _is_nan(value) else value


def _explicit(setting: Any, ctx: dict[str, Any]) -> bool | list[Any]:
    if isinstance(setting, bool):
        return setting
    if isinstance(setting, list):
        return setting
    if isinstance(setting, str) and setting.strip():
        try:
            result = apply_expression(setting, ctx)
        except InvalidExpression:
            return False
        return result if isinstance(result, bool | list) else False
    return False


def _passes_explicit(explicit: bool | list[Any], attr: _Attr) -> bool:
    if isinstance(explicit, bool):
        return True
    if attr.name in explicit:
        return True
    return attr.provisioned and any(
        isinstance(item, Mapping) and item.get("object_id") == attr.object_id for item in explicit
    )


def _rename_measures(measures: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in measures.items():
        out[MEASURE_PREFIX + k if k in ("id", "type") else k] = v
    return out


def _context_set(ctx: dict[str, Any], key: str, value: Any) -> None:
    if value is UNDEFINED:
        ctx.pop(key, None)
    else:
        ctx[key] = value


def build_entities(
    device: DeviceProfile,
    measures: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    strict_timestamp: bool = True,
    data_type: DataType = "none",
) -> list[dict[str, Any]]:
    """NGSI-LD entities (without ``@context``) for one measure group or a multimeasure list.

    ``now`` is the server time used for ``observedAt`` when the timestamp flag is on and no valid
    ``TimeInstant`` came with the measures (with the flag off no ``observedAt`` is written). An invalid ``TimeInstant`` raises ``BAD_TIMESTAMP`` (the LD code
    path); with ``strict_timestamp=False`` it falls back to server time (what ``doc/api.md`` describes).
    Bad coordinates raise ``BAD_GEOCOORDINATES``. ``data_type`` is ``server.ldSupport.dataType``.
    """
    groups: Sequence[Mapping[str, Any]] = [measures] if isinstance(measures, Mapping) else measures
    server_now = now or datetime.now(UTC)
    plan = _plan(device)
    payload: list[dict[str, Any]] = []
    for group in groups:
        if plan is not None:
            payload.extend(_build_plain(device, plan, group, server_now, strict_timestamp, data_type))
        else:
            payload.extend(_build_group(device, group, server_now, strict_timestamp, data_type))
    return payload


_PLAIN_KEYS = frozenset(("name", "object_id", "type", "skipValue"))
_RESERVED = ("id", "type", TIMESTAMP_ATTRIBUTE)


def _plan(device: DeviceProfile) -> list[tuple[str, str, Any]] | None:
    """``(object_id, name, type)`` of a device whose attributes are plain renames (no statics, lazy,
    expressions, metadata, links, entity name expression or attribute list in ``explicitAttrs``): the
    common case, mapped by :func:`_build_plain` without the expression context. None otherwise."""
    if (device.static_attributes or device.lazy or device.entity_name_exp
            or not isinstance(device.explicit_attrs, bool)):
        return None
    plan = []
    for raw in device.attributes:
        if not _PLAIN_KEYS.issuperset(raw) or raw.get("skipValue"):
            return None
        name = raw.get("name") or raw.get("object_id")
        if not name:
            continue
        object_id = raw.get("object_id") or name
        if name in _RESERVED or object_id in _RESERVED:
            return None
        plan.append((object_id, name, raw.get("type")))
    return plan


def _build_plain(
    device: DeviceProfile,
    plan: list[tuple[str, str, Any]],
    raw_measures: Mapping[str, Any],
    server_now: datetime,
    strict_timestamp: bool,
    data_type: DataType,
) -> list[dict[str, Any]]:
    """What :func:`_build_group` gives for a :func:`_plan` device (the tests compare both)."""
    measures = _rename_measures(raw_measures)
    entity_name, etype = device.name, device.entity_type
    attrs: list[tuple[str, Any, Any]] = []  # (name, type, value) of the attributes written
    passing = False
    leftovers = dict(measures)
    for object_id, name, atype in plan:
        if object_id in measures:
            leftovers.pop(object_id, None)
            value = measures[object_id]
            if not strict_equals(value, None):  # provisioned attributes skip null (skipValue's default)
                attrs.append((name, atype, value))
                passing = True
    if device.explicit_attrs is False:
        for k, v in leftovers.items():
            passing = True
            if k != TIMESTAMP_ATTRIBUTE:
                attrs.append((k, DEFAULT_ATTRIBUTE_TYPE, v))
    observed: str | None = None
    if device.timestamp:
        ts = _timestamp(measures.get(TIMESTAMP_ATTRIBUTE, UNDEFINED), entity_name, strict_timestamp)
        observed = observed_at(ts or server_now)
    if not passing:
        return []
    entity: dict[str, Any] = {"id": ngsi_ld_id(entity_name, etype), "type": etype}
    for name, atype, value in attrs:
        try:
            converted = convert_attribute(atype, value, None, observed=observed, data_type=data_type)
        except ValueError:
            raise BadGeocoordinates(value, {"id": entity_name, "type": etype}) from None
        if converted is not None:
            entity[name] = converted
    return [entity]


def _build_group(
    device: DeviceProfile,
    raw_measures: Mapping[str, Any],
    server_now: datetime,
    strict_timestamp: bool,
    data_type: DataType,
) -> list[dict[str, Any]]:
    measures = _rename_measures(raw_measures)
    # private copies, as expressions and links must not reach the cached profile (none to copy: the usual case)
    statics = copy.deepcopy(device.static_attributes) if device.static_attributes else []
    ctx: dict[str, Any] = dict(measures)
    for s in statics:
        if s.get("name"):
            ctx[s["name"]] = s.get("value")
    ctx.update(
        id=device.device_id, type=device.entity_type, service=device.service,
        subservice=device.subservice, entity_name=device.entity_name,
    )

    entity_name = device.name
    if device.entity_name_exp:
        computed = _eval(device.entity_name_exp, ctx)
        if computed not in (None, "", False):
            entity_name = to_js_string(computed)
    ctx["entity_name"] = entity_name

    # {entity name: {entity type: [attrs]}} in first-seen order, the device's own entity first
    entities: dict[str, dict[str, list[_Attr]]] = {entity_name: {device.entity_type: []}}
    leftovers = dict(measures)
    provisioned = statics
    if device.lazy or device.attributes:
        provisioned = statics + copy.deepcopy(device.lazy) + copy.deepcopy(device.attributes)
    for raw in provisioned:
        name = raw.get("name") or raw.get("object_id")
        if not name:
            continue
        object_id = raw.get("object_id") or name
        skip = raw.get("skipValue") if raw.get("skipValue") else None
        target_name, target_type = entity_name, device.entity_type
        if isinstance(raw.get("entity_name"), str) and raw["entity_name"]:
            computed = _eval(raw["entity_name"], ctx)
            target_name = to_js_string(computed) if truthy(computed) else raw["entity_name"]
        if isinstance(raw.get("entity_type"), str) and raw["entity_type"]:
            target_type = raw["entity_type"]

        measured = measures.get(object_id, UNDEFINED)
        _context_set(ctx, name, measured)
        hit, value = False, UNDEFINED
        if raw.get("value") is not None:
            hit, value = True, raw["value"]
        elif object_id in measures:
            hit, value = True, measured
        leftovers.pop(object_id, None)
        expression = raw.get("expression")
        if isinstance(expression, str) and expression:
            hit, value = True, _eval(expression, ctx)
        _context_set(ctx, name, value)

        metadata = raw.get("metadata")
        if isinstance(metadata, Mapping):
            metadata = dict(metadata)
            for md_key, md in list(metadata.items()):
                if isinstance(md, Mapping) and md.get("expression") and md_key != TIMESTAMP_ATTRIBUTE:
                    new_md = {"type": md["type"]} if md.get("type") else {}
                    new_md["value"] = _eval(md["expression"], ctx)
                    metadata[md_key] = new_md
        if hit:
            entities.setdefault(target_name, {}).setdefault(target_type, []).append(
                _Attr(name, raw.get("type"), value, object_id, metadata, skip)
            )

    explicit = _explicit(device.explicit_attrs, ctx)
    if explicit is False:
        entities[entity_name][device.entity_type].extend(
            _Attr(k, DEFAULT_ATTRIBUTE_TYPE, v, provisioned=False, skip_value=UNDEFINED)
            for k, v in leftovers.items()
        )

    group_ts = None
    if device.timestamp:
        group_ts = _timestamp(measures.get(TIMESTAMP_ATTRIBUTE, UNDEFINED), entity_name, strict_timestamp)
    out: list[dict[str, Any]] = []
    main: dict[str, Any] | None = None
    for ename, by_type in entities.items():
        for etype, attrs in by_type.items():
            entity, non_empty = _entity(
                ename, etype, attrs, explicit, device.timestamp, group_ts, server_now, strict_timestamp,
                data_type,
            )
            if non_empty:
                out.append(entity)
                if main is None and ename == entity_name and etype == device.entity_type:
                    main = entity
    if main is not None:
        out.extend(_linked_entities(statics, main))
    return out


def _timestamp(value: Any, entity: str, strict: bool) -> datetime | None:
    if value is UNDEFINED or value is None or value == "":
        return None
    parsed = parse_iso8601(value)
    if parsed is None and strict:
        raise BadTimestamp(value, entity)
    return parsed


def _entity(
    ename: str,
    etype: str,
    attrs: list[_Attr],
    explicit: bool | list[Any],
    timestamp_on: bool,
    group_ts: datetime | None,
    server_now: datetime,
    strict_timestamp: bool,
    data_type: DataType,
) -> tuple[dict[str, Any], bool]:
    passing = [
        a for a in attrs
        if a.name not in ("id", "type")
        and (a.skip_value is UNDEFINED or not strict_equals(a.value, a.skip_value))
        and _passes_explicit(explicit, a)
    ]
    observed: str | None = None
    if timestamp_on:
        ts = group_ts
        ts_attr = next((a for a in attrs if a.name == TIMESTAMP_ATTRIBUTE and a.value not in (None, UNDEFINED)), None)
        if ts_attr is not None:
            ts = _timestamp(ts_attr.value, ename, strict_timestamp) or ts
        observed = observed_at(ts or server_now)

    entity: dict[str, Any] = {"id": ngsi_ld_id(ename, etype), "type": etype}
    for a in passing:
        if a.name == TIMESTAMP_ATTRIBUTE:
            continue
        try:
            converted = convert_attribute(a.type, a.value, a.metadata, observed=observed, data_type=data_type)
        except ValueError:
            raise BadGeocoordinates(a.value, {"id": ename, "type": etype}) from None
        if converted is not None:
            entity[a.name] = converted
    return entity, bool(passing)


def _linked_entities(statics: Iterable[Mapping[str, Any]], main: dict[str, Any]) -> list[dict[str, Any]]:
    """Static attributes with ``link`` also update the linked entity, tagged with a ``providedBy`` link."""
    out = []
    for s in statics:
        link = s.get("link")
        source = main.get(s.get("name", ""))
        if not isinstance(link, Mapping) or not isinstance(source, dict):
            continue
        target_id = source.get("object") or source.get("value")
        if not isinstance(target_id, str):
            continue
        target_type = link.get("type") or target_id.removeprefix(NGSI_LD_URN).split(":")[0]
        rel_name = link.get("name") or "providedBy"
        linked: dict[str, Any] = {"id": target_id, "type": target_type}
        for attr in link.get("attributes") or []:
            if isinstance(main.get(attr), dict):
                # the lib shares the object, so the device's own attribute carries the link too
                main[attr][rel_name] = {"type": "Relationship", "object": main["id"]}
                linked[attr] = main[attr]
        out.append(linked)
    return out


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------

_NO_INFO = object()


def command_attributes(
    command: str,
    status: str,
    info: Any = _NO_INFO,
    *,
    observed: datetime | None = None,
    data_type: DataType = "none",
) -> dict[str, dict[str, Any]]:
    """``<cmd>_status`` (and ``<cmd>_info`` when given) fragments, typed ``commandStatus``/``commandResult``.

    Statuses: ``UNKNOWN`` → ``PENDING`` → ``DELIVERED`` (poll) → ``OK``/``ERROR``; an expired poll command
    ends as ``ERROR`` with info ``EXPIRED``. Merge the result into the device entity for the upsert.
    """
    stamp = observed_at(observed) if observed is not None else None
    out: dict[str, dict[str, Any]] = {}
    status_attr = convert_attribute(COMMAND_STATUS_TYPE, status, observed=stamp, data_type=data_type)
    if status_attr is not None:
        out[f"{command}_status"] = status_attr
    if info is not _NO_INFO:
        info_attr = convert_attribute(COMMAND_RESULT_TYPE, info, observed=stamp, data_type=data_type)
        if info_attr is not None:
            out[f"{command}_info"] = info_attr
    return out


def command_entity(
    device: DeviceProfile,
    command: str,
    status: str,
    info: Any = _NO_INFO,
    *,
    now: datetime | None = None,
    data_type: DataType = "none",
) -> dict[str, Any]:
    """The upsert entity carrying a command's status/info, ``observedAt`` per the device's timestamp flag."""
    stamp = (now or datetime.now(UTC)) if device.timestamp else None
    entity: dict[str, Any] = {"id": device.entity_id, "type": device.entity_type}
    entity.update(command_attributes(command, status, info, observed=stamp, data_type=data_type))
    return entity
