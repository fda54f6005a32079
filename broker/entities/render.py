"""Render stored entities in the representation a client asked for (compacted with its @context).

Formats (ETSI GS CIM 009 clause 4.5): normalized, concise and simplified (``keyValues``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..jsonld.termmap import TermMap
from .expand import ATTR_TYPES

NORMALIZED, CONCISE, SIMPLIFIED = "normalized", "concise", "simplified"


@dataclass(slots=True)
class RenderOptions:
    format: str = NORMALIZED
    sys_attrs: bool = False
    attrs: frozenset[str] | None = None      # attribute IRIs to keep (``attrs`` / ``pick``)
    omit: frozenset[str] | None = None       # attribute IRIs to drop (``omit``)
    pick_id: bool = True
    pick_type: bool = True
    pick_scope: bool = True
    lang: str | None = None
    dataset_id: frozenset[str] | None = None  # keep only these datasetIds ("@none" = default)


def _lang_prefs(lang: str) -> list[str]:
    """Language tags of a ``lang`` parameter (Accept-Language syntax), best first."""
    prefs: list[tuple[float, int, str]] = []
    for order, part in enumerate(lang.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag.strip() and q > 0:
            prefs.append((-q, order, tag.strip()))
    return [t for _, _, t in sorted(prefs)]


def _select_lang(lang_map: dict[str, Any], lang: str) -> tuple[Any, str] | None:
    """The (text, tag) a ``lang`` filter picks: the best listed tag, else ``@none``, else any."""
    for w in _lang_prefs(lang):
        if w == "*":
            break
        if w in lang_map:
            return lang_map[w], w
    if "@none" in lang_map:
        return lang_map["@none"], "@none"
    first = next(iter(lang_map.items()), None)
    return (first[1], first[0]) if first else None


class Renderer:
    """Compacts stored entities for one term map and one set of options."""

    def __init__(self, tm: TermMap, opts: RenderOptions) -> None:
        self.tm = tm
        self.opts = opts

    def entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        opts = self.opts
        out: dict[str, Any] = {}
        if opts.pick_id:
            out["id"] = entity["id"]
        if opts.pick_type:
            types = [self.tm.compact(t) for t in entity["type"]]
            out["type"] = types[0] if len(types) == 1 else types
        if entity.get("scope") and opts.pick_scope:
            scope = entity["scope"]
            out["scope"] = scope[0] if len(scope) == 1 else scope
        for iri, instances in entity.get("attrs", {}).items():
            if opts.attrs is not None and iri not in opts.attrs:
                continue
            if opts.omit is not None and iri in opts.omit:
                continue
            rendered = self.attribute(instances)
            if rendered is not None:
                out[self.tm.compact(iri)] = rendered
        if opts.sys_attrs and opts.format != SIMPLIFIED:
            if "createdAt" in entity:
                out["createdAt"] = entity["createdAt"]
            if "modifiedAt" in entity:
                out["modifiedAt"] = entity["modifiedAt"]
        return out

    def attribute(self, instances: list[dict[str, Any]]) -> Any:
        """One attribute: a single instance, or a list of its datasetId instances (None: all filtered)."""
        if self.opts.dataset_id is not None:
            instances = [i for i in instances if i.get("datasetId", "@none") in self.opts.dataset_id]
            if not instances:
                return None
        rendered = [self.instance(i) for i in instances]
        return rendered[0] if len(rendered) == 1 else rendered

    def instance(self, inst: dict[str, Any]) -> Any:
        fmt = self.opts.format
        attr_type = inst["type"]
        member = ATTR_TYPES[attr_type]
        value = inst.get(member)
        if member == "vocab":
            value = [self.tm.compact(v) for v in value] if isinstance(value, list) else self.tm.compact(value)
        lang_pick = None
        if attr_type == "LanguageProperty" and self.opts.lang:
            lang_pick = _select_lang(value, self.opts.lang)
        if fmt == SIMPLIFIED:
            # Types other than Property/GeoProperty/Relationship keep their member name (4.5.4),
            # so the simplified form stays unambiguous.
            if lang_pick is not None:
                return lang_pick[0]
            if member in ("languageMap", "vocab", "json", "valueList", "objectList"):
                return {member: value}
            return value
        out: dict[str, Any] = {}
        if lang_pick is not None:
            out["type"] = "Property"
            out["value"] = lang_pick[0]
            if lang_pick[1] != "@none":
                out["lang"] = lang_pick[1]
        else:
            out["type"] = attr_type
            if member == "objectList":
                out[member] = [{"object": o} for o in value]
            else:
                out[member] = value
        for key in ("objectType", "datasetId", "observedAt", "unitCode"):
            if key in inst:
                v = inst[key]
                if key == "objectType":
                    v = [self.tm.compact(x) for x in v] if isinstance(v, list) else self.tm.compact(v)
                out[key] = v
        if self.opts.sys_attrs:
            for key in ("createdAt", "modifiedAt"):
                if key in inst:
                    out[key] = inst[key]
        for sub_iri, sub in inst.get("subs", {}).items():
            out[self.tm.compact(sub_iri)] = self.instance(sub)
        if fmt == CONCISE:
            kind = out.pop("type")
            if kind == "GeoProperty" and len(out) == 1:
                return out["value"]
            if kind == "Property" and len(out) == 1 and "value" in out and not isinstance(out["value"], dict):
                return out["value"]
            if kind == "GeoProperty":
                out["type"] = "GeoProperty"
        return out
