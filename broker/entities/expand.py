"""Validate request bodies and turn them into the stored form (names expanded to IRIs).

The stored form of an entity::

    {"id": str, "type": [IRI, ...], "scope": [str]?, "createdAt": iso, "modifiedAt": iso,
     "attrs": {IRI: [instance, ...]}}          # one instance per datasetId

and of an attribute instance: ``{"type": "Property", "value": ..., "datasetId"?, "observedAt"?,
"unitCode"?, "createdAt", "modifiedAt", "subs"?: {IRI: instance}}`` with ``object``,
``languageMap``, ``vocab``, ``json``, ``valueList`` or ``objectList`` in place of ``value`` for
the other attribute types. Values are kept as sent (not JSON-LD expanded), as Orion-LD does;
``vocab`` values are expanded because they are IRIs.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadRequestData, InvalidRequest
from ..jsonld.termmap import TermMap
from ..timeutil import CHECKED_ISO, normalize_iso

NGSILD_NULL = "urn:ngsi-ld:null"

ATTR_TYPES = {
    "Property": "value",
    "Relationship": "object",
    "GeoProperty": "value",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "VocabularyProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
VALUE_MEMBERS = ("value", "object", "languageMap", "vocab", "json", "valueList", "objectList")
_MEMBER_TO_TYPE = {"value": "Property", "object": "Relationship", "languageMap": "LanguageProperty",
                   "vocab": "VocabProperty", "json": "JsonProperty", "valueList": "ListProperty",
                   "objectList": "ListRelationship"}
# Members of an attribute instance that are not sub-attributes.
INSTANCE_MEMBERS = frozenset({*VALUE_MEMBERS, "type", "datasetId", "observedAt", "unitCode", "createdAt",
                              "modifiedAt", "deletedAt", "instanceId", "objectType", "lang",
                              "previousValue", "previousObject", "previousLanguageMap", "previousVocab",
                              "previousJson", "previousValueList", "previousObjectList", "@context"})
ENTITY_MEMBERS = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt",
                            "@id", "@type"})
GEO_TYPES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                       "GeometryCollection"})

# control characters (NUL above all: MongoDB refuses it in keys) are never part of a URI, name or scope
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`\x00-\x1f\x7f]*$")
_NAME_FORBIDDEN = re.compile(r"[\s<>\"'=;()\\\x00-\x1f\x7f]")
_SCOPE = re.compile(r"^/[^\s/#+\x00-\x1f\x7f]*(/[^\s/#+\x00-\x1f\x7f]+)*$")

MAX_DEPTH = 16
MAX_ATTRIBUTES = 2048  # per entity or fragment: bounded like everything else (design principle 6)
# terms every NGSI-LD core context aliases to JSON-LD keywords (@id, @type)
_KEYWORD_ALIASES = frozenset({"id", "type"})


_SEEN_URIS: set[str] = set()  # URIs already checked: dataset ids and relationship targets recur


def is_uri(value: Any) -> bool:
    if value in _SEEN_URIS if type(value) is str else False:
        return True
    if not (isinstance(value, str) and len(value) <= 2048 and _URI.match(value)):
        return False
    if len(_SEEN_URIS) >= 65536:
        _SEEN_URIS.clear()
    _SEEN_URIS.add(value)
    return True


def check_entity_id(value: Any) -> str:
    if not is_uri(value):
        raise BadRequestData(f"Entity id must be a URI, got {value!r}")
    return value


_VALID_NAMES: set[str] = set()  # names already checked: the same few recur in every request


def check_name(name: Any, what: str = "attribute") -> str:
    """A term or IRI usable as a name; ``@``-names are JSON-LD keywords, never attributes or types."""
    if type(name) is str and name in _VALID_NAMES:  # the type test first: a list or dict is unhashable
        return name
    if (not isinstance(name, str) or not name or len(name) > 512 or _NAME_FORBIDDEN.search(name)
            or name.startswith("@")):
        raise BadRequestData(f"Invalid {what} name {name!r}")
    if len(_VALID_NAMES) < 65536:
        _VALID_NAMES.add(name)
    return name


def expand_types(value: Any, tm: TermMap) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData("Entity type must not be empty")
    out: list[str] = []
    for t in items:
        check_name(t, "entity type")
        iri = tm.expand(t)
        if t in _KEYWORD_ALIASES or not is_uri(iri):
            # "type" is the core context's alias of the keyword @type, not a type name (ETSI 001_02_04)
            raise BadRequestData(f"Invalid entity type {t!r}: it does not name a type IRI")
        if iri not in out:
            out.append(iri)
    return out


def check_scopes(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for s in items:
        if not isinstance(s, str) or not _SCOPE.match(s):
            raise BadRequestData(f"Invalid scope {s!r}")
    return list(dict.fromkeys(items))


# JSON integers must fit 64 signed bits: MongoDB stores no larger ones (orjson parses up to 2**64 - 1),
# and both stores must accept the same values.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def _check_int(v: int) -> None:
    if not INT_MIN <= v <= INT_MAX:
        raise BadRequestData(f"Integer {v} does not fit 64 signed bits")


def _depth(value: Any, limit: int = MAX_DEPTH) -> None:
    if not isinstance(value, dict | list):
        if type(value) is int:
            _check_int(value)
        return
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            raise BadRequestData(f"Value nesting deeper than {limit}")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
        elif type(v) is int:
            _check_int(v)


def check_geometry(value: Any) -> None:
    from shapely.geometry import shape

    if not isinstance(value, dict) or type(value.get("type")) is not str or value["type"] not in GEO_TYPES:
        raise BadRequestData("GeoProperty value must be a GeoJSON geometry")
    coords = value.get("coordinates")
    if value["type"] == "Point" and isinstance(coords, list) and len(coords) in (2, 3) and all(
            isinstance(c, int | float) and not isinstance(c, bool) and c == c for c in coords):
        # the common case, checked without building a shapely object (~30x cheaper)
        if not (-180 <= coords[0] <= 180 and -90 <= coords[1] <= 90):
            raise BadRequestData("GeoJSON coordinates out of range (longitude, latitude)")
        return
    try:
        geom = shape(value)
    except Exception as exc:  # noqa: BLE001 - shapely raises many types for bad input
        raise BadRequestData(f"Invalid GeoJSON geometry: {exc}") from exc
    if geom.is_empty:
        raise BadRequestData("GeoJSON geometry is empty")
    x0, y0, x1, y1 = geom.bounds
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise BadRequestData("GeoJSON coordinates out of range (longitude, latitude)")


def _is_geojson(value: Any) -> bool:
    return isinstance(value, dict) and type(value.get("type")) is str and value["type"] in GEO_TYPES \
        and "coordinates" in value


_FRAGMENT_MEMBERS = frozenset({"datasetId", "observedAt", "unitCode", "objectType"})


def _is_fragment(raw: dict[str, Any]) -> bool:
    """A typeless, valueless object in a merge or partial update: metadata or sub-attributes only."""
    for key, v in raw.items():
        if key in _FRAGMENT_MEMBERS or v == NGSILD_NULL:
            return True
        if isinstance(v, dict) and ((type(v.get("type")) is str and v["type"] in ATTR_TYPES)
                                    or any(m in v for m in VALUE_MEMBERS)):
            return True
    return False


def infer_instance(raw: Any, name: str, *, partial: bool = False) -> dict[str, Any]:
    """Concise and simplified input: give an attribute instance its explicit NGSI-LD type.

    With ``partial`` (merge, partial attribute update) an object carrying only metadata or
    sub-attributes stays typeless, so the stored attribute keeps its type and value.
    """
    if isinstance(raw, dict):
        t = raw.get("type")
        if isinstance(t, str) and t in ATTR_TYPES:
            return raw
        if _is_geojson(raw):
            return {"type": "GeoProperty", "value": raw}
        if t is None:
            for member, attr_type in _MEMBER_TO_TYPE.items():
                if member in raw:
                    inst = {"type": attr_type, **raw}
                    if attr_type == "Property" and _is_geojson(raw["value"]):
                        inst["type"] = "GeoProperty"
                    return inst
            if partial and _is_fragment(raw):
                return raw
            return {"type": "Property", "value": raw}
        raise BadRequestData(f"Attribute {name}: unknown attribute type {t!r}")
    return {"type": "Property", "value": raw}


def is_null(inst: dict[str, Any]) -> bool:
    """True when a fragment instance asks for deletion (``urn:ngsi-ld:null`` as its value)."""
    for member in VALUE_MEMBERS:
        if member in inst:
            v = inst[member]
            if v == NGSILD_NULL or v == [NGSILD_NULL]:
                return True
            return member == "languageMap" and isinstance(v, dict) and v.get("@none") == NGSILD_NULL
    return False


class Expander:
    """Turns request fragments into stored instances with one term map and one timestamp."""

    def __init__(self, tm: TermMap, now: str, *, allow_null: bool = False, partial: bool = False) -> None:
        self.tm = tm
        self.now = now
        # merge-patch: ``urn:ngsi-ld:null`` marks deletions; partial: members may be missing
        self.allow_null = allow_null
        self.partial = partial

    def attribute(self, name: str, raw: Any) -> tuple[str, list[dict[str, Any]]]:
        """Expand one attribute (one instance or a list of datasetId instances)."""
        check_name(name)
        iri = self.tm.expand(name)
        if type(raw) is dict:
            inst = self._plain_instance(raw)
            return iri, [inst if inst is not None else self.general_instance(name, raw)]
        if type(raw) is list and raw:
            plain = self._plain_list(raw)
            if plain is not None:
                return iri, plain
        if isinstance(raw, list) and raw and all(type(x) is dict and _looks_like_instance(x) for x in raw):
            instances = [self.instance(name, x) for x in raw]
            if len(instances) > 1:
                seen: set[str | None] = set()
                for inst in instances:
                    ds = inst.get("datasetId")
                    if ds in seen:
                        raise BadRequestData(f"Attribute {name}: duplicate datasetId {ds!r}")
                    seen.add(ds)
            return iri, instances
        return iri, [self.instance(name, raw)]

    def _plain_list(self, raw: list[Any]) -> list[dict[str, Any]] | None:
        """A list of plain instances with distinct datasetIds, or None (then ``attribute`` decides)."""
        out = []
        seen: set[str | None] = set()
        for x in raw:
            inst = self._plain_instance(x) if type(x) is dict else None
            if inst is None:
                return None
            ds = inst.get("datasetId")
            if ds in seen:
                return None  # the general path names the duplicate
            seen.add(ds)
            out.append(inst)
        return out

    def instance(self, name: str, raw: Any, depth: int = 0) -> dict[str, Any]:
        if type(raw) is dict:
            fast = self._plain_instance(raw)
            if fast is not None:
                return fast
        return self.general_instance(name, raw, depth)

    def general_instance(self, name: str, raw: Any, depth: int = 0) -> dict[str, Any]:
        """Any instance, every rule checked (``_plain_instance`` is its shortcut for the common ones)."""
        if depth > 4:
            raise BadRequestData(f"Attribute {name}: sub-attributes nested too deep")
        if raw is None:
            raise BadRequestData(f"Attribute {name} must not be null")
        if raw == NGSILD_NULL:
            if not self.allow_null:
                raise BadRequestData(f"Attribute {name}: urn:ngsi-ld:null is only allowed in merge and update")
            return {"type": "Property", "value": NGSILD_NULL}
        raw = infer_instance(raw, name, partial=self.partial)
        attr_type = raw.get("type")
        inst: dict[str, Any] = {}
        member: str | None = None
        if attr_type is not None:
            if attr_type == "VocabularyProperty":
                attr_type = "VocabProperty"
            member = ATTR_TYPES[attr_type]
            inst["type"] = attr_type
            if member in raw:
                inst[member] = self._value(name, attr_type, raw[member])
            elif not self.partial:
                raise BadRequestData(f"Attribute {name} of type {attr_type} lacks '{member}'")
        for key, v in raw.items():
            if key in ("type", member, "createdAt", "modifiedAt", "deletedAt", "instanceId", "@context"):
                continue
            if key in VALUE_MEMBERS:
                raise BadRequestData(f"Attribute {name} of type {attr_type or 'Property'} must not have '{key}'")
            if key == "datasetId":
                if not is_uri(v):
                    raise BadRequestData(f"Attribute {name}: datasetId must be a URI")
                inst["datasetId"] = v
            elif key == "observedAt":
                try:
                    inst["observedAt"] = normalize_iso(v)
                except ValueError as exc:
                    raise BadRequestData(f"Attribute {name}: invalid observedAt {v!r}") from exc
            elif key == "unitCode":
                if not isinstance(v, str) or not v:
                    raise BadRequestData(f"Attribute {name}: unitCode must be a string")
                inst["unitCode"] = v
            elif key == "objectType":
                if attr_type is not None and attr_type not in ("Relationship", "ListRelationship"):
                    raise BadRequestData(f"Attribute {name}: objectType only applies to relationships")
                names = v if isinstance(v, list) else [v]
                if not names:
                    raise BadRequestData(f"Attribute {name}: objectType must not be empty")
                iris = [self.tm.expand(check_name(x, "objectType")) for x in names]
                inst["objectType"] = iris if isinstance(v, list) else iris[0]
            elif key == "lang":
                continue
            elif key.startswith("previous"):
                continue
            else:
                check_name(key, "sub-attribute")
                if v is None:
                    raise BadRequestData(f"Sub-attribute {name}.{key} must not be null")
                sub_iri = self.tm.expand(key)
                subs = inst.setdefault("subs", {})
                if sub_iri in subs:
                    raise BadRequestData(f"Sub-attribute {name}.{key} given twice")
                subs[sub_iri] = self.instance(f"{name}.{key}", v, depth + 1)
        inst["createdAt"] = self.now
        inst["modifiedAt"] = self.now
        return inst

    def _plain_instance(self, raw: dict[str, Any], depth: int = 0) -> dict[str, Any] | None:
        """The common instance — a Property or JsonProperty holding a scalar or a plain JSON value, a
        one-object Relationship or a Point, with datasetId, observedAt, unitCode and sub-attributes of
        the same kinds — checked in one pass. None sends anything else to the general path, which
        gives the same result for these and the errors for everything else.

        Expansion runs for every attribute of every write: this keeps it a few dict operations.
        """
        t = raw.get("type")
        member = _PLAIN_MEMBER.get(t) if type(t) is str else None
        if member is None or member not in raw or depth > 4:
            return None
        v = raw[member]
        tv = type(v)
        # the checks ordered by how often values are of each kind: numbers, then strings
        if tv is float or tv is bool:
            if t == "Relationship" or t == "GeoProperty":
                return None
        elif tv is str:
            if v == NGSILD_NULL or t == "GeoProperty":
                return None
            if t == "Relationship" and v not in _SEEN_URIS and not is_uri(v):
                return None
        elif t == "GeoProperty":
            if not _plain_point(v):
                return None
        elif t == "Relationship":
            return None
        elif tv is int:
            if not INT_MIN <= v <= INT_MAX:
                return None  # the general path refuses it
        elif tv is dict or tv is list:
            if (tv is dict and "@none" in v) or (tv is list and NGSILD_NULL in v):
                return None  # maybe an NGSI-LD Null: the general path decides
            try:
                _depth(v)
            except BadRequestData:
                return None
        else:
            return None
        inst: dict[str, Any] = {"type": t, member: v}
        for key, x in raw.items():
            if key == "type" or key == member:
                continue
            if key == "observedAt":
                if type(x) is not str:
                    return None
                iso = CHECKED_ISO.get(x)
                if iso is None:
                    try:
                        iso = normalize_iso(x)
                    except ValueError:
                        return None
                inst["observedAt"] = iso
            elif key == "unitCode":
                if type(x) is not str or not x:
                    return None
                inst["unitCode"] = x
            elif key == "datasetId":
                if type(x) is not str or (x not in _SEEN_URIS and not is_uri(x)):
                    return None
                inst["datasetId"] = x
            elif key in INSTANCE_MEMBERS or type(x) is not dict:
                return None
            else:  # a sub-attribute
                if key not in _VALID_NAMES:
                    try:
                        check_name(key, "sub-attribute")
                    except BadRequestData:
                        return None
                sub = self._plain_instance(x, depth + 1)
                if sub is None:
                    return None
                subs = inst.get("subs")
                if subs is None:
                    subs = inst["subs"] = {}
                sub_iri = self.tm.expand(key)
                if sub_iri in subs:
                    return None
                subs[sub_iri] = sub
        inst["createdAt"] = self.now
        inst["modifiedAt"] = self.now
        return inst

    def _value(self, name: str, attr_type: str, value: Any) -> Any:
        if value is None:
            raise BadRequestData(f"Attribute {name}: value must not be null")
        if value == NGSILD_NULL or value == [NGSILD_NULL] or (
                isinstance(value, dict) and value.get("@none") == NGSILD_NULL):
            if not self.allow_null:
                raise BadRequestData(f"Attribute {name}: urn:ngsi-ld:null is only allowed in merge and update")
            return value
        _depth(value)
        if attr_type == "Property":
            return value
        if attr_type == "GeoProperty":
            if isinstance(value, str):
                raise BadRequestData(f"Attribute {name}: GeoProperty value must be a GeoJSON object")
            check_geometry(value)
            return value
        if attr_type == "Relationship":
            objs = value if isinstance(value, list) else [value]
            if not objs or not all(is_uri(o) for o in objs):
                raise BadRequestData(f"Attribute {name}: Relationship object must be a URI")
            return value
        if attr_type == "LanguageProperty":
            if not isinstance(value, dict) or not value:
                raise BadRequestData(f"Attribute {name}: languageMap must be a non-empty object")
            for lang, text in value.items():
                if not isinstance(lang, str) or not (isinstance(text, str) or (
                        isinstance(text, list) and all(isinstance(t, str) for t in text))):
                    raise BadRequestData(f"Attribute {name}: languageMap values must be strings")
            return value
        if attr_type == "VocabProperty":
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(v, str) and v for v in items):
                raise BadRequestData(f"Attribute {name}: vocab must be a string or array of strings")
            expanded = [self.tm.expand(v) for v in items]
            return expanded if isinstance(value, list) else expanded[0]
        if attr_type == "JsonProperty":
            return value
        if attr_type == "ListProperty":
            if not isinstance(value, list):
                raise BadRequestData(f"Attribute {name}: valueList must be an array")
            return value
        if attr_type == "ListRelationship":
            if not isinstance(value, list):
                raise BadRequestData(f"Attribute {name}: objectList must be an array")
            out = []
            for item in value:
                obj = item.get("object") if isinstance(item, dict) else item
                if not is_uri(obj):
                    raise BadRequestData(f"Attribute {name}: objectList members must be URIs")
                out.append(obj)
            return out
        raise BadRequestData(f"Attribute {name}: unknown attribute type {attr_type}")

    def attributes(self, body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every attribute of a fragment (entity members are skipped)."""
        if len(body) > MAX_ATTRIBUTES and sum(k not in ENTITY_MEMBERS for k in body) > MAX_ATTRIBUTES:
            raise BadRequestData(f"More than {MAX_ATTRIBUTES} attributes in one entity or fragment")
        attrs: dict[str, list[dict[str, Any]]] = {}
        known = self.tm.expanded.get  # names expanded before (only valid ones are in _VALID_NAMES)
        plain = self._plain_instance
        for key, raw in body.items():
            if key in ENTITY_MEMBERS:
                continue
            if type(raw) is dict and key in _VALID_NAMES:  # the usual attribute, without attribute()
                iri = known(key)
                inst = plain(raw) if iri is not None else None
                if inst is not None and iri is not None:
                    if iri in attrs:
                        raise BadRequestData(f"Attribute {key} given twice")
                    attrs[iri] = [inst]
                    continue
            iri, instances = self.attribute(key, raw)
            if iri in attrs:
                raise BadRequestData(f"Attribute {key} given twice")
            attrs[iri] = instances
        return attrs

    def entity(self, body: Any, *, require_id: bool = True, require_type: bool = True) -> dict[str, Any]:
        """A whole entity for create, replace or upsert (``type`` is [] when optional and absent)."""
        if not isinstance(body, dict):
            raise InvalidRequest("Entity must be a JSON object")
        raw_id = body.get("id", body.get("@id"))
        if raw_id is None and require_id:
            raise BadRequestData("Entity id is missing")
        raw_type = body.get("type", body.get("@type"))
        if raw_type is None and require_type:
            raise BadRequestData("Entity type is missing")
        entity: dict[str, Any] = {
            "id": check_entity_id(raw_id) if raw_id is not None else None,
            "type": expand_types(raw_type, self.tm) if raw_type is not None else [],
        }
        if "scope" in body:
            entity["scope"] = check_scopes(body["scope"])
        entity["createdAt"] = self.now
        entity["modifiedAt"] = self.now
        entity["attrs"] = self.attributes(body)
        return entity


    def fragment(self, body: Any) -> dict[str, Any]:
        """An entity fragment (append, update, merge): optional id, type and scope, and attributes.

        ``scope`` is None when the fragment deletes it (``urn:ngsi-ld:null`` in a merge).
        """
        if not isinstance(body, dict):
            raise InvalidRequest("Entity fragment must be a JSON object")
        out: dict[str, Any] = {}
        raw_id = body.get("id", body.get("@id"))
        if raw_id is not None:
            out["id"] = check_entity_id(raw_id)
        raw_type = body.get("type", body.get("@type"))
        if raw_type is not None:
            out["type"] = expand_types(raw_type, self.tm)
        if "scope" in body:
            scope = body["scope"]
            if scope == NGSILD_NULL and self.allow_null:
                out["scope"] = None
            else:
                out["scope"] = check_scopes(scope)
        out["attrs"] = self.attributes(body)
        return out

_PLAIN_MEMBER = {"Property": "value", "Relationship": "object", "GeoProperty": "value", "JsonProperty": "json"}


def _plain_point(v: Any) -> bool:
    """A GeoJSON Point with in-range numeric coordinates and nothing else."""
    if type(v) is not dict or len(v) != 2 or v.get("type") != "Point":
        return False
    c = v.get("coordinates")
    if type(c) is not list or len(c) not in (2, 3):
        return False
    for x in c:
        if (type(x) is not float and type(x) is not int) or x != x:
            return False
    return -180 <= c[0] <= 180 and -90 <= c[1] <= 90


def _looks_like_instance(x: dict[str, Any]) -> bool:
    t = x.get("type")
    if isinstance(t, str) and t in ATTR_TYPES:
        return True
    return "datasetId" in x or any(m in x for m in VALUE_MEMBERS)
