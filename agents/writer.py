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

from agents.errors import InvalidMeasure, WriteFailed
from broker.api import keys
from broker.entities.expand import Expander
from broker.errors import NgsiLdError
from broker.jsonld.termmap import TermMap
from broker.timeutil import now_iso

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

    async def start(self) -> None:
        self.tm = await self.app[keys.RESOLVER].resolve(self.context)

    async def close(self) -> None:
        return None

    async def term_map(self) -> TermMap:
        if self.tm is None:
            self.tm = await self.app[keys.RESOLVER].resolve(self.context)
        return self.tm

    async def prepare(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        expander = Expander(await self.term_map(), now_iso())
        try:
            return [expander.entity(e) for e in entities]
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
