"""Subscriptions: validation, storage, and the per-tenant in-memory index the matcher reads.

The store is the source of truth. Every write bumps a per-tenant revision document (a fresh
random token) after writing the subscription, and every broker process polls that one small
document per tenant; when it differs from the last one seen, the process reloads the tenant's
subscriptions. Writers never mark their own token as seen, so a lost race between two writers
still ends in a reload, and a subscription created on any process is honoured by all of them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from models.subscriptions import DEFAULT_TRIGGERS, MQTT_VERSIONS, SubscriptionIn

from ..entities.expand import check_name, is_uri
from ..errors import BadRequestData, NonexistentTenant, ResourceNotFound
from ..jsonld.resolver import ContextResolver
from ..jsonld.termmap import TermMap
from ..periodic import every, stop
from ..query.ast import GeoQuery, QNode, ScopeNode, TypeName, TypeNode
from ..query.evaluator import match_types
from ..query.parser import parse_geoq, parse_q, parse_scope_q, parse_type_expr
from ..query.regex import compile_regex
from ..store.base import DEFAULT_TENANT, Store
from ..timeutil import now_iso, parse_iso
from .linked import join_options, parse_projection

log = logging.getLogger(__name__)

SUBSCRIPTIONS = "subscriptions"
META = "meta"
REVISION_KEY = "subscriptions-revision"
SCHEMES = ("http", "https", "mqtt", "mqtts")
ORDER = "_order"
_TYPE_NAME = re.compile(r"[^,;|()\s]+")


def _identity(name: str) -> str:
    return name


# ---------------------------------------------------------------------------------- compiled form


@dataclass(slots=True)
class Selector:
    id: str | None
    id_pattern: re.Pattern[str] | None
    types: TypeNode

    def matches(self, entity: dict[str, Any]) -> bool:
        if self.id is not None:
            if entity["id"] != self.id:
                return False
        elif self.id_pattern is not None and not self.id_pattern.fullmatch(entity["id"]):
            return False
        return match_types(self.types, entity)


@dataclass(slots=True)
class Compiled:
    """A stored subscription with its queries parsed, ready for matching and rendering."""

    tenant: str
    doc: dict[str, Any]
    notify_tm: TermMap           # compacts notifications (jsonldContext, else the subscription's @context)
    selectors: list[Selector]
    watched: frozenset[str] | None
    triggers: frozenset[str]
    q: QNode | None
    geo_q: GeoQuery | None
    scope_q: ScopeNode | None
    # what notifications derive from the document alone (render options, keys), computed once
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.doc["id"]

    def is_active(self, now: str) -> bool:
        expires = self.doc.get("expiresAt")
        return bool(self.doc.get("isActive", True)) and (expires is None or expires > now)


class TenantIndex:
    """Subscriptions of one tenant, indexed by entity id and by type IRI; the rest in a general list."""

    def __init__(self, subs: Iterable[Compiled] = ()) -> None:
        self.subs: dict[str, Compiled] = {}
        self.by_id: dict[str, set[str]] = {}
        self.by_type: dict[str, set[str]] = {}
        self.general: set[str] = set()
        for c in subs:
            self.add(c)

    def _keys(self, c: Compiled) -> list[tuple[dict[str, set[str]] | None, str]]:
        if not c.selectors:  # watchedAttributes only: every entity
            return [(None, "")]
        keys: list[tuple[dict[str, set[str]] | None, str]] = []
        for s in c.selectors:
            if s.id is not None:
                keys.append((self.by_id, s.id))
            elif isinstance(s.types, TypeName):
                keys.append((self.by_type, s.types.iri))
            else:
                keys.append((None, ""))
        return keys

    def add(self, c: Compiled) -> None:
        self.remove(c.id)
        self.subs[c.id] = c
        for table, key in self._keys(c):
            if table is None:
                self.general.add(c.id)
            else:
                table.setdefault(key, set()).add(c.id)

    def remove(self, sub_id: str) -> None:
        old = self.subs.pop(sub_id, None)
        if old is None:
            return
        for table, key in self._keys(old):
            if table is None:
                self.general.discard(sub_id)
            else:
                bucket = table.get(key)
                if bucket is not None:
                    bucket.discard(sub_id)
                    if not bucket:
                        del table[key]

    def candidates(self, entity: dict[str, Any]) -> list[Compiled]:
        ids: set[str] = set(self.general)
        hit = self.by_id.get(entity["id"])
        if hit:
            ids |= hit
        for t in entity.get("type", ()):
            hit = self.by_type.get(t)
            if hit:
                ids |= hit
        return [self.subs[i] for i in ids if i in self.subs]

    def periodic(self) -> list[Compiled]:
        return [c for c in self.subs.values() if c.doc.get("timeInterval")]


# ---------------------------------------------------------------------------------- validation


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "subscription"
        parts.append(f"{loc}: {err['msg']}")
    return "Invalid subscription: " + "; ".join(parts)


def _expand_type_expr(text: str, tm: TermMap) -> str:
    for name in _TYPE_NAME.findall(text):
        check_name(name, "entity type")
    expanded = _TYPE_NAME.sub(lambda m: tm.expand(m.group(0)), text)
    parse_type_expr(expanded, _identity, cache_key="iri")  # syntax check
    return expanded


def compact_type_expr(text: str, tm: TermMap) -> str:
    return _TYPE_NAME.sub(lambda m: tm.compact(m.group(0)), text)


def check_endpoint_uri(uri: str) -> None:
    if not is_uri(uri):
        raise BadRequestData(f"Invalid notification endpoint URI {uri!r}")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BadRequestData(f"Unsupported notification endpoint scheme {scheme!r}; use one of "
                             f"{', '.join(SCHEMES)}")
    try:
        port = parts.port
    except ValueError:
        raise BadRequestData(f"Invalid port in notification endpoint URI {uri!r}") from None
    del port
    if not parts.hostname:
        raise BadRequestData(f"Notification endpoint URI {uri!r} has no host")
    if scheme.startswith("mqtt") and not parts.path.strip("/"):
        raise BadRequestData(f"MQTT notification endpoint {uri!r} needs a topic (mqtt://host:port/topic)")


def _check_notifier_info(pairs: list[dict[str, str]] | None) -> None:
    for kv in pairs or ():
        if kv["key"] == "MQTT-Version" and kv["value"] not in MQTT_VERSIONS:
            raise BadRequestData(f"notifierInfo MQTT-Version must be one of {', '.join(MQTT_VERSIONS)}")
        if kv["key"] == "MQTT-QoS" and kv["value"] not in ("0", "1", "2"):
            raise BadRequestData("notifierInfo MQTT-QoS must be 0, 1 or 2")


def build_subscription(body: Any, tm: TermMap, context: Any, now: str, *,
                       check_expiry: bool = True) -> dict[str, Any]:
    """Validate a subscription written with compact names; return its stored (expanded) form."""
    if not isinstance(body, dict):
        raise BadRequestData("A subscription must be a JSON object")
    try:
        sub = SubscriptionIn.model_validate(body)
    except ValidationError as exc:
        raise BadRequestData(_validation_message(exc)) from None
    if sub.id is not None and not is_uri(sub.id):
        raise BadRequestData(f"Subscription id must be a URI, got {sub.id!r}")
    if sub.entities is None and sub.watchedAttributes is None:
        raise BadRequestData("A subscription needs entities or watchedAttributes")
    if sub.timeInterval is not None and sub.watchedAttributes is not None:
        raise BadRequestData("timeInterval and watchedAttributes cannot be used together")
    if sub.timeInterval is not None and sub.throttling is not None:
        raise BadRequestData("timeInterval and throttling cannot be used together")
    if sub.timeInterval is not None and sub.entities is None:
        raise BadRequestData("A periodic subscription (timeInterval) needs entities")
    doc: dict[str, Any] = {"id": sub.id or f"urn:ngsi-ld:Subscription:{uuid.uuid4()}", "type": "Subscription"}
    for name in ("subscriptionName", "description", "csf", "lang", "timeInterval", "throttling"):
        value = getattr(sub, name)
        if value is not None:
            doc[name] = value
    if sub.entities is not None:
        selectors = []
        for sel in sub.entities:
            out: dict[str, Any] = {"type": _expand_type_expr(sel.type, tm)}
            if sel.id is not None:
                if not is_uri(sel.id):
                    raise BadRequestData(f"entities: id must be a URI, got {sel.id!r}")
                out["id"] = sel.id
            if sel.idPattern is not None:
                compile_regex(sel.idPattern)
                out["idPattern"] = sel.idPattern
            selectors.append(out)
        doc["entities"] = selectors
    if sub.watchedAttributes is not None:
        doc["watchedAttributes"] = [tm.expand(check_name(a)) for a in sub.watchedAttributes]
    doc["notificationTrigger"] = list(dict.fromkeys(sub.notificationTrigger or DEFAULT_TRIGGERS))
    if sub.q is not None:
        parse_q(unquote(sub.q), tm.expand, cache_key=tm)
        doc["q"] = sub.q
    if sub.geoQ is not None:
        g = sub.geoQ
        parse_geoq(g.georel, g.geometry, g.coordinates, g.geoproperty, tm.expand)
        doc["geoQ"] = g.model_dump(exclude_none=True)
    if sub.scopeQ is not None:
        parse_scope_q(sub.scopeQ)
        doc["scopeQ"] = sub.scopeQ
    if sub.expiresAt is not None:
        try:
            expires = parse_iso(sub.expiresAt)
        except ValueError:
            raise BadRequestData(f"expiresAt must be a date-time, got {sub.expiresAt!r}") from None
        from ..timeutil import format_iso

        doc["expiresAt"] = format_iso(expires)
        if check_expiry and doc["expiresAt"] <= now:
            raise BadRequestData("expiresAt is in the past")
    if "isActive" in sub.model_fields_set:  # shown back only when given; absent means true
        doc["isActive"] = sub.isActive
    if sub.datasetId is not None:
        for ds in sub.datasetId:
            if ds != "@none" and not is_uri(ds):
                raise BadRequestData(f"datasetId must be URIs or @none, got {ds!r}")
        doc["datasetId"] = sub.datasetId
    if sub.jsonldContext is not None:
        if not is_uri(sub.jsonldContext):
            raise BadRequestData(f"jsonldContext must be a URI, got {sub.jsonldContext!r}")
        doc["jsonldContext"] = sub.jsonldContext
    n = sub.notification
    ep = n.endpoint
    check_endpoint_uri(ep.uri)
    _check_notifier_info([kv.model_dump() for kv in ep.notifierInfo or ()])
    endpoint: dict[str, Any] = {"uri": ep.uri, "accept": ep.accept}
    if ep.timeout is not None:
        endpoint["timeout"] = ep.timeout
    if ep.cooldown is not None:
        endpoint["cooldown"] = ep.cooldown
    if ep.receiverInfo is not None:
        endpoint["receiverInfo"] = [kv.model_dump() for kv in ep.receiverInfo]
    if ep.notifierInfo is not None:
        endpoint["notifierInfo"] = [kv.model_dump() for kv in ep.notifierInfo]
    notification: dict[str, Any] = {"format": "keyValues" if n.format == "simplified" else n.format,
                                    "endpoint": endpoint}
    for flag in ("sysAttrs", "showChanges"):  # shown back only when given
        if flag in n.model_fields_set:
            notification[flag] = getattr(n, flag)
    if n.attributes is not None:
        notification["attributes"] = [tm.expand(check_name(a)) for a in n.attributes]
    if n.pick is not None and n.omit is not None:
        raise BadRequestData("pick and omit cannot be used together")
    if (n.pick is not None or n.omit is not None) and n.attributes is not None:
        raise BadRequestData("pick or omit cannot be used together with attributes")
    for name in ("pick", "omit"):
        value = getattr(n, name)
        if value is not None:
            parse_projection(value, name)  # syntax check; kept as written, applied with the notification's context
            notification[name] = value
    if n.join is not None or n.joinLevel is not None:
        join_options(n.join, n.joinLevel)
        if n.join is not None:
            notification["join"] = n.join
        if n.joinLevel is not None:
            notification["joinLevel"] = n.joinLevel
    doc["notification"] = notification
    doc["@context"] = context
    doc["createdAt"] = doc["modifiedAt"] = now
    doc[ORDER] = time.time_ns()  # listing order: creation order (createdAt has only milliseconds)
    return doc


def subscription_status(doc: dict[str, Any], now: str) -> str:
    expires = doc.get("expiresAt")
    if expires is not None and expires <= now:
        return "expired"
    return "active" if doc.get("isActive", True) else "paused"


def render_subscription(doc: dict[str, Any], tm: TermMap, stats: dict[str, Any] | None, now: str,
                        sys_attrs: bool = False) -> dict[str, Any]:
    """The subscription as clients see it: names compacted with ``tm``, status computed."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("@context", "createdAt", "modifiedAt", ORDER):
            continue
        if key == "entities":
            value = [{**s, "type": compact_type_expr(s["type"], tm)} for s in value]
        elif key == "watchedAttributes":
            value = [tm.compact(a) for a in value]
        elif key == "notification":
            value = dict(value)
            if "attributes" in value:
                value["attributes"] = [tm.compact(a) for a in value["attributes"]]
            value.update(notification_status(stats))
        out[key] = value
    out["status"] = subscription_status(doc, now)
    if sys_attrs:
        out["createdAt"] = doc.get("createdAt")
        out["modifiedAt"] = doc.get("modifiedAt")
    return out


def notification_status(stats: dict[str, Any] | None) -> dict[str, Any]:
    stats = stats or {}
    # counters and status appear once there is something to count (all optional members, 5.2.14)
    out: dict[str, Any] = {k: stats[k] for k in ("timesSent", "timesFailed") if stats.get(k)}
    for key in ("lastNotification", "lastSuccess", "lastFailure"):
        if stats.get(key):
            out[key] = stats[key]
    if stats.get("lastNotification") or stats.get("lastFailure") or stats.get("lastSuccess"):
        # the status of the last attempt: none before the first one (the member is optional, 5.2.14)
        failed = stats.get("lastFailure") and stats.get("lastFailure", "") >= stats.get("lastSuccess", "")
        out["status"] = "failed" if failed else "ok"
    return out


# ---------------------------------------------------------------------------------- the service

class SubscriptionService:
    """CRUD over the store plus the in-memory index, kept in step with the store by polling."""

    def __init__(self, store: Store, resolver: ContextResolver, sync_interval: float = 0.5) -> None:
        self.store = store
        self.resolver = resolver
        self.sync_interval = sync_interval
        self.indexes: dict[str, TenantIndex] = {}
        self._seen: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()

    # ------------------------------------------------------------ lifecycle and sync
    async def start(self) -> None:
        await self.sync()
        self._task = every(self.sync_interval, self.sync, "subscription-sync")

    async def close(self) -> None:
        await stop(self._task)
        self._task = None

    async def sync(self) -> None:
        """Reload the tenants whose revision token changed since we last looked (one doc per tenant)."""
        async with self._reload_lock:
            tenants = set(await self.store.tenants()) | {DEFAULT_TENANT}
            for tenant in list(self.indexes):
                if tenant not in tenants:
                    del self.indexes[tenant]
                    self._seen.pop(tenant, None)
            for tenant in tenants:
                rev = await self.store.get_doc(tenant, META, REVISION_KEY)
                token = rev.get("token") if rev else None
                if tenant in self._seen and self._seen[tenant] == token:
                    continue
                docs = await self.store.list_docs(tenant, SUBSCRIPTIONS)
                old = self.indexes.get(tenant)
                compiled = []
                for doc in docs:
                    prev = old.subs.get(doc.get("id", "")) if old is not None else None
                    if prev is not None and prev.doc == doc:
                        # unchanged: keep it (re-resolving its @context would also count as a use of it)
                        compiled.append(prev)
                        continue
                    try:
                        compiled.append(await self.compile(tenant, doc))
                    except Exception:  # noqa: BLE001 - one bad document must not hide the others
                        log.exception("cannot load subscription %s", doc.get("id"))
                self.indexes[tenant] = TenantIndex(compiled)
                self._seen[tenant] = token

    async def _bump(self, tenant: str) -> None:
        await self.store.put_doc(tenant, META, REVISION_KEY, {"token": uuid.uuid4().hex})

    async def compile(self, tenant: str, doc: dict[str, Any], tm: TermMap | None = None) -> Compiled:
        """``tm``: the @context already resolved for this request (resolving again would count a second use)."""
        if tm is None:
            tm = await self.resolver.resolve(doc.get("@context"))
        notify_tm = await self.resolver.resolve(doc["jsonldContext"]) if doc.get("jsonldContext") else tm
        selectors = []
        for s in doc.get("entities") or ():
            types = parse_type_expr(s["type"], _identity, cache_key="iri")
            pattern = compile_regex(s["idPattern"]) if "idPattern" in s and "id" not in s else None
            selectors.append(Selector(s.get("id"), pattern, types))
        g = doc.get("geoQ")
        geo_q = parse_geoq(g["georel"], g["geometry"], g["coordinates"], g.get("geoproperty"), tm.expand) \
            if g else None
        return Compiled(
            tenant=tenant, doc=doc, notify_tm=notify_tm, selectors=selectors,
            watched=frozenset(doc["watchedAttributes"]) if doc.get("watchedAttributes") else None,
            triggers=frozenset(doc.get("notificationTrigger") or DEFAULT_TRIGGERS),
            # q as in a URL: percent-encoded characters are decoded (the suite writes "Eiffel%20Tower")
            q=parse_q(unquote(doc["q"]), tm.expand, cache_key=tm) if doc.get("q") else None,
            geo_q=geo_q, scope_q=parse_scope_q(doc["scopeQ"]) if doc.get("scopeQ") else None)

    def index(self, tenant: str) -> TenantIndex | None:
        return self.indexes.get(tenant)

    def compiled(self, tenant: str, sub_id: str) -> Compiled | None:
        idx = self.indexes.get(tenant)
        return None if idx is None else idx.subs.get(sub_id)

    # ------------------------------------------------------------ CRUD
    async def _check_tenant(self, tenant: str) -> None:
        if tenant != DEFAULT_TENANT and not await self.store.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")

    async def create(self, tenant: str, body: Any, tm: TermMap, context: Any) -> dict[str, Any]:
        doc = build_subscription(body, tm, context, now_iso())
        compiled = await self.compile(tenant, doc, tm)  # resolves jsonldContext: 503 before anything is stored
        await self.store.insert_doc(tenant, SUBSCRIPTIONS, doc["id"], doc)
        await self._bump(tenant)
        self.indexes.setdefault(tenant, TenantIndex()).add(compiled)
        return doc

    async def get(self, tenant: str, sub_id: str) -> dict[str, Any]:
        await self._check_tenant(tenant)
        doc = await self.store.get_doc(tenant, SUBSCRIPTIONS, sub_id)
        if doc is None:
            raise ResourceNotFound(f"Subscription {sub_id} not found")
        return doc

    async def list(self, tenant: str) -> list[dict[str, Any]]:
        await self._check_tenant(tenant)
        docs = await self.store.list_docs(tenant, SUBSCRIPTIONS)
        docs.sort(key=lambda d: (d.get(ORDER, 0), d.get("createdAt", ""), d["id"]))
        return docs

    async def update(self, tenant: str, sub_id: str, patch: Any, tm_of: Callable[[Any], Any],
                     context: Any, has_context: bool) -> dict[str, Any]:
        """Replace the members of ``patch`` in the subscription as written in the effective @context, re-validate."""
        if not isinstance(patch, dict) or not [k for k in patch if k != "@context"]:
            raise BadRequestData("An update needs at least one subscription member")
        if "id" in patch and patch["id"] != sub_id:
            raise BadRequestData("The id of a subscription cannot be changed")
        if "type" in patch and patch["type"] != "Subscription":
            raise BadRequestData("type must be Subscription")
        old = await self.get(tenant, sub_id)
        ctx = context if has_context else old.get("@context")
        tm: TermMap = await tm_of(ctx)
        current = render_subscription(old, tm, None, now_iso())
        current.pop("status", None)
        current["notification"] = {k: v for k, v in current["notification"].items()
                                   if k not in ("status", "timesSent", "timesFailed", "lastNotification",
                                                "lastSuccess", "lastFailure")}
        # each member of the fragment replaces the stored one as a whole (clause 5.8.2): a
        # ``notification`` without an endpoint is invalid, not merged into the old one
        merged = dict(current)
        for key, value in patch.items():
            if key == "@context":
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        now = now_iso()
        doc = build_subscription(merged, tm, ctx, now, check_expiry="expiresAt" in patch)
        doc["id"] = sub_id
        doc["createdAt"] = old.get("createdAt", now)
        doc[ORDER] = old.get(ORDER, 0)
        compiled = await self.compile(tenant, doc, tm)
        await self.store.put_doc(tenant, SUBSCRIPTIONS, sub_id, doc)
        await self._bump(tenant)
        self.indexes.setdefault(tenant, TenantIndex()).add(compiled)
        return doc

    async def delete(self, tenant: str, sub_id: str) -> None:
        await self._check_tenant(tenant)
        if not await self.store.delete_doc(tenant, SUBSCRIPTIONS, sub_id):
            raise ResourceNotFound(f"Subscription {sub_id} not found")
        await self._bump(tenant)
        idx = self.indexes.get(tenant)
        if idx is not None:
            idx.remove(sub_id)


__all__ = ["Compiled", "SubscriptionService", "TenantIndex", "build_subscription",
           "render_subscription"]
