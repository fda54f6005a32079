"""Where mapped measures go: the broker's own write path in-process, or any NGSI-LD broker over HTTP.

In-process, entities are expanded with the agents' @context (``IOTA_JSON_LD_CONTEXT``, default the core
context) and written with ``BatchService.upsert_entities(mode="update", source="agent")``, so they take the
same validation, storage and change events (subscriptions) as an API upsert. With ``IOTA_CB_URL`` the
agent instead sends ``POST {cb}/ngsi-ld/v1/entityOperations/upsert?options=update`` exactly as
iotagent-node-lib does (inline ``@context`` per entity, ``NGSILD-Tenant`` plus ``fiware-service`` /
``fiware-servicepath`` headers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import web

from agents import clock
from agents.errors import InvalidMeasure, WriteFailed
from broker.api import keys
from broker.entities.expand import (
    ENTITY_MEMBERS,
    INT_MAX,
    INT_MIN,
    NGSILD_NULL,
    Expander,
    check_entity_id,
    check_name,
    expand_types,
)
from broker.errors import BadRequestData, NgsiLdError
from broker.jsonld.termmap import TermMap
from broker.timeutil import normalize_iso

log = logging.getLogger("agents.writer")

SOURCE = "agent"


@dataclass(slots=True)
class WriteOutcome:
    """Entity ids the broker refused, with the reason (everything else was written)."""

    failed: dict[str, str] = field(default_factory=dict)


class Writer(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def prepare(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Turn NGSI-LD entities (no @context) into what ``write`` takes; InvalidMeasure when refused."""

    async def write(self, tenant: str, servicepath: str, entities: list[dict[str, Any]]) -> WriteOutcome: ...

    async def read(self, tenant: str, entity_id: str, names: list[str]) -> dict[str, Any] | None:
        """Current values of some attributes of an entity (configuration requests)."""


def json_ld_context(setting: str) -> Any:
    """``IOTA_JSON_LD_CONTEXT`` as the @context value: None (core), one URL, or a list."""
    items = [s.strip() for s in setting.split(",") if s.strip()]
    if not items:
        return None
    return items[0] if len(items) == 1 else items


class LocalWriter:
    """Writes through the broker app's batch service: one ``upsert_entities`` call per grouped write."""

    def __init__(self, app: web.Application, context: Any) -> None:
        self.app = app
        self.context = context
        self.tm: TermMap | None = None
        self._trusted: TrustedExpander | None = None

    async def start(self) -> None:
        self.tm = await self.app[keys.RESOLVER].resolve(self.context)

    async def close(self) -> None:
        return None

    async def term_map(self) -> TermMap:
        if self.tm is None:
            self.tm = await self.app[keys.RESOLVER].resolve(self.context)
        return self.tm

    async def prepare(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        tm = await self.term_map()
        if self._trusted is None or self._trusted.tm is not tm:
            self._trusted = TrustedExpander(tm)
        try:
            # now_iso()'s text, formatted once per millisecond
            return self._trusted.entities(entities, clock.now_iso())
        except NgsiLdError as exc:
            raise InvalidMeasure(exc.detail if hasattr(exc, "detail") else str(exc)) from None

    async def write(self, tenant: str, servicepath: str, entities: list[dict[str, Any]]) -> WriteOutcome:
        result = await self.app[keys.BATCH].upsert_entities(tenant, entities, mode="update", source=SOURCE)
        outcome = WriteOutcome()
        for err in result.errors:
            entity_id, reason = _error_of(err)
            outcome.failed[entity_id] = reason
        return outcome

    async def read(self, tenant: str, entity_id: str, names: list[str]) -> dict[str, Any] | None:
        try:
            entity = await self.app[keys.ENTITIES].get(tenant, entity_id)
        except NgsiLdError:
            return None
        tm = await self.term_map()
        out: dict[str, Any] = {}
        for name in names:
            instances = entity.get("attrs", {}).get(tm.expand(name))
            if instances:
                inst = instances[0]
                out[name] = next((inst[m] for m in ("value", "object", "languageMap", "vocab", "json")
                                  if m in inst), None)
        return out


_CACHE_LIMIT = 65536
_SCALARS = (str, int, float)  # bool is an int


class TrustedExpander:
    """``Expander.entity`` for the entities the mapping builds, with the per-name work done once.

    Every measure repeats the same entity types and attribute names, and nearly every attribute is a
    ``{"type": "Property", "value": <scalar>, "observedAt": ...}``: for those the name check and IRI
    expansion are cached and the instance is built directly, the exact stored form ``Expander`` gives.
    Anything else (other attribute types, metadata, entity-member names, an invalid name, id or
    timestamp) goes through ``Expander`` itself, so refusals and their messages are unchanged.
    """

    def __init__(self, tm: TermMap) -> None:
        self.tm = tm
        self.iris: dict[str, str] = {}  # attribute names already checked → IRI
        self.types: dict[str, list[str]] = {}
        self.ids: set[str] = set()
        self.instants: dict[str, str] = {}  # observedAt → normalized (measures of a burst share a few)
        self._full: tuple[str, Expander] | None = None

    def entities(self, entities: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
        return [self.entity(e, now) for e in entities]

    def _expander(self, now: str) -> Expander:
        """An ``Expander`` for the rare attribute or entity the fast path leaves to it."""
        if self._full is None or self._full[0] != now:
            self._full = (now, Expander(self.tm, now))
        return self._full[1]

    def entity(self, body: dict[str, Any], now: str, expander: Expander | None = None) -> dict[str, Any]:
        entity_id, entity_type = body.get("id"), body.get("type")
        if (not isinstance(entity_id, str) or not isinstance(entity_type, str)
                or any(k in ENTITY_MEMBERS for k in body if k != "id" and k != "type")):
            return (expander or self._expander(now)).entity(body)
        if entity_id not in self.ids:
            check_entity_id(entity_id)
            if len(self.ids) < _CACHE_LIMIT:
                self.ids.add(entity_id)
        types = self.types.get(entity_type)
        if types is None:
            types = expand_types(entity_type, self.tm)
            if len(self.types) < _CACHE_LIMIT:
                self.types[entity_type] = types
        attrs: dict[str, list[dict[str, Any]]] = {}
        for name, raw in body.items():
            if name == "id" or name == "type":
                continue
            inst = self._property(name, raw, now)
            if inst is None:
                iri, instances = (expander or self._expander(now)).attribute(name, raw)
            else:
                iri, instances = self._iri(name), [inst]
            if iri in attrs:
                raise BadRequestData(f"Attribute {name} given twice")
            attrs[iri] = instances
        return {"id": entity_id, "type": list(types), "createdAt": now, "modifiedAt": now, "attrs": attrs}

    def _iri(self, name: str) -> str:
        iri = self.iris.get(name)
        if iri is None:
            iri = self.tm.expand(check_name(name))
            if len(self.iris) < _CACHE_LIMIT:
                self.iris[name] = iri
        return iri

    def _property(self, name: str, raw: Any, now: str) -> dict[str, Any] | None:
        """The stored instance of a plain scalar Property, or None when ``Expander`` must decide."""
        if not isinstance(raw, dict) or raw.get("type") != "Property" or name.startswith("@"):
            return None
        value = raw.get("value")
        if not isinstance(value, _SCALARS) or value == NGSILD_NULL:
            return None
        if type(value) is int and not INT_MIN <= value <= INT_MAX:
            return None  # Expander refuses it, as it does for the API
        n = len(raw)
        observed = raw.get("observedAt")
        if observed is not None:
            n -= 1
            normalized = self.instants.get(observed) if isinstance(observed, str) else None
            if normalized is None:
                try:
                    normalized = normalize_iso(observed)
                except ValueError:
                    return None
                if len(self.instants) >= 4096:
                    self.instants.clear()
                self.instants[observed] = normalized
            observed = normalized
        if n != 2:
            return None
        if name not in self.iris:
            try:
                self._iri(name)
            except NgsiLdError:
                return None
        if observed is None:
            return {"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}
        return {"type": "Property", "value": value, "observedAt": observed, "createdAt": now, "modifiedAt": now}


def _error_of(err: Any) -> tuple[str, str]:
    """``(entity_id, NgsiLdError)`` from BatchService, or an NGSI-LD batch error object from a remote broker."""
    if isinstance(err, tuple) and len(err) == 2:
        exc = err[1]
        return str(err[0]), getattr(exc, "detail", None) or str(exc)
    if isinstance(err, dict):
        entity_id = err.get("entityId") or err.get("id") or ""
        detail = err.get("error", err)
        return entity_id, detail.get("detail", str(detail)) if isinstance(detail, dict) else str(detail)
    entity_id = getattr(err, "entity_id", None) or getattr(err, "entityId", "") or ""
    return entity_id, str(getattr(err, "error", err))


class RemoteWriter:
    """Upserts into a remote NGSI-LD broker the way iotagent-node-lib's LD northbound does."""

    def __init__(self, cb_url: str, context: Any, core_context: str, timeout: float = 10.0) -> None:
        self.url = cb_url.rstrip("/") + "/ngsi-ld/v1/entityOperations/upsert?options=update"
        self.entities_url = cb_url.rstrip("/") + "/ngsi-ld/v1/entities/"
        self.context = context if context is not None else core_context
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def prepare(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**e, "@context": self.context} for e in entities]

    @staticmethod
    def headers(tenant: str, servicepath: str, content_type: str | None = None) -> dict[str, str]:
        h = {"fiware-service": tenant, "fiware-servicepath": servicepath or "/"}
        if tenant:
            h["NGSILD-Tenant"] = tenant
        if content_type:
            h["Content-Type"] = content_type
        return h

    async def write(self, tenant: str, servicepath: str, entities: list[dict[str, Any]]) -> WriteOutcome:
        assert self.session is not None, "RemoteWriter.start() was not awaited"
        outcome = WriteOutcome()
        try:
            async with self.session.post(self.url, data=orjson.dumps(entities),
                                         headers=self.headers(tenant, servicepath, "application/ld+json")) as r:
                body = await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WriteFailed(f"{self.url}: {exc!r}", 500) from None
        if status in (200, 201, 204):
            return outcome
        if status == 207:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = {}
            for err in data.get("errors", []) if isinstance(data, dict) else []:
                entity_id, reason = _error_of(err)
                outcome.failed[entity_id] = reason
            return outcome
        if status in (401, 403):
            raise WriteFailed(f"access forbidden ({status})", 403)
        raise WriteFailed(f"context broker answered {status}: {body[:300].decode(errors='replace')}", 500)

    async def read(self, tenant: str, entity_id: str, names: list[str]) -> dict[str, Any] | None:
        assert self.session is not None
        link = self.context if isinstance(self.context, str) else None
        headers = self.headers(tenant, "/")
        if link:
            headers["Link"] = f'<{link}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        try:
            async with self.session.get(self.entities_url + entity_id, params={"options": "keyValues"},
                                        headers=headers) as r:
                if r.status != 200:
                    return None
                data = orjson.loads(await r.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None
        return {n: data.get(n) for n in names if n in data}
