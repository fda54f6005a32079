"""Batch operations (clause 5.6.7–5.6.10, 5.6.20): create, upsert, update, merge and delete many entities.

Entries with the same id are applied in order and folded into one write (iotagent-node-lib sends
the same device several times in one upsert), so each entity gets exactly one change event. The
events of a batch are published as one list after the writes, so listeners can group them. A bad
entry fails only itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import AlreadyExists, BadRequestData, InternalError, NgsiLdError, ResourceNotFound
from ..timeutil import now_iso
from .entities import (
    EntityService,
    Mutation,
    UpdateResult,
    append_mutation,
    merge_mutation,
    replace_mutation,
)
from .events import ChangeEvent

BatchOp = Literal["create", "upsert", "update", "merge", "delete"]


@dataclass(slots=True)
class BatchResult:
    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiLdError]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BatchItem:
    """One entry of a batch: an expanded entity (or fragment, or bare id for delete), or the
    error its validation produced."""

    entity_id: str
    entity: dict[str, Any] | None = None
    error: NgsiLdError | None = None


def _chain(mutations: list[Mutation]) -> Mutation:
    """Apply several mutations in order as one write."""

    def mutate(entity: dict[str, Any], now: str) -> set[str] | None:
        touched: set[str] = set()
        changed = False
        for m in mutations:
            t = m(entity, now)
            if t is not None:
                touched |= t
                changed = True
        return touched if changed else None

    return mutate


class BatchService:
    def __init__(self, entities: EntityService) -> None:
        self.entities = entities

    async def upsert_entities(self, tenant: str, entities: list[dict[str, Any]], *, mode: str = "replace",
                              source: str = "api") -> BatchResult:
        """Create or update already-expanded entities (``Expander.entity`` output), which the batch
        takes over: they may become the stored documents.

        ``mode="update"`` merges attributes into existing entities (iotagent-node-lib's
        ``options=update``); ``"replace"`` replaces them.
        """
        items = [BatchItem(e["id"], e) for e in entities]
        return await self.run(tenant, "upsert", items, mode=mode, source=source)

    async def run(self, tenant: str, op: BatchOp, items: list[BatchItem], *, mode: str = "replace",
                  no_overwrite: bool = False, source: str = "api") -> BatchResult:
        result = BatchResult()
        groups: dict[str, list[BatchItem]] = {}
        for item in items:
            if item.error is not None:
                result.errors.append((item.entity_id, item.error))
            else:
                groups.setdefault(item.entity_id, []).append(item)
        # One store commit for the whole batch (and the outbox entries its events write).
        async with self.entities.store.batch():
            await self._run_groups(tenant, op, groups, mode, no_overwrite, source, result)
        return result

    async def _run_groups(self, tenant: str, op: BatchOp, groups: dict[str, list[BatchItem]], mode: str,
                          no_overwrite: bool, source: str, result: BatchResult) -> None:
        events: list[ChangeEvent] = []
        existing: set[str] = set()
        if op == "upsert" and groups:
            existing = set(await self.entities.store.get_entities(tenant, list(groups)))
        try:
            for entity_id, group in groups.items():
                kept: list[UpdateResult] = []
                try:
                    event = await self._apply(tenant, op, entity_id, group, entity_id in existing, mode,
                                              no_overwrite, source, result, kept)
                except NgsiLdError as err:
                    result.errors.append((entity_id, err))
                    continue
                if event is not None:
                    events.append(event)
                    if event.kind == "create":
                        result.created.append(entity_id)
                not_updated = [iri for r in kept for iri, _ in r.not_updated]
                if not_updated:
                    # noOverwrite left attributes alone: the entity is reported, not counted a success
                    # (clause 5.6.9 via 5.6.3; ETSI 005_02); the other attributes were still appended
                    result.errors.append((entity_id, BadRequestData(
                        f"Attributes exist and noOverwrite was requested: {', '.join(dict.fromkeys(not_updated))}",
                        title="Attributes not updated")))
                    continue
                result.success.append(entity_id)
        finally:
            await self.entities.bus.publish(events)

    async def _apply(self, tenant: str, op: BatchOp, entity_id: str, group: list[BatchItem], exists: bool,
                     mode: str, no_overwrite: bool, source: str, result: BatchResult,
                     kept: list[UpdateResult]) -> ChangeEvent | None:
        svc = self.entities
        if op == "create":
            result.errors.extend((entity_id, AlreadyExists(f"Entity {entity_id} given twice in the batch"))
                                 for _ in group[1:])
            return await svc.create(tenant, _entity(group[0]), source, publish=False)
        if op == "delete":
            result.errors.extend((entity_id, ResourceNotFound(f"Entity {entity_id} deleted twice in the batch"))
                                 for _ in group[1:])
            return await svc.remove(tenant, entity_id, source, publish=False)
        if op == "upsert":
            if not exists:
                doc = _entity(group[0])  # the batch owns its expanded entities: no copy
                rest = [self._mutation("upsert", _entity(i), mode, False) for i in group[1:]]
                if rest:
                    now = now_iso()
                    _chain(rest)(doc, now)
                    doc["modifiedAt"] = now
                try:
                    return await svc.create(tenant, doc, source, publish=False)
                except AlreadyExists:
                    pass  # created concurrently: update it instead
            mutation = _chain([self._mutation("upsert", _entity(i), mode, False) for i in group])
            if mode == "replace":  # replacements swap the stored entity's containers, never edit them
                _, _, event = await svc.modify(tenant, entity_id, mutation, source, publish=False, copy=dict)
                return event
        else:
            mutation = _chain([self._mutation(op, _entity(i), mode, no_overwrite, kept) for i in group])
        _, _, event = await svc.modify(tenant, entity_id, mutation, source, publish=False)
        return event

    @staticmethod
    def _mutation(op: BatchOp, entity: dict[str, Any], mode: str, no_overwrite: bool,
                  kept: list[UpdateResult] | None = None) -> Mutation:
        """The mutation of one entry; append results go to ``kept`` so noOverwrite skips can be reported."""
        if op == "merge":
            return merge_mutation(entity, {})
        if op == "upsert" and mode == "replace":
            return replace_mutation(entity)
        outcome = UpdateResult()
        if kept is not None:
            kept.append(outcome)
        return append_mutation(entity, no_overwrite, outcome, {})


def _entity(item: BatchItem) -> dict[str, Any]:
    if item.entity is None:
        raise InternalError(f"Batch entry {item.entity_id} has no entity")
    return item.entity
