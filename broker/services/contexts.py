"""The @context registry behind /ngsi-ld/v1/jsonldContexts (clause 5.13): list, serve, add, delete, reload.

The documents themselves live in the ``ContextResolver`` (memory) and the store's default tenant
(so cached and hosted contexts survive a restart and are shared by broker processes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..errors import BadRequestData, InvalidRequest, ResourceNotFound
from ..jsonld.core import core_document, is_core_url
from ..jsonld.resolver import (
    KIND_CACHED,
    KIND_HOSTED,
    KINDS,
    LOCAL_PREFIX,
    ContextEntry,
    ContextResolver,
)
from ..store.base import DEFAULT_TENANT, Store
from ..timeutil import format_iso

CONTEXTS = "contexts"


class StoreContextPersistence:
    """Keeps downloaded, hosted and implicit @context documents in the store's default tenant."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def save_context(self, entry: dict[str, Any]) -> None:
        await self.store.put_doc(DEFAULT_TENANT, CONTEXTS, entry["url"], entry)

    async def delete_context(self, url: str) -> None:
        await self.store.delete_doc(DEFAULT_TENANT, CONTEXTS, url)

    async def load_contexts(self) -> list[dict[str, Any]]:
        return await self.store.list_docs(DEFAULT_TENANT, CONTEXTS)

    async def get_context(self, url: str) -> dict[str, Any] | None:
        return await self.store.get_doc(DEFAULT_TENANT, CONTEXTS, url)


class ContextService:
    """Operations of the jsonldContexts resource; raises NGSI-LD errors the middleware renders."""

    def __init__(self, resolver: ContextResolver, core_url: str) -> None:
        self.resolver = resolver
        self.core_url = core_url
        self.core_entry = ContextEntry(url=core_url, document=core_document(core_url), kind=KIND_CACHED,
                                       local_id="ngsi-ld-core-context", created_at=resolver.started_at)

    # ------------------------------------------------------------------ queries
    def list(self, kind: str | None) -> list[ContextEntry]:
        """Every known context, newest first; the broker's own core context is listed as Cached."""
        if kind is not None and kind not in KINDS:
            raise BadRequestData(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        entries = [*self.resolver.entries.values(), self.core_entry]
        if kind is not None:
            entries = [e for e in entries if e.kind == kind]
        return sorted(entries, key=lambda e: e.created_at, reverse=True)

    def get(self, context_id: str) -> ContextEntry:
        entry = self.find(context_id)
        if entry is None:
            raise ResourceNotFound(f"No @context {context_id!r} is known to this broker")
        return entry

    def find(self, context_id: str) -> ContextEntry | None:
        """A context by localId, by its URL, or by one of our own jsonldContexts URLs."""
        if context_id in (self.core_url, self.core_entry.local_id):
            return self.core_entry
        if is_core_url(context_id):
            return ContextEntry(url=context_id, document=core_document(context_id), kind=KIND_CACHED,
                                local_id=context_id.rsplit("/", 1)[-1].removesuffix(".jsonld"),
                                created_at=self.resolver.started_at)
        return self.resolver.by_id.get(context_id) or self.resolver.lookup(context_id)

    @staticmethod
    def info(entry: ContextEntry, origin: str) -> dict[str, Any]:
        """The ContextInfo (details=true) of one entry; local URLs are made absolute with ``origin``."""
        out: dict[str, Any] = {"URL": origin + entry.url if entry.is_local else entry.url,
                               "localId": entry.local_id, "kind": entry.kind, "createdAt": entry.created_at}
        if entry.last_usage is not None:
            out["lastUsage"] = format_iso(datetime.fromtimestamp(entry.last_usage, UTC))
        if not is_core_url(entry.url):
            out["numberOfHits"] = entry.hits
        return out

    # ------------------------------------------------------------------ changes
    async def add(self, body: Any) -> ContextEntry:
        """Host a context document ``{"@context": ...}``; its references are fetched (and cached) first."""
        if not isinstance(body, dict) or "@context" not in body:
            raise InvalidRequest('The body must be a JSON object with an "@context" member')
        extra = sorted(k for k in body if k != "@context")
        if extra:
            raise InvalidRequest(f"Unexpected members in a context document: {', '.join(extra)}")
        context = body["@context"]
        if not isinstance(context, (str, list, dict)):
            raise InvalidRequest("@context must be a string, an array or an object")
        await self.resolver.validate(context)
        return await self.resolver.add_hosted({"@context": context})

    async def delete(self, context_id: str, reload: bool) -> None:
        """Delete a context, or with ``reload`` download a Cached one again (clause 5.13.5)."""
        entry = self.find(context_id)
        if entry is None:
            if reload:
                raise BadRequestData(f"reload=true needs a Cached @context; {context_id!r} is not known")
            raise ResourceNotFound(f"No @context {context_id!r} is known to this broker")
        if is_core_url(entry.url):
            if reload:
                return  # the core context is built in; there is nothing newer to download
            raise BadRequestData("The core @context cannot be deleted")
        if reload:
            if entry.kind != KIND_CACHED:
                raise BadRequestData(f"Only Cached @contexts can be reloaded; this one is {entry.kind}")
            await self.resolver.reload(entry)
            return
        await self.resolver.forget(entry.url)


def location_of(entry: ContextEntry) -> str:
    """The Location of a newly hosted context (relative, like the entity Location headers)."""
    return LOCAL_PREFIX + entry.local_id


__all__ = ["KIND_HOSTED", "ContextService", "StoreContextPersistence", "location_of"]
