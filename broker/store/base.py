"""The one async store interface both backends implement (and one contract test suite checks).

Entities are handled in their stored form (expanded IRIs, see ``broker/entities/``); each carries
a version ``_v`` that the store maintains so read-modify-write updates are optimistic and safe
when several broker processes share one database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..query.model import EntityQuery

DEFAULT_TENANT = ""

Doc = dict[str, Any]


class Pager:
    """``offset``/``limit``/``count`` over entities that matched, offered in query order (the part
    both stores share when the query is evaluated in Python)."""

    __slots__ = ("offset", "end", "count", "page", "seen")

    def __init__(self, query: EntityQuery) -> None:
        self.offset, self.end, self.count = query.offset, query.offset + query.limit, query.count
        self.page: list[Doc] = []
        self.seen = 0

    def add(self, entity: Doc) -> bool:
        """Take one match; True once nothing more is needed (the page is full and no count asked)."""
        if self.offset <= self.seen < self.end:
            self.page.append(entity)
        self.seen += 1
        return self.seen >= self.end and not self.count

    def result(self) -> tuple[list[Doc], int | None]:
        return self.page, (self.seen if self.count else None)


class Store(ABC):
    """Entities plus keyed document collections (subscriptions, registrations, devices, ...)."""

    backend: str = "abstract"

    @abstractmethod
    async def start(self) -> None:
        """Connect, create indexes, load what must be in memory."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and files."""

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Group the writes of one operation (a batch) where the backend can commit them together;
        everything is durable when the block ends. MongoDB writes are durable one by one."""
        yield

    @abstractmethod
    async def describe(self) -> dict[str, Any]:
        """Backend name and version, for /version and the test output."""

    @abstractmethod
    async def ping(self) -> bool: ...

    # ---------------------------------------------------------------- tenants
    @abstractmethod
    async def tenant_exists(self, tenant: str) -> bool: ...

    @abstractmethod
    async def tenants(self) -> list[str]: ...

    @abstractmethod
    async def drop_tenant(self, tenant: str) -> None:
        """Delete everything of one tenant (used by tests and administration)."""

    # ---------------------------------------------------------------- entities
    @abstractmethod
    async def create_entity(self, tenant: str, entity: Doc) -> None:
        """Insert a new entity; raise ``AlreadyExists`` when the id is taken. Sets ``_v`` to 1."""

    @abstractmethod
    async def get_entity(self, tenant: str, entity_id: str) -> Doc | None: ...

    @abstractmethod
    async def get_entities(self, tenant: str, ids: list[str]) -> dict[str, Doc]:
        """Fetch several entities at once (batch operations); missing ids are absent from the result."""

    @abstractmethod
    async def replace_entity(self, tenant: str, entity: Doc, expected_version: int) -> bool:
        """Write ``entity`` if the stored version is ``expected_version``; False on a concurrent change."""

    @abstractmethod
    async def delete_entity(self, tenant: str, entity_id: str) -> Doc | None:
        """Delete and return the entity, or None when it did not exist."""

    @abstractmethod
    async def query_entities(self, tenant: str, query: EntityQuery) -> tuple[list[Doc], int | None]:
        """Entities matching ``query`` in a stable order (creation time, then id), paged by
        ``offset``/``limit``; the total count when ``query.count`` is set."""

    @abstractmethod
    def scan_entities(self, tenant: str, query: EntityQuery | None = None) -> AsyncIterator[Doc]:
        """Every matching entity, unpaged (discovery endpoints, purge)."""

    # ---------------------------------------------------------------- keyed documents
    @abstractmethod
    async def insert_doc(self, tenant: str, collection: str, key: str, doc: Doc) -> None:
        """Insert; raise ``AlreadyExists`` when the key is taken."""

    @abstractmethod
    async def put_doc(self, tenant: str, collection: str, key: str, doc: Doc) -> None:
        """Insert or replace."""

    @abstractmethod
    async def get_doc(self, tenant: str, collection: str, key: str) -> Doc | None: ...

    @abstractmethod
    async def delete_doc(self, tenant: str, collection: str, key: str) -> bool: ...

    @abstractmethod
    async def list_docs(self, tenant: str, collection: str, prefix: str = "") -> list[Doc]:
        """All documents of a collection (those whose key starts with ``prefix``), in key order."""

    async def delete_docs(self, tenant: str, collection: str, keys: list[str]) -> None:
        """Delete several documents (missing ones are ignored); backends do it in one statement."""
        for key in keys:
            await self.delete_doc(tenant, collection, key)

    @abstractmethod
    async def add_to_doc(self, tenant: str, collection: str, key: str, inc: dict[str, int],
                         maximum: dict[str, Any]) -> None:
        """Atomically add ``inc`` to numeric members and raise members to at least ``maximum``
        (created when missing): counters written by several processes lose no increment."""
