"""Entity operations: the single write path every change (API, batch, agents) goes through.

Each write validates, stores with an optimistic version check (retried on conflict) and emits
one ``ChangeEvent`` per entity, awaited before the caller answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..errors import Conflict, NonexistentTenant, ResourceNotFound
from ..query.model import EntityQuery
from ..store.base import DEFAULT_TENANT, Store
from ..timeutil import now_iso
from .events import ChangeEvent, EventBus, diff_attrs

MAX_RETRIES = 16

Mutation = Callable[[dict[str, Any], str], set[str] | None]


def clone(entity: dict[str, Any]) -> dict[str, Any]:
    """A private deep copy (stores may hand out shared objects); orjson is the fastest deep copy."""
    return orjson.loads(orjson.dumps(entity))


class EntityService:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    async def check_tenant(self, tenant: str) -> None:
        """Reads on a tenant that was never written give 404 NonexistentTenant."""
        if tenant != DEFAULT_TENANT and not await self.store.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")

    # ---------------------------------------------------------------- reads
    async def get(self, tenant: str, entity_id: str) -> dict[str, Any]:
        await self.check_tenant(tenant)
        entity = await self.store.get_entity(tenant, entity_id)
        if entity is None:
            raise ResourceNotFound(f"Entity {entity_id} not found")
        return entity

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[dict[str, Any]], int | None]:
        await self.check_tenant(tenant)
        return await self.store.query_entities(tenant, query)

    # ---------------------------------------------------------------- writes
    async def create(self, tenant: str, entity: dict[str, Any], source: str = "api") -> None:
        """Store a new entity (already expanded); AlreadyExists when the id is taken."""
        await self.store.create_entity(tenant, entity)
        attrs = frozenset(entity.get("attrs", {}))
        await self.bus.publish([ChangeEvent(tenant, "create", entity["id"], None, entity, created=attrs,
                                            source=source)])

    async def delete(self, tenant: str, entity_id: str, source: str = "api") -> dict[str, Any]:
        await self.check_tenant(tenant)
        old = await self.store.delete_entity(tenant, entity_id)
        if old is None:
            raise ResourceNotFound(f"Entity {entity_id} not found")
        await self.bus.publish([ChangeEvent(tenant, "delete", entity_id, old, None,
                                            deleted=frozenset(old.get("attrs", {})), source=source)])
        return old

    async def modify(self, tenant: str, entity_id: str, mutate: Mutation, source: str = "api",
                     publish: bool = True) -> tuple[dict[str, Any], dict[str, Any], ChangeEvent | None]:
        """Read-modify-write with optimistic retries.

        ``mutate(entity, now)`` edits a private copy in place and returns the attribute IRIs it
        touched (None = nothing changed, so nothing is written). Returns (before, after, event).
        """
        await self.check_tenant(tenant)
        for _ in range(MAX_RETRIES):
            before = await self.store.get_entity(tenant, entity_id)
            if before is None:
                raise ResourceNotFound(f"Entity {entity_id} not found")
            version = before.get("_v", 0)
            after = clone(before)
            now = now_iso()
            touched = mutate(after, now)
            if touched is None:
                return before, before, None
            after["modifiedAt"] = now
            if await self.store.replace_entity(tenant, after, version):
                created, updated, deleted = diff_attrs(before, after, touched)
                event = ChangeEvent(tenant, "update", entity_id, before, after, created=created,
                                    updated=updated, deleted=deleted, source=source)
                if publish:
                    await self.bus.publish([event])
                return before, after, event
        raise Conflict(f"Entity {entity_id} kept changing; gave up after {MAX_RETRIES} attempts")
