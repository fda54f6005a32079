"""Which entity types and attributes exist (clauses 5.7.5-5.7.10): one pass over every entity.

Every entity of the tenant is looked at (Orion-LD's bug #1698 looked only at the first 20). The
answer is in expanded IRIs; the handler compacts names with the request's @context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..query.ast import TypeName
from ..query.model import EntityQuery
from .entities import EntityService


@dataclass(slots=True)
class AttributeStats:
    """One attribute name: how many instances, of which attribute types, on which entity types."""

    count: int = 0
    attr_types: set[str] = field(default_factory=set)
    type_names: set[str] = field(default_factory=set)


@dataclass(slots=True)
class TypeStats:
    """One entity type: how many entities, and each attribute's attribute types on them."""

    count: int = 0
    attributes: dict[str, set[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Inventory:
    types: dict[str, TypeStats] = field(default_factory=dict)
    attributes: dict[str, AttributeStats] = field(default_factory=dict)


class DiscoveryService:
    def __init__(self, entities: EntityService) -> None:
        self.entities = entities
        self.store = entities.store

    async def inventory(self, tenant: str, type_iri: str | None = None) -> Inventory:
        """Types and attributes of every entity (of one type when ``type_iri`` is given)."""
        await self.entities.check_tenant(tenant)
        inv = Inventory()
        query = EntityQuery(types=TypeName(type_iri)) if type_iri is not None else None
        async for entity in self.store.scan_entities(tenant, query):
            add_entity(inv, entity)
        return inv


def add_entity(inv: Inventory, entity: dict[str, Any]) -> None:
    types = entity.get("type") or []
    if isinstance(types, str):
        types = [types]
    per_type = []
    for t in types:
        stats = inv.types.get(t)
        if stats is None:
            stats = inv.types[t] = TypeStats()
        stats.count += 1
        per_type.append(stats)
    for iri, instances in entity.get("attrs", {}).items():
        kinds = {i.get("type", "Property") for i in instances}
        a = inv.attributes.get(iri)
        if a is None:
            a = inv.attributes[iri] = AttributeStats()
        a.count += len(instances)
        a.attr_types |= kinds
        a.type_names.update(types)
        for stats in per_type:
            stats.attributes.setdefault(iri, set()).update(kinds)
