"""Resolving @context values: built-in core documents, preloaded files, bounded remote fetches.

Fetched documents are cached in memory (and in the store when one is attached) so each URL is
downloaded at most once; each distinct @context value is processed once into a ``TermMap``.
Failed downloads are remembered for a short time so a storm of requests naming a dead host gets
503 at once instead of each waiting for the timeout.

Kinds follow clause 5.13 of ETSI GS CIM 009: ``Cached`` (downloaded or preloaded, keyed by the
remote URL), ``Hosted`` (added with ``POST /jsonldContexts``) and ``ImplicitlyCreated`` (an inline
@context of a request). Hosted and implicit entries are keyed by the path
``/ngsi-ld/v1/jsonldContexts/<localId>``; any URL ending in that path names them, whatever the host.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
from pyld import jsonld

from ..errors import BadRequestData, LdContextNotAvailable
from ..timeutil import now_iso
from .core import CORE_URLS, DEFAULT_CORE_URL, LEGACY_CORE_URL, core_document, is_core_url
from .termmap import TermMap

log = logging.getLogger(__name__)

KIND_HOSTED = "Hosted"
KIND_CACHED = "Cached"
KIND_IMPLICIT = "ImplicitlyCreated"
KINDS = (KIND_HOSTED, KIND_CACHED, KIND_IMPLICIT)

LOCAL_PREFIX = "/ngsi-ld/v1/jsonldContexts/"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_LOCAL = re.compile(r"/ngsi-ld/v1/jsonldContexts/([A-Za-z0-9_\-]{1,64})$")


class ContextPersistence(Protocol):
    """Where cached and hosted context documents survive restarts (the store)."""

    async def save_context(self, entry: dict[str, Any]) -> None: ...
    async def delete_context(self, url: str) -> None: ...
    async def load_contexts(self) -> list[dict[str, Any]]: ...
    async def get_context(self, url: str) -> dict[str, Any] | None: ...


@dataclass(slots=True)
class ContextEntry:
    """One stored @context document; ``url`` is the remote URL or the local path."""

    url: str
    document: dict[str, Any]
    kind: str
    local_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=now_iso)
    last_usage: float | None = None  # epoch seconds; formatted only when listed
    hits: int = 0

    @property
    def is_local(self) -> bool:
        return self.url.startswith(LOCAL_PREFIX)

    def to_record(self) -> dict[str, Any]:
        return {"url": self.url, "document": self.document, "kind": self.kind, "localId": self.local_id,
                "createdAt": self.created_at}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ContextEntry | None:
        url, doc = rec.get("url"), rec.get("document")
        if not isinstance(url, str) or not isinstance(doc, dict):
            return None
        created = rec.get("createdAt")
        return cls(url=url, document=doc, kind=rec.get("kind") or KIND_CACHED,
                   local_id=rec.get("localId") or _digest(url),
                   created_at=created if isinstance(created, str) else now_iso())


# Contexts nest a few levels (scoped contexts); a deeper one is refused before anything stores it
# (orjson serializes 254 levels, MongoDB 100).
MAX_CONTEXT_DEPTH = 64


def within_depth(value: Any, limit: int = MAX_CONTEXT_DEPTH) -> bool:
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth >= limit:
                return False
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


def _digest(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(raw).hexdigest()[:32]


def local_id_of(url: str) -> str | None:
    """The localId when ``url`` names a hosted or implicit context of this broker (any host)."""
    m = _LOCAL.search(url.split("?", 1)[0].split("#", 1)[0])
    return m.group(1) if m else None


class ContextResolver:
    """Turns the @context of a request into a ``TermMap``; the hot path is one dict lookup."""

    def __init__(self, *, fetch_timeout: float = 5.0, max_bytes: int = 1 << 20, max_maps: int = 1024,
                 default_core: str = DEFAULT_CORE_URL, failure_ttl: float = 10.0,
                 max_implicit: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch_timeout = fetch_timeout
        self.max_bytes = max_bytes
        self.max_maps = max_maps
        self.default_core = default_core
        self.failure_ttl = failure_ttl
        self.max_implicit = max_implicit
        self.clock = clock
        self.started_at = now_iso()
        self.entries: dict[str, ContextEntry] = {}
        self.by_id: dict[str, ContextEntry] = {}
        self.mirror: dict[str, Path] = {}  # preloaded URL -> local file, re-read instead of downloading
        self._maps: OrderedDict[bytes, tuple[TermMap, tuple[ContextEntry, ...]]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.persistence: ContextPersistence | None = None
        self._processor = jsonld.JsonLdProcessor()
        self.default_map = self._build_map(b"", default_core, [default_core])

    # ------------------------------------------------------------------ lifecycle
    async def start(self, persistence: ContextPersistence | None = None) -> None:
        """Attach the store and load what earlier runs (or other processes) kept there."""
        self.persistence = persistence
        if persistence is None:
            return
        for rec in await persistence.load_contexts():
            entry = ContextEntry.from_record(rec)
            if entry is not None and not (entry.kind == KIND_CACHED and entry.url in self.entries):
                self._remember(entry)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def preload(self, spec: str) -> int:
        """Preload documents from map files (``{"url": "path"}``) or folders holding ``index.json``.

        Paths are relative to the map file; ``${VAR}`` in a path is taken from the environment (a
        missing variable is an error). Preloaded URLs behave like downloaded ones (kind
        ``Cached``) and, once deleted or reloaded, are read again from their file, never fetched.
        """
        count = 0
        for item in filter(None, (s.strip() for s in spec.split(","))):
            for url, file in _read_map(Path(item)).items():
                doc = self._read_file(url, file)
                self.mirror[url] = file
                self._remember(ContextEntry(url=url, document=doc, kind=KIND_CACHED, local_id=_digest(url)))
                count += 1
        return count

    def mirror_builtin_models(self) -> int:
        """Serve the data-model contexts shipped in ``contexts/models`` (Smart Data Models subjects,
        FIWARE data-models) from their files instead of the network. Unlike ``preload`` nothing is
        read now: a document becomes a ``Cached`` entry when a request first names it, as if it had
        been downloaded, so the context list shows only what is in use."""
        folder = Path(str(resources.files("broker.jsonld").joinpath("contexts", "models")))
        mapping = _read_map(folder)
        for url, file in mapping.items():
            self.mirror.setdefault(url, file)
        return len(mapping)

    # ------------------------------------------------------------------ resolution
    async def resolve(self, context: Any) -> TermMap:
        """Return the term map of a request's @context (``None`` means the core context only)."""
        if context is None:
            return self.default_map
        try:
            key = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson stops at 254 levels; no real context nests like that
            raise BadRequestData(f"@context nests deeper than {MAX_CONTEXT_DEPTH} levels") from None
        hit = self._maps.get(key)
        if hit is not None:
            self._maps.move_to_end(key)
            self._count(hit[1])
            return hit[0]
        if not isinstance(context, (str, list, dict)):
            raise BadRequestData("@context must be a string, an object or an array")
        if not within_depth(context):
            raise BadRequestData(f"@context nests deeper than {MAX_CONTEXT_DEPTH} levels")
        items = context if isinstance(context, list) else [context]
        for item in items:
            if not isinstance(item, (str, dict)):
                raise BadRequestData("@context array members must be strings or objects")
        used: dict[str, ContextEntry] = {}
        await self._load_all(items, used, set())
        full = [*items] if self.default_core in items else [*items, self.default_core]
        tm = self._build_map(key, context, full)
        if not isinstance(context, str):
            implicit = await self._implicit(key, context)
            if implicit is not None:
                used[implicit.url] = implicit
        sources = tuple(used.values())
        self._maps[key] = (tm, sources)
        if len(self._maps) > self.max_maps:
            self._maps.popitem(last=False)
        self._count(sources)
        return tm

    async def validate(self, context: Any) -> None:
        """Check a context value (fetching what it refers to) without caching a term map for it."""
        if not within_depth(context):
            raise BadRequestData(f"@context nests deeper than {MAX_CONTEXT_DEPTH} levels")
        items = context if isinstance(context, list) else [context]
        for item in items:
            if not isinstance(item, (str, dict)):
                raise BadRequestData("@context array members must be strings or objects")
        await self._load_all(items, {}, set())
        self._build_map(b"", context, [*items, self.default_core])

    def implicit_id(self, context: Any) -> str | None:
        """The localId of the ImplicitlyCreated entry for an inline @context, once resolved."""
        if context is None or isinstance(context, str):
            return None
        local_id = _digest(orjson.dumps(context, option=orjson.OPT_SORT_KEYS))
        return local_id if local_id in self.by_id else None

    def context_url(self, context: Any, origin: str = "") -> str | None:
        """A URL standing for a request's @context: the URL itself, or the implicit entry's URL.

        Subscriptions use it for their ``jsonldContext`` member; ``origin`` is the broker's
        ``scheme://host`` as the client sees it.
        """
        if context is None:
            return self.default_core
        if isinstance(context, str):
            return context
        local_id = self.implicit_id(context)
        return None if local_id is None else origin + LOCAL_PREFIX + local_id

    def _count(self, sources: tuple[ContextEntry, ...]) -> None:
        if sources:
            stamp = time.time()
            for entry in sources:
                entry.hits += 1
                entry.last_usage = stamp

    async def _implicit(self, key: bytes, context: Any) -> ContextEntry | None:
        local_id = _digest(key)
        entry = self.by_id.get(local_id)
        if entry is not None:
            return entry
        implicit = sum(1 for e in self.by_id.values() if e.kind == KIND_IMPLICIT)
        if implicit >= self.max_implicit:
            return None
        entry = ContextEntry(url=LOCAL_PREFIX + local_id, document={"@context": context}, kind=KIND_IMPLICIT,
                             local_id=local_id)
        await self._store(entry)
        return entry

    def _build_map(self, key: bytes, context: Any, full: list[Any]) -> TermMap:
        opts = {"documentLoader": self._loader, "processingMode": "json-ld-1.1"}
        try:
            full = [self._inline_import(_absolute(item)) for item in full]
            active = self._processor.process_context(self._processor._get_initial_context(opts), full, opts)
        except jsonld.JsonLdError as exc:
            cause = exc
            while getattr(cause, "cause", None) is not None:
                cause = cause.cause
            if isinstance(cause, LdContextNotAvailable):
                raise cause from exc
            raise BadRequestData(f"Invalid @context: {getattr(exc, 'message', exc)}") from exc
        except ValueError as exc:  # PyLD's IRI resolution
            raise BadRequestData(f"Invalid @context: {exc}") from exc
        except RecursionError as exc:
            raise BadRequestData("Invalid @context: nested too deeply") from exc
        return TermMap(key, context, active.get("mappings", {}), active.get("@vocab"))

    def _loader(self, url: str, options: Any = None) -> dict[str, Any]:
        # the v1.0 core URL stands for the broker's core context (see core.LEGACY_CORE_URL)
        doc = self.document_now(self.default_core if url == LEGACY_CORE_URL else url)
        if doc is None:
            raise LdContextNotAvailable(f"@context {url} was not loaded")
        ctx = doc.get("@context")
        if isinstance(ctx, dict) and "@import" in ctx:
            doc = {**doc, "@context": self._inline_import(ctx)}
        # no tag: PyLD must not keep URL documents in its process-wide cache (they can be reloaded)
        return {"contextUrl": None, "documentUrl": url, "document": doc, "tag": None}

    def _inline_import(self, item: Any) -> Any:
        """Merge an ``@import``ed context into the importing one (PyLD mishandles ``@import``)."""
        if not isinstance(item, dict) or "@import" not in item:
            return item
        url = item["@import"]
        doc = self.document_now(url) if isinstance(url, str) else None
        imported = doc.get("@context") if doc is not None else None
        if not isinstance(imported, dict):
            raise BadRequestData(f"@import {url!r} must name a context document holding one object")
        rest = {k: v for k, v in item.items() if k != "@import"}
        return {**self._inline_import(imported), **rest}

    def lookup(self, url: str) -> ContextEntry | None:
        """The entry a URL names: a cached remote URL or a local (hosted/implicit) one."""
        entry = self.entries.get(url)
        if entry is None:
            local_id = local_id_of(url)
            if local_id is not None:
                entry = self.by_id.get(local_id)
                if entry is not None and not entry.is_local:
                    entry = None
        return entry

    def document_now(self, url: str) -> dict[str, Any] | None:
        if is_core_url(url):
            return core_document(url)
        entry = self.lookup(url)
        return None if entry is None else entry.document

    async def _load_all(self, items: list[Any], used: dict[str, ContextEntry], seen: set[str]) -> None:
        if len(seen) > 64:
            raise BadRequestData("@context imports too many documents")
        for url in _urls_in(items):
            if url in seen or is_core_url(url):
                continue
            if not _SCHEME.match(url) and local_id_of(url) is None:
                raise BadRequestData(f"@context URL {url!r} is not an absolute URL")
            seen.add(url)
            entry = self.lookup(url)
            if entry is None:
                entry = await self._load_missing(url)
            used[entry.url] = entry
            await self._load_all([entry.document.get("@context")], used, seen)

    async def _load_missing(self, url: str) -> ContextEntry:
        if local_id_of(url) is not None and self.persistence is not None:
            # hosted by another broker process sharing the store
            rec = await self.persistence.get_context(LOCAL_PREFIX + (local_id_of(url) or ""))
            entry = ContextEntry.from_record(rec) if rec else None
            if entry is not None:
                self._remember(entry)
                return entry
        await self.fetch(url)
        entry = self.entries.get(url)
        if entry is None:  # deleted while we waited
            raise LdContextNotAvailable(f"@context {url} is not available")
        return entry

    async def fetch(self, url: str, *, force: bool = False) -> dict[str, Any]:
        """Download a context once (concurrent callers share one download) and cache it as Cached.

        ``force`` skips the remembered failure (an explicit reload).
        """
        if not force:
            failed = self._failures.get(url)
            if failed is not None:
                if self.clock() < failed[0]:
                    raise LdContextNotAvailable(failed[1])
                del self._failures[url]
        fut = self._inflight.get(url)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[url] = fut
        try:
            doc = await self._download(url)
            old = self.entries.get(url)
            entry = ContextEntry(url=url, document=doc, kind=KIND_CACHED, local_id=_digest(url),
                                 created_at=old.created_at if old else now_iso())
            if old is not None:
                entry.hits, entry.last_usage = old.hits, old.last_usage
            await self._store(entry)
            if old is not None:
                self._maps.clear()  # term maps built from the older copy
            self._failures.pop(url, None)
            fut.set_result(doc)
            return doc
        except LdContextNotAvailable as exc:
            self._failures[url] = (self.clock() + self.failure_ttl, exc.detail)
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters get it through shield
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            self._inflight.pop(url, None)

    async def _download(self, url: str) -> dict[str, Any]:
        file = self.mirror.get(url)
        if file is not None:
            return self._read_file(url, file)
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
                if (resp.content_length or 0) > self.max_bytes:
                    raise LdContextNotAvailable(f"@context {url} is larger than {self.max_bytes} bytes")
                # read(n) returns what the first chunks hold, not n bytes: read to the end (or the limit)
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > self.max_bytes:
                        break
                    chunks.append(chunk)
                body = b"".join(chunks)
        except LdContextNotAvailable:
            raise
        except TimeoutError as exc:
            raise LdContextNotAvailable(f"@context {url} did not answer within {self.fetch_timeout} s") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise LdContextNotAvailable(f"@context {url} is not reachable: {exc or type(exc).__name__}") from exc
        if size > self.max_bytes:
            raise LdContextNotAvailable(f"@context {url} is larger than {self.max_bytes} bytes")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise LdContextNotAvailable(f"@context {url} is not JSON") from exc
        self._check_document(url, doc)
        return doc

    def _read_file(self, url: str, file: Path) -> dict[str, Any]:
        try:
            doc = orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise LdContextNotAvailable(f"@context {url}: preloaded file {file} is unreadable: {exc}") from exc
        self._check_document(url, doc)
        return doc

    @staticmethod
    def _check_document(url: str, doc: Any) -> None:
        if not isinstance(doc, dict) or "@context" not in doc:
            raise LdContextNotAvailable(f"@context {url} is not a JSON-LD context document")
        if not within_depth(doc["@context"]):
            raise LdContextNotAvailable(f"@context {url} nests deeper than {MAX_CONTEXT_DEPTH} levels")

    # ------------------------------------------------------------------ stored entries
    def _remember(self, entry: ContextEntry) -> None:
        old = self.entries.get(entry.url)
        if old is not None:
            self.by_id.pop(old.local_id, None)
        self.entries[entry.url] = entry
        self.by_id[entry.local_id] = entry

    async def _store(self, entry: ContextEntry) -> None:
        if self.persistence is not None:
            await self.persistence.save_context(entry.to_record())
        self._remember(entry)

    async def add_hosted(self, document: dict[str, Any]) -> ContextEntry:
        """Host a client-supplied context document (POST /jsonldContexts)."""
        local_id = uuid.uuid4().hex
        entry = ContextEntry(url=LOCAL_PREFIX + local_id, document=document, kind=KIND_HOSTED,
                             local_id=local_id)
        await self._store(entry)
        return entry

    async def reload(self, entry: ContextEntry) -> ContextEntry:
        """Download a cached context again; the old copy stays when that fails."""
        await self.fetch(entry.url, force=True)
        return self.entries[entry.url]

    async def forget(self, url: str) -> ContextEntry | None:
        """Drop a cached, hosted or implicit document and every term map built from it."""
        entry = self.entries.pop(url, None)
        if entry is not None:
            self.by_id.pop(entry.local_id, None)
        if self.persistence is not None:
            await self.persistence.delete_context(url)
        self._maps.clear()
        return entry

    @staticmethod
    def core_urls() -> frozenset[str]:
        return CORE_URLS


def _absolute(item: Any) -> Any:
    """Our own relative jsonldContexts path (a Location header used verbatim) as an absolute URL."""
    if isinstance(item, str) and item.startswith(LOCAL_PREFIX):
        return "http://localhost" + item
    return item


def _read_map(path: Path) -> dict[str, Path]:
    """URL -> file of a preload map file, or of a folder's ``index.json``."""
    map_file = path / "index.json" if path.is_dir() else path
    mapping = orjson.loads(map_file.read_bytes())
    if not isinstance(mapping, dict):
        raise ValueError(f"context preload map {map_file} must be a JSON object url -> file")
    return {url: map_file.parent / _expand_path(rel, map_file) for url, rel in mapping.items()}


def _expand_path(rel: Any, map_file: Path) -> str:
    if not isinstance(rel, str):
        raise ValueError(f"context preload map {map_file}: file names must be strings")
    expanded = os.path.expandvars(rel)
    if "${" in expanded or expanded.startswith("$"):
        raise ValueError(f"context preload map {map_file}: unset environment variable in {rel!r}")
    return expanded


def _urls_in(items: list[Any]) -> list[str]:
    """URLs a context value refers to: members, ``@import`` and scoped contexts of terms."""
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
            for value in item.values():
                if isinstance(value, dict) and "@context" in value:
                    urls.extend(_urls_in([value["@context"]]))
    return urls
