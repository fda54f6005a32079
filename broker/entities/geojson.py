"""GeoJSON representation of entities (ETSI GS CIM 009 clauses 4.5.16 and 6.3.15).

An entity becomes a Feature: ``id``, ``type: "Feature"``, ``geometry`` (the value of the GeoProperty
named by ``geometryProperty``, default ``location``; ``null`` when the entity has none) and
``properties`` (the entity in the requested format without its ``id``). A query answers a
FeatureCollection carrying the ``@context`` once at the top; a single Feature carries its own.
"""

from __future__ import annotations

from typing import Any

from .render import Renderer


def geometry_of(entity: dict[str, Any], geometry_iri: str) -> Any:
    """The GeoJSON geometry of the entity's GeoProperty (default instance first), or None."""
    instances = entity.get("attrs", {}).get(geometry_iri)
    if not instances:
        return None
    ordered = sorted(instances, key=lambda i: "datasetId" in i)
    for inst in ordered:
        if inst.get("type") == "GeoProperty" and isinstance(inst.get("value"), dict):
            return inst["value"]
    return None


def feature(entity: dict[str, Any], renderer: Renderer, geometry_iri: str) -> dict[str, Any]:
    """One entity as a GeoJSON Feature, without ``@context``."""
    return feature_of(entity, renderer.entity(entity), geometry_iri)


def feature_of(entity: dict[str, Any], rendered: dict[str, Any], geometry_iri: str) -> dict[str, Any]:
    """A Feature from an entity already rendered (linked entities inlined, pick / omit applied)."""
    properties = {k: v for k, v in rendered.items() if k != "id"}
    return {"id": entity["id"], "type": "Feature", "geometry": geometry_of(entity, geometry_iri),
            "properties": properties}


def render_feature(entity: dict[str, Any], renderer: Renderer, geometry_iri: str,
                   context: Any) -> dict[str, Any]:
    """GET /entities/{id} with ``Accept: application/geo+json``: a Feature with its ``@context``."""
    out = feature(entity, renderer, geometry_iri)
    out["@context"] = context
    return out


def render_feature_collection(entities: list[dict[str, Any]], renderer: Renderer, geometry_iri: str,
                              context: Any) -> dict[str, Any]:
    """A query answer with ``Accept: application/geo+json``: a FeatureCollection, ``@context`` on top."""
    return {"type": "FeatureCollection", "features": [feature(e, renderer, geometry_iri) for e in entities],
            "@context": context}


def feature_collection(pairs: list[tuple[dict[str, Any], dict[str, Any]]], geometry_iri: str,
                       context: Any) -> dict[str, Any]:
    """A FeatureCollection from (stored, rendered) pairs, as ``services.linked.Linker.render`` gives them."""
    return {"type": "FeatureCollection", "features": [feature_of(e, r, geometry_iri) for e, r in pairs],
            "@context": context}
