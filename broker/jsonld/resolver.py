"""Resolving @context values: built-in core documents, preloaded files, bounded remote fetches.

Fetched documents are cached in memory (and in the store when one is attached) so each URL is
downloaded at most once; each distinct @context value is processed once into a ``TermMap``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
from pyld import jsonld

from ..errors import BadRequestData, LdContextNotAvailable
from .core import CORE_URLS, DEFAULT_CORE_URL, core_document, is_core_url
from .termmap import TermMap

log = logging.getLogger(__name__)

KIND_HOSTED = "Hosted"
KIND_CACHED = "Cached"
KIND_IMPLICIT = "ImplicitlyCreated"


class ContextPersistence(Protocol):
    """Where cached and hosted context documents survive restarts (the store)."""

    async def save_context(self, entry: dict[str, Any]) -> None: ...
    async def delete_context(self, url: str) -> None: ...
    async def load_contexts(self) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class ContextEntry:
    url: str
    document: dict[str, Any]
    kind: str
    local_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    last_usage: float | None = None
    hits: int = 0

    def to_record(self) -> dict[str, Any]:
        return {"url": self.url, "document": self.document, "kind": self.kind, "localId": self.local_id,
                "createdAt": self.created_at}


class ContextResolver:
    """Turns the @context of a request into a ``TermMap``; the hot path is one dict lookup."""

    def __init__(self, *, fetch_timeout: float = 5.0, max_bytes: int = 1 << 20, max_maps: int = 1024,
                 default_core: str = DEFAULT_CORE_URL) -> None:
        self.fetch_timeout = fetch_timeout
        self.max_bytes = max_bytes
        self.max_maps = max_maps
        self.default_core = default_core
        self.entries: dict[str, ContextEntry] = {}
        self._maps: OrderedDict[bytes, TermMap] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.persistence: ContextPersistence | None = None
        self._processor = jsonld.JsonLdProcessor()
        self.default_map = self._build_map(b"", default_core, [default_core])

    # ------------------------------------------------------------------ lifecycle
    async def start(self, persistence: ContextPersistence | None = None) -> None:
        self.persistence = persistence
        if persistence is not None:
            for rec in await persistence.load_contexts():
                if rec.get("url") and isinstance(rec.get("document"), dict):
                    self.entries[rec["url"]] = ContextEntry(
                        url=rec["url"], document=rec["document"], kind=rec.get("kind", KIND_CACHED),
                        local_id=rec.get("localId") or uuid.uuid4().hex,
                        created_at=rec.get("createdAt") or time.time())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def preload(self, spec: str) -> int:
        """Preload documents from map files (``{"url": "path"}``) or folders holding ``index.json``."""
        count = 0
        for item in filter(None, (s.strip() for s in spec.split(","))):
            path = Path(item)
            map_file = path / "index.json" if path.is_dir() else path
            mapping = orjson.loads(map_file.read_bytes())
            if not isinstance(mapping, dict):
                raise ValueError(f"context preload map {map_file} must be a JSON object url -> file")
            for url, rel in mapping.items():
                doc = orjson.loads((map_file.parent / rel).read_bytes())
                self._check_document(url, doc)
                self.entries[url] = ContextEntry(url=url, document=doc, kind=KIND_CACHED)
                count += 1
        return count

    # ------------------------------------------------------------------ resolution
    async def resolve(self, context: Any) -> TermMap:
        """Return the term map of a request's @context (``None`` means the core context only)."""
        if context is None:
            return self.default_map
        key = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
        tm = self._maps.get(key)
        if tm is not None:
            self._maps.move_to_end(key)
            return tm
        if not isinstance(context, (str, list, dict)):
            raise BadRequestData("@context must be a string, an object or an array")
        items = context if isinstance(context, list) else [context]
        for item in items:
            if not isinstance(item, (str, dict)):
                raise BadRequestData("@context array members must be strings or objects")
        await self._load_all(items, depth=0)
        full = [*items] if self.default_core in items else [*items, self.default_core]
        tm = self._build_map(key, context, full)
        self._maps[key] = tm
        if len(self._maps) > self.max_maps:
            self._maps.popitem(last=False)
        return tm

    def _build_map(self, key: bytes, context: Any, full: list[Any]) -> TermMap:
        opts = {"documentLoader": self._loader, "processingMode": "json-ld-1.1"}
        try:
            active = self._processor.process_context(self._processor._get_initial_context(opts), full, opts)
        except jsonld.JsonLdError as exc:
            cause = exc
            while getattr(cause, "cause", None) is not None:
                cause = cause.cause
            if isinstance(cause, LdContextNotAvailable):
                raise cause from exc
            raise BadRequestData(f"Invalid @context: {getattr(exc, 'message', exc)}") from exc
        return TermMap(key, context, active.get("mappings", {}), active.get("@vocab"))

    def _loader(self, url: str, options: Any = None) -> dict[str, Any]:
        doc = self._document_now(url)
        if doc is None:
            raise LdContextNotAvailable(f"@context {url} was not loaded")
        return {"contextUrl": None, "documentUrl": url, "document": doc, "tag": "static"}

    def _document_now(self, url: str) -> dict[str, Any] | None:
        if is_core_url(url):
            return core_document(url)
        entry = self.entries.get(url)
        if entry is None:
            return None
        entry.hits += 1
        entry.last_usage = time.time()
        return entry.document

    async def _load_all(self, items: list[Any], depth: int) -> None:
        if depth > 8:
            raise BadRequestData("@context nesting too deep")
        for url in _urls_in(items):
            doc = self._document_now(url)
            if doc is None:
                doc = await self.fetch(url)
            await self._load_all([doc.get("@context")], depth + 1)

    async def fetch(self, url: str) -> dict[str, Any]:
        """Download a context once (concurrent callers share one download)."""
        fut = self._inflight.get(url)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[url] = fut
        try:
            doc = await self._download(url)
            entry = ContextEntry(url=url, document=doc, kind=KIND_CACHED)
            self.entries[url] = entry
            if self.persistence is not None:
                await self.persistence.save_context(entry.to_record())
            fut.set_result(doc)
            return doc
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters get it through shield
            raise
        finally:
            self._inflight.pop(url, None)

    async def _download(self, url: str) -> dict[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise LdContextNotAvailable(f"@context {url} cannot be dereferenced")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.fetch_timeout))
        try:
            async with self._session.get(
                url, headers={"Accept": "application/ld+json, application/json;q=0.9, */*;q=0.1"},
                allow_redirects=True, max_redirects=5,
            ) as resp:
                if resp.status != 200:
                    raise LdContextNotAvailable(f"@context {url} answered HTTP {resp.status}")
                body = await resp.content.read(self.max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise LdContextNotAvailable(f"@context {url} is not reachable: {exc!r}") from exc
        if len(body) > self.max_bytes:
            raise LdContextNotAvailable(f"@context {url} is larger than {self.max_bytes} bytes")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise LdContextNotAvailable(f"@context {url} is not JSON") from exc
        self._check_document(url, doc)
        return doc

    @staticmethod
    def _check_document(url: str, doc: Any) -> None:
        if not isinstance(doc, dict) or "@context" not in doc:
            raise LdContextNotAvailable(f"@context {url} is not a JSON-LD context document")

    # ------------------------------------------------------------------ hosted contexts
    def add_hosted(self, url: str, document: dict[str, Any], kind: str = KIND_HOSTED) -> ContextEntry:
        entry = ContextEntry(url=url, document=document, kind=kind)
        self.entries[url] = entry
        return entry

    def forget(self, url: str) -> ContextEntry | None:
        """Drop a cached or hosted document and every term map built from it."""
        entry = self.entries.pop(url, None)
        self._maps.clear()
        return entry

    @staticmethod
    def core_urls() -> frozenset[str]:
        return CORE_URLS


def _urls_in(items: list[Any]) -> list[str]:
    urls: list[str] = []
    for item in items:
        if isinstance(item, str):
            urls.append(item)
        elif isinstance(item, list):
            urls.extend(_urls_in(item))
        elif isinstance(item, dict):
            imp = item.get("@import")
            if isinstance(imp, str):
                urls.append(imp)
    return urls
