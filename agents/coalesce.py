"""Fold the stored-form fragments of one entity in a grouped write into one fragment, before the store.

``BatchService`` already folds the entries of one id into one write and one change event; it still runs
one append mutation per entry. Under load a grouped write holds several measures per device, so the
agents merge them first, with the result of applying them in order (``mode="update"`` upserts):
later instances replace earlier ones of the same attribute and datasetId (keeping their first
position and ``createdAt``), other attributes and datasetIds accumulate, types are the ordered union.
Each attribute keeps the ``observedAt`` of the measure that last wrote it, exactly as the in-order
writes would leave it; the change event (and so a notification) reports the entity once per write,
as before. Fragments with anything else at the top level (``scope``...) are left unmerged.
"""

from __future__ import annotations

from typing import Any

_MERGEABLE = frozenset(("id", "type", "createdAt", "modifiedAt", "attrs"))


def coalesce(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fragments with same-id runs merged; the first occurrence of an id keeps its place."""
    if len(entities) < 2:
        return entities
    out: list[dict[str, Any]] = []
    merged: dict[str, dict[str, Any]] = {}  # id → the fragment being built (a private copy)
    for frag in entities:
        if not _MERGEABLE.issuperset(frag) or not isinstance(frag.get("type"), list) \
                or not isinstance(frag.get("attrs"), dict):
            out.append(frag)
            merged.pop(frag["id"], None)  # keep the order around the odd one
            continue
        into = merged.get(frag["id"])
        if into is None:
            copy = {**frag, "attrs": {iri: list(insts) for iri, insts in frag["attrs"].items()}}
            merged[frag["id"]] = copy
            out.append(copy)
            continue
        _merge(into, frag)
    return out


def _merge(into: dict[str, Any], frag: dict[str, Any]) -> None:
    types = into["type"]
    for t in frag["type"]:
        if t not in types:
            into["type"] = types = [*types, t]
    if "modifiedAt" in frag:
        into["modifiedAt"] = frag["modifiedAt"]
    attrs = into["attrs"]
    for iri, instances in frag["attrs"].items():
        olds = attrs.get(iri)
        if olds is None:
            attrs[iri] = list(instances)
            continue
        for inst in instances:
            ds = inst.get("datasetId")
            for j, old in enumerate(olds):
                if old.get("datasetId") == ds:
                    if "createdAt" in old and "createdAt" in inst:
                        inst = {**inst, "createdAt": old["createdAt"]}
                    olds[j] = inst
                    break
            else:
                olds.append(inst)
