"""Matching change events against subscriptions and rendering the notifications they cause.

The change listener runs inside the write path: it looks up candidate subscriptions in the
tenant's index (by entity id and type, plus the general list), applies notificationTrigger,
watchedAttributes, q, geoQ and scopeQ with the same evaluator as queries, renders each
notification once, writes them to the outbox and hands them to delivery, all before the write
answers. Periodic subscriptions (``timeInterval``) are served by a scheduler here as well.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from typing import Any

from ..entities.expand import ATTR_TYPES
from ..entities.render import CONCISE, NORMALIZED, SIMPLIFIED, Renderer, RenderOptions
from ..errors import AlreadyExists
from ..periodic import stop
from ..query.evaluator import match_geo, match_q, match_scope
from ..query.model import EntityQuery
from ..store.base import Store
from ..timeutil import now_iso, parse_iso
from .delivery import DeliveryService
from .events import ChangeEvent
from .linked import Linker, join_options, parse_projection, projection_options
from .outbox import Outbox
from .subscriptions import Compiled, SubscriptionService

log = logging.getLogger(__name__)

GEOJSON = "application/geo+json"
LEASES = "periodic_leases"  # one document per (periodic subscription, interval, period) being served
MAX_PERIODIC_ENTITIES = 1000
_PREVIOUS = {"value": "previousValue", "object": "previousObject", "languageMap": "previousLanguageMap",
             "vocab": "previousVocab", "json": "previousJson", "valueList": "previousValueList",
             "objectList": "previousObjectList"}
_FORMATS = {"normalized": NORMALIZED, "concise": CONCISE, "keyValues": SIMPLIFIED}


def period_of(c: Compiled, wall: float) -> int:
    """Number of whole ``timeInterval`` periods since the subscription was created."""
    try:
        anchor = parse_iso(c.doc["createdAt"]).timestamp()
    except (KeyError, ValueError):
        anchor = 0.0
    return int((wall - anchor) // float(c.doc["timeInterval"]))


def trigger_fires(c: Compiled, ev: ChangeEvent) -> bool:
    """notificationTrigger against the attributes the change created, updated or deleted."""
    t = c.triggers
    watched = c.watched

    def hits(attrs: frozenset[str]) -> bool:
        return bool(attrs) and (watched is None or not watched.isdisjoint(attrs))

    if ev.kind == "create":
        return "entityCreated" in t or ("attributeCreated" in t and hits(ev.created))
    if ev.kind == "delete":
        return "entityDeleted" in t or ("attributeDeleted" in t and hits(ev.deleted))
    deleted = ev.deleted
    if "attributeDeleted" in t and ev.updated:  # a datasetId instance deleted is an attribute deletion
        deleted = deleted | frozenset(deleted_instances(ev))
    return (("attributeCreated" in t and hits(ev.created))
            or ("attributeUpdated" in t and hits(ev.updated))
            or ("attributeDeleted" in t and hits(deleted))
            or ("entityUpdated" in t and hits(ev.created | ev.updated | ev.deleted)))


def entity_matches(c: Compiled, entity: dict[str, Any]) -> bool:
    if c.selectors and not any(s.matches(entity) for s in c.selectors):
        return False
    if c.q is not None and not match_q(c.q, entity):
        return False
    if c.scope_q is not None and not match_scope(c.scope_q, entity):
        return False
    return c.geo_q is None or match_geo(c.geo_q, entity)


def matches(c: Compiled, ev: ChangeEvent, now: str) -> bool:
    if c.doc.get("timeInterval") or not c.is_active(now):
        return False
    entity = ev.after if ev.after is not None else ev.before
    if entity is None or not trigger_fires(c, ev):
        return False
    return entity_matches(c, entity)


NULL = "urn:ngsi-ld:null"


def _render_options(c: Compiled) -> RenderOptions:
    opts = c.memo.get("opts")
    if opts is None:
        opts = c.memo["opts"] = _make_render_options(c)
    return opts  # type: ignore[no-any-return]


def _make_render_options(c: Compiled) -> RenderOptions:
    n = c.doc["notification"]
    attrs = frozenset(n["attributes"]) if n.get("attributes") else None
    datasets = frozenset(c.doc["datasetId"]) if c.doc.get("datasetId") else None
    return RenderOptions(format=_FORMATS.get(n.get("format", "normalized"), NORMALIZED),
                         sys_attrs=bool(n.get("sysAttrs")), attrs=attrs, lang=c.doc.get("lang"),
                         dataset_id=datasets)


def _previous(c: Compiled, old: dict[str, Any]) -> tuple[str, Any] | None:
    """The ``previous*`` member and value standing for one stored instance (showChanges)."""
    member = ATTR_TYPES.get(old.get("type", ""), "value")
    if member not in old:
        return None
    value = old[member]
    if member == "vocab":
        value = [c.notify_tm.compact(v) for v in value] if isinstance(value, list) else c.notify_tm.compact(value)
    elif member == "objectList":
        value = [{"object": o} for o in value]
    return _PREVIOUS[member], value


def _add_previous(rendered: dict[str, Any], c: Compiled, ev: ChangeEvent, opts: RenderOptions) -> None:
    """showChanges: the previous value of every updated attribute (single-instance attributes)."""
    before = (ev.before or {}).get("attrs", {})
    for iri in ev.updated:
        old = before.get(iri)
        if not old or len(old) != 1:
            continue
        current = rendered.get(c.notify_tm.compact(iri))
        if not isinstance(current, dict):
            continue
        prev = _previous(c, old[0])
        if prev is not None:
            current[prev[0]] = prev[1]


def deleted_instances(ev: ChangeEvent) -> dict[str, list[dict[str, Any]]]:
    """Stored instances this change removed, per attribute IRI: whole attributes and single datasetIds."""
    before = (ev.before or {}).get("attrs", {})
    if ev.kind == "delete":
        return dict(before)
    after = (ev.after or {}).get("attrs", {})
    out: dict[str, list[dict[str, Any]]] = {iri: before[iri] for iri in ev.deleted if iri in before}
    for iri in ev.updated:
        old = before.get(iri)
        if old and (len(old) > 1 or old[0].get("datasetId")):
            kept = {i.get("datasetId") for i in after.get(iri, ())}
            gone = [i for i in old if i.get("datasetId") not in kept]
            if gone:
                out[iri] = gone
    return out


def _null_instance(c: Compiled, old: dict[str, Any], opts: RenderOptions, show_changes: bool, now: str,
                   entity_gone: bool = False) -> Any:
    """A deleted instance as the NGSI-LD Null of its type (clause 4.5.18), with deletedAt."""
    if opts.format == SIMPLIFIED:
        return NULL
    attr_type = old.get("type", "Property")
    member = ATTR_TYPES.get(attr_type, "value")
    out: dict[str, Any] = {"type": attr_type}
    # an attribute deleted from a live entity keeps the shape of a LanguageMap; when the whole entity
    # is gone the member is the plain NGSI-LD Null (as the conformance suite expects in both cases)
    out[member] = {"@none": NULL} if member == "languageMap" and not entity_gone else NULL
    if "datasetId" in old:
        out["datasetId"] = old["datasetId"]
    if show_changes:
        prev = _previous(c, old)
        if prev is not None:
            out[prev[0]] = prev[1]
    if opts.sys_attrs:
        for key in ("createdAt", "modifiedAt"):
            if key in old:
                out[key] = old[key]
        out["deletedAt"] = now
    return out


def _add_deleted(out: dict[str, Any], c: Compiled, ev: ChangeEvent, opts: RenderOptions, now: str) -> None:
    """Attributes (or datasetId instances) the change deleted, rendered as NGSI-LD Null."""
    gone = deleted_instances(ev)
    if not gone:
        return
    show_changes = bool(c.doc["notification"].get("showChanges"))
    for iri, instances in gone.items():
        if opts.attrs is not None and iri not in opts.attrs:
            continue
        if ev.kind == "delete" and c.watched is not None and iri not in c.watched:
            continue
        if opts.dataset_id is not None:
            instances = [i for i in instances if i.get("datasetId", "@none") in opts.dataset_id]
        gone_whole = ev.kind == "delete" or iri not in ((ev.after or {}).get("attrs") or {})
        if gone_whole and len(instances) > 1:  # the attribute as a whole is deleted: one Null stands for it
            instances = [next((i for i in instances if "datasetId" not in i), instances[0])]
        nulls = [_null_instance(c, i, opts, show_changes, now, ev.kind == "delete") for i in instances]
        if not nulls:
            continue
        name = c.notify_tm.compact(iri)
        current = out.get(name)
        if opts.format == SIMPLIFIED and not gone_whole:
            # a Multi-Attribute's values keyed by datasetId, the deleted ones as NGSI-LD Null (4.5.4)
            out[name] = {"dataset": {**_simplified_datasets(ev, iri, current, opts),
                                     **{i.get("datasetId", "@none"): NULL for i in instances}}}
        elif current is None:
            out[name] = nulls[0] if len(nulls) == 1 else nulls
        elif opts.format != SIMPLIFIED:
            out[name] = [*(current if isinstance(current, list) else [current]), *nulls]


def _simplified_datasets(ev: ChangeEvent, iri: str, current: Any, opts: RenderOptions) -> dict[str, Any]:
    """The remaining instances of an attribute in the simplified form, keyed by datasetId: ``current``
    is the renderer's dataset map when several remain, their one value when one does."""
    remaining = ((ev.after or {}).get("attrs") or {}).get(iri) or []
    if opts.dataset_id is not None:
        remaining = [i for i in remaining if i.get("datasetId", "@none") in opts.dataset_id]
    if current is None or not remaining:
        return {}
    if len(remaining) == 1:
        return {remaining[0].get("datasetId", "@none"): current}
    return dict(current["dataset"]) if isinstance(current, dict) and "dataset" in current else {}


def to_geojson(entities: list[dict[str, Any]], keyvalues: bool) -> dict[str, Any]:
    """A FeatureCollection: ``location`` becomes the geometry, everything else the properties."""
    features = []
    for e in entities:
        props = {k: v for k, v in e.items() if k != "id"}
        loc = e.get("location")
        geometry = loc if keyvalues or not isinstance(loc, dict) or "value" not in loc else loc["value"]
        features.append({"id": e.get("id"), "type": "Feature",
                         "geometry": geometry if isinstance(geometry, dict) else None, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _render_entity(c: Compiled, entity: dict[str, Any], ev: ChangeEvent | None, opts: RenderOptions,
                   now: str) -> dict[str, Any]:
    if ev is not None and ev.kind == "delete":
        types = [c.notify_tm.compact(t) for t in entity.get("type", ())]
        out: dict[str, Any] = {"id": entity["id"], "type": types[0] if len(types) == 1 else types}
        if opts.sys_attrs:
            for key in ("createdAt", "modifiedAt"):
                if key in entity:
                    out[key] = entity[key]
        out["deletedAt"] = now
        if "attributeDeleted" in c.triggers or c.doc["notification"].get("showChanges"):
            _add_deleted(out, c, ev, opts, now)  # every attribute is gone: as NGSI-LD Null
        return out
    out = Renderer(c.notify_tm, opts).entity(entity)
    if opts.sys_attrs and opts.format == SIMPLIFIED:
        for key in ("createdAt", "modifiedAt"):
            if key in entity:
                out[key] = entity[key]
    if ev is not None:
        if c.doc["notification"].get("showChanges") and opts.format != SIMPLIFIED:
            _add_previous(out, c, ev, opts)
        if ev.kind == "update":
            _add_deleted(out, c, ev, opts, now)
    return out


def render_key(c: Compiled) -> tuple[Any, ...]:
    """What a notification's data depends on besides the change: subscriptions sharing it share one rendering."""
    key = c.memo.get("key")
    if key is None:
        key = c.memo["key"] = (_make_render_key(c), needs_linker(c))
    return key  # type: ignore[no-any-return]


def _make_render_key(c: Compiled) -> tuple[Any, ...]:
    n = c.doc["notification"]
    return (id(c.notify_tm), n.get("format"), n.get("sysAttrs"), n.get("showChanges"), str(n.get("pick")),
            str(n.get("omit")), n.get("join"), n.get("joinLevel"),
            tuple(n.get("attributes") or ()), tuple(c.doc.get("datasetId") or ()), c.doc.get("lang"),
            n["endpoint"].get("accept"), c.watched, "attributeDeleted" in c.triggers)


def needs_linker(c: Compiled) -> bool:
    """Linked entities or projections: rendered by the query Linker, which reads the store."""
    n = c.doc["notification"]
    return bool(n.get("join") not in (None, "@none") or n.get("pick") or n.get("omit"))


async def render_linked(store: Store, c: Compiled, entities: list[dict[str, Any]], ev: ChangeEvent | None,
                        now: str) -> Any:
    """Like ``render_data`` with ``join`` / ``pick`` / ``omit`` applied as a query would."""
    if ev is not None and ev.kind == "delete":
        return render_data(c, entities, ev, now)
    n = c.doc["notification"]
    pick, omit = parse_projection(n.get("pick"), "pick"), parse_projection(n.get("omit"), "omit")
    opts = projection_options(_render_options(c), c.notify_tm, pick, omit)
    linker = Linker(store, c.tenant, c.notify_tm, opts, join_options(n.get("join"), n.get("joinLevel")), pick, omit)
    data = [r for _, r in await linker.render(entities) if r]
    if ev is not None and data and n.get("showChanges") and opts.format != SIMPLIFIED:
        _add_previous(data[0], c, ev, opts)
    if ev is not None and data and ev.kind == "update":
        _add_deleted(data[0], c, ev, opts, now)
    if n["endpoint"].get("accept") == GEOJSON:
        return to_geojson(data, opts.format == SIMPLIFIED)
    return data


def render_data(c: Compiled, entities: list[dict[str, Any]], ev: ChangeEvent | None, now: str) -> Any:
    opts = _render_options(c)
    data = [_render_entity(c, entity, ev, opts, now) for entity in entities]
    if c.doc["notification"]["endpoint"].get("accept") == GEOJSON:
        return to_geojson(data, opts.format == SIMPLIFIED)
    return data


_ID_PREFIX = "urn:ngsi-ld:Notification:" + "-".join(
    (r := uuid.uuid4().hex)[i:j] for i, j in ((0, 8), (8, 12), (12, 16), (16, 20))) + "-"
_ID_COUNTER = itertools.count()


def notification_id() -> str:
    """A unique notification id, UUID-shaped: random per process, then a counter (``uuid4`` per
    notification cost more than the rest of building it)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


def notification_item(c: Compiled, data: Any, now: str, core_context: str) -> dict[str, Any]:
    """One pending notification, complete enough to be sent after a restart without the entity."""
    doc = c.doc
    return {
        "subscriptionId": doc["id"],
        "tenant": c.tenant,
        "endpoint": doc["notification"]["endpoint"],
        "context": doc.get("jsonldContext") or doc.get("@context") or core_context,
        "throttling": doc.get("throttling"),
        "notification": {"id": notification_id(), "type": "Notification",
                         "subscriptionId": doc["id"], "notifiedAt": now, "data": data},
    }


class NotificationService:
    def __init__(self, store: Store, subscriptions: SubscriptionService, outbox: Outbox,
                 delivery: DeliveryService, core_context: str, tick: float = 0.1) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.delivery = delivery
        self.core_context = core_context
        self.tick = tick
        self._period: dict[tuple[str, str], tuple[Any, int]] = {}  # (interval, last period seen) per subscription
        self._periodic_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        delivery.is_live = lambda tenant, sub_id: subscriptions.compiled(tenant, sub_id) is not None

    async def start(self) -> None:
        """Deliver what a previous run left in the outbox, then start the periodic scheduler."""
        tenants = sorted(set(await self.store.tenants()) | {""})
        recovered = await self.outbox.recover(tenants)
        if recovered:
            log.info("re-queued undelivered notifications", extra={"fields": {"count": len(recovered)}})
        self.delivery.enqueue(recovered)
        self._periodic_task = asyncio.create_task(self._periodic_loop(), name="periodic-notifications")

    async def close(self) -> None:
        tasks = [t for t in (self._periodic_task, *self._running) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            await stop(t)

    # ------------------------------------------------------------ change listener
    async def on_changes(self, events: list[ChangeEvent]) -> None:
        """EventBus listener: match, render, persist to the outbox, queue. Awaited by the write path."""
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        now = ""
        for ev in events:
            idx = self.subscriptions.index(ev.tenant)
            if idx is None or not idx.subs:
                continue
            entity = ev.after if ev.after is not None else ev.before
            if entity is None:
                continue
            now = now or now_iso()
            rendered: dict[tuple[Any, ...], Any] = {}  # one rendering per (context, format, ...) per change
            for c in idx.candidates(entity):
                if matches(c, ev, now):
                    key = render_key(c)
                    data = rendered.get(key)
                    if data is None:
                        data = rendered[key] = (await render_linked(self.store, c, [entity], ev, now)
                                                if key[1] else render_data(c, [entity], ev, now))
                    by_tenant.setdefault(ev.tenant, []).append(notification_item(c, data, now, self.core_context))
        for tenant, items in by_tenant.items():
            self.delivery.enqueue(await self.outbox.add(tenant, items))

    # ------------------------------------------------------------ periodic subscriptions
    # Periods are counted on the wall clock from the subscription's creation, the same on every
    # process. The process that first inserts the period's document in the store (an insert is
    # atomic on every server, even where conditional updates are not) sends that period's
    # notification, so several processes on one database notify once per interval in total.
    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self._schedule()
            except Exception:  # noqa: BLE001 - keep the scheduler alive
                log.exception("periodic scheduling failed")

    def _schedule(self) -> None:
        wall = time.time()
        now = now_iso()
        live: set[tuple[str, str]] = set()
        for tenant, idx in list(self.subscriptions.indexes.items()):
            for c in idx.periodic():
                key = (tenant, c.id)
                live.add(key)
                period = period_of(c, wall)
                mark = (c.doc["timeInterval"], c.doc.get("createdAt"))
                last = self._period.get(key)
                self._period[key] = (mark, period)
                if last is None or last[0] != mark or period <= last[1]:
                    continue  # first sight (or a new interval): the next period is the first one
                if c.is_active(now):
                    self._spawn(self._periodic(c, period))
        for key in list(self._period):
            if key not in live:  # deleted or no longer periodic: drop its period documents too
                del self._period[key]
                self._spawn(self._drop_leases(*key))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _drop_leases(self, tenant: str, sub_id: str) -> None:
        try:
            docs = await self.store.list_docs(tenant, LEASES, prefix=f"{sub_id} ")
            await self.store.delete_docs(tenant, LEASES, [d["key"] for d in docs if "key" in d])
        except Exception:  # noqa: BLE001 - a leftover document is harmless
            log.exception("cannot drop periodic leases", extra={"fields": {"subscription": sub_id}})

    async def _claim(self, c: Compiled, period: int) -> bool:
        """True when this process is the first to take ``period`` of ``c`` (then it drops older periods)."""
        base = f"{c.id} {c.doc['timeInterval']} "  # periods of another interval never collide
        try:
            key = f"{base}{period}"
            await self.store.insert_doc(c.tenant, LEASES, key, {"key": key, "at": now_iso()})
        except AlreadyExists:
            return False
        await self.store.delete_docs(c.tenant, LEASES, [f"{base}{period - 1}", f"{base}{period - 2}"])
        return True

    async def _periodic(self, c: Compiled, period: int) -> None:
        try:
            if not await self._claim(c, period):
                return
            found: dict[str, dict[str, Any]] = {}
            for sel in c.selectors:
                query = EntityQuery(ids=[sel.id] if sel.id else None,
                                    id_pattern=sel.id_pattern.pattern if sel.id_pattern else None,
                                    types=sel.types, q=c.q, scope_q=c.scope_q, geo_q=c.geo_q)
                async for entity in self.store.scan_entities(c.tenant, query):
                    found.setdefault(entity["id"], entity)
                    if len(found) >= MAX_PERIODIC_ENTITIES:
                        break
            if not found:
                return
            now = now_iso()
            entities = list(found.values())
            data = (await render_linked(self.store, c, entities, None, now) if needs_linker(c)
                    else render_data(c, entities, None, now))
            item = notification_item(c, data, now, self.core_context)
            self.delivery.enqueue(await self.outbox.add(c.tenant, [item]))
        except Exception:  # noqa: BLE001 - logged; the next period tries again
            log.exception("periodic notification failed", extra={"fields": {"subscription": c.id}})
