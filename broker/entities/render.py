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

    def cache_key(self) -> tuple[Any, ...]:
        """Every field, hashable: two options with the same key render any entity the same way."""
        return tuple(getattr(self, name) for name in self.__slots__)  # type: ignore[attr-defined]


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


_PLAIN_KINDS = frozenset({"Property", "Relationship", "GeoProperty"})
_META = ("datasetId", "observedAt", "unitCode")


class Renderer:
    """Compacts stored entities for one term map and one set of options."""

    def __init__(self, tm: TermMap, opts: RenderOptions) -> None:
        self.tm = tm
        self.opts = opts
        # the default form (normalized, no system attributes), which ``instance`` shortcuts
        self._plain = opts.format == NORMALIZED and not opts.sys_attrs

    def entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        opts = self.opts
        compact = self.tm.compact
        out: dict[str, Any] = {}
        if opts.pick_id:
            out["id"] = entity["id"]
        if opts.pick_type:
            types = entity["type"]
            out["type"] = compact(types[0]) if len(types) == 1 else [compact(t) for t in types]
        if opts.pick_scope:
            scope = entity.get("scope")
            if scope:
                out["scope"] = scope[0] if len(scope) == 1 else scope
        keep, omit, instance = opts.attrs, opts.omit, self.instance
        known = self.tm.compacted.get  # compact()'s own cache, without the call
        # one instance and no datasetId filter (the common case) skips attribute() and its list
        single = opts.dataset_id is None
        for iri, instances in entity.get("attrs", {}).items():
            if keep is not None and iri not in keep:
                continue
            if omit is not None and iri in omit:
                continue
            if single and len(instances) == 1:
                out[known(iri) or compact(iri)] = instance(instances[0])
                continue
            rendered = self.attribute(instances)
            if rendered is not None:
                out[compact(iri)] = rendered
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
        if len(instances) > 1 and self.opts.format == SIMPLIFIED:
            # a Multi-Attribute in the simplified form: its values keyed by datasetId (clause 4.5.4, v1.8)
            return {"dataset": {i.get("datasetId", "@none"): self.instance(i) for i in instances}}
        rendered = [self.instance(i) for i in instances]
        return rendered[0] if len(rendered) == 1 else rendered

    def instance(self, inst: dict[str, Any]) -> Any:
        attr_type = inst["type"]
        if self._plain and attr_type in _PLAIN_KINDS and "objectType" not in inst:
            # the usual instance in the default form: the same members in the same order, without the
            # per-member checks below (rendering is most of a GET or a query page)
            member = "object" if attr_type == "Relationship" else "value"
            out: dict[str, Any] = {"type": attr_type, member: inst.get(member)}
            for key in _META:
                if key in inst:
                    out[key] = inst[key]
            subs = inst.get("subs")
            if subs:
                compact = self.tm.compact
                for sub_iri, sub in subs.items():
                    out[compact(sub_iri)] = self.instance(sub)
            return out
        return self.general_instance(inst)

    def general_instance(self, inst: dict[str, Any]) -> Any:
        """Any instance in any form (``instance`` shortcuts the usual one in the normalized form)."""
        opts = self.opts
        fmt = opts.format
        attr_type = inst["type"]
        member = ATTR_TYPES[attr_type]
        value = inst.get(member)
        if member == "vocab":
            value = [self.tm.compact(v) for v in value] if isinstance(value, list) else self.tm.compact(value)
        lang_pick = None
        if opts.lang and attr_type == "LanguageProperty":
            lang_pick = _select_lang(value, opts.lang)
        if fmt == SIMPLIFIED:
            # Types other than Property/GeoProperty/Relationship keep their member name (4.5.4),
            # so the simplified form stays unambiguous.
            if lang_pick is not None:
                return lang_pick[0]
            if member in ("languageMap", "vocab", "json", "valueList", "objectList"):
                return {member: value}
            return value
        if lang_pick is not None:
            out = {"type": "Property", "value": lang_pick[0]}
            if lang_pick[1] != "@none":
                out["lang"] = lang_pick[1]
        elif member == "objectList":
            out = {"type": attr_type, member: [{"object": o} for o in value]}
        else:
            out = {"type": attr_type, member: value}
        # the members in this fixed order: the answer's key order does not depend on the stored one
        if "objectType" in inst:
            v = inst["objectType"]
            out["objectType"] = [self.tm.compact(x) for x in v] if isinstance(v, list) else self.tm.compact(v)
        for key in _META:
            if key in inst:
                out[key] = inst[key]
        if opts.sys_attrs:
            if "createdAt" in inst:
                out["createdAt"] = inst["createdAt"]
            if "modifiedAt" in inst:
                out["modifiedAt"] = inst["modifiedAt"]
        subs = inst.get("subs")
        if subs:
            for sub_iri, sub in subs.items():
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
