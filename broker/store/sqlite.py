"""Embedded store: one SQLite file (WAL), with every entity also held in memory.

SQLite gives durability across restarts and crashes (WAL, synchronous=NORMAL: a committed write
survives a killed process); the in-memory copy makes reads and queries dictionary work. The
embedded store is meant for one broker process; several processes share a MongoDB instead.
Calls are synchronous on the event loop on purpose: each is a few microseconds, far cheaper than
a thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from sortedcontainers import SortedKeyList

from .. import gctune
from ..errors import AlreadyExists
from ..periodic import every, stop
from ..query.ast import And, Comparison, Range, TypeName, Value, ValueList
from ..query.compiled import _NOT_SCALAR, _plain_candidates, _scalar
from ..query.model import EntityQuery
from ..query.values import normalize_datetime
from .base import Doc, Pager, Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS entities (
    tenant TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS entities_seq ON entities (tenant, seq);
CREATE TABLE IF NOT EXISTS docs (
    tenant TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (tenant, coll, key));
"""


def _order_key(entity: Doc) -> tuple[str, str]:
    """The stable query order of both stores: creation time, then id."""
    return entity.get("createdAt", ""), entity["id"]


CHECKPOINT_SECONDS = 1.0  # how often the WAL is copied into the database file (when anything was written)
WAL_CATCH_UP = 64 << 20  # past this, the writing connection finishes a checkpoint itself (a few ms)
# The WAL file is cut back to this when it restarts. Above WAL_CATCH_UP, so the usual restart keeps the
# file: cutting it frees its blocks, a synchronous discard on SSD-backed disks (~1 ms per MB, on the loop).
WAL_SIZE_LIMIT = 2 * WAL_CATCH_UP
MAX_VALUE_INDEXES = 32  # attributes per tenant with an equality index (each costs on every write)
MAX_TYPED_INDEXES = 64  # (type, attribute) pairs per tenant with a per-type equality index
IndexKey = tuple[str, Any]
TypedIndex = dict[IndexKey, dict[str, None]]  # value key -> ids in query order (a dict as an ordered set)
Bounds = dict[str, tuple[float, float]]  # id -> (least, greatest) of the entity's numbers on an attribute


def _value_key(value: Any) -> IndexKey | None:
    """Index key of a comparable scalar; kinds kept apart since True == 1 in Python."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


def _values(entity: Doc, attr: str) -> list[Any]:
    """Every value a plain term on ``attr`` compares (all instances, lists element-wise)."""
    instances = entity.get("attrs", {}).get(attr)
    if not isinstance(instances, list):
        return []
    out: list[Any] = []
    for inst in instances:
        v = _scalar(inst)  # the usual instance: its one scalar, read directly
        if v is _NOT_SCALAR:
            out.extend(_plain_candidates(inst)[1])
        else:
            out.append(v)
    return out


def _same_keys(a: list[Doc] | None, b: list[Doc] | None) -> bool:
    """True when two instance lists give an index the same keys for certain: the same instances, or
    scalars of the same type and value pairwise (1 and True differ here, as in the keys)."""
    if a is b:
        return True
    if a is None or b is None or len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x is y:
            continue
        vx, vy = _scalar(x), _scalar(y)
        if vx is _NOT_SCALAR or type(vx) is not type(vy) or vx != vy:
            return False
    return True


def _entity_keys(entity: Doc, attr: str) -> set[IndexKey]:
    """Every key under which an equality term on ``attr`` may match this entity (a superset)."""
    return {k for k in map(_value_key, _values(entity, attr)) if k is not None}


INDEX_MIN_SCAN = 64  # a scan of fewer entities is cheaper than an index lookup and its upkeep
MAX_RANGE_INDEXES = 64  # (scope, attribute) pairs per tenant with an ordered numeric index
RANGE_SHARE = 0.01  # a range term narrows a scan when at most this share of the entities meet it


def _numbers(entity: Doc, attr: str) -> set[float]:
    """The numeric candidates (not booleans, not NaN) an order comparison on ``attr`` looks at."""
    return {v for v in _values(entity, attr) if (type(v) is int or type(v) is float) and v == v}


def _range_terms(q: Any) -> list[tuple[str, float | None, bool, float | None, bool]]:
    """(attribute, low, low inclusive, high, high inclusive) of the top-level numeric order terms
    (``attr>n``, ``attr<=n``, ``attr==a..b``) every match must satisfy; None is an open end."""
    terms = [q] if isinstance(q, Comparison) else list(q.items) if isinstance(q, And) else []
    found: list[tuple[str, float | None, bool, float | None, bool]] = []
    for term in terms:
        if not isinstance(term, Comparison):
            continue
        path, op, operand = term.path, term.op, term.operand
        if path.subs or path.member is not None or path.keys:
            continue
        if isinstance(operand, Value) and operand.kind == "number" and op in (">", ">=", "<", "<="):
            n = operand.value
            found.append((path.attr, n, op == ">=", None, False) if op[0] == ">" else
                         (path.attr, None, False, n, op == "<="))
        elif (op == "==" and isinstance(operand, Range) and operand.low.kind == "number"
              and operand.high.kind == "number"):
            found.append((path.attr, operand.low.value, True, operand.high.value, True))
    return found


def _set_bounds(bounds: Bounds, eid: str, numbers: set[float] | None) -> None:
    if numbers:
        bounds[eid] = (min(numbers), max(numbers))
    else:
        bounds.pop(eid, None)


RangeCheck = tuple[dict[str, tuple[float, float]], float | None, bool, float | None, bool]


def _may_meet(checks: list[RangeCheck], eid: str) -> bool:
    """False when an entity's numbers on a range term's attribute all lie outside the range (so q
    cannot hold); True when they may meet every term. An entity with no number there meets none
    (an order term compares numbers only, as the ordered index assumes)."""
    for bounds, low, low_in, high, high_in in checks:
        b = bounds.get(eid)
        if b is None:
            return False
        if low is not None and (b[1] < low or (b[1] == low and not low_in)):
            return False
        if high is not None and (b[0] > high or (b[0] == high and not high_in)):
            return False
    return True


def _literal_keys(operand: Any) -> list[IndexKey] | None:
    """Index keys an ``==`` operand matches exactly, or None when the index cannot answer it."""
    items = operand.items if isinstance(operand, ValueList) else (operand,)
    keys: list[IndexKey] = []
    for item in items:
        if not isinstance(item, Value):
            return None
        if item.kind == "number":
            keys.append(("n", item.value))
        elif item.kind == "boolean":
            keys.append(("b", item.value))
        elif isinstance(item.value, str) and normalize_datetime(item.value) is None:
            keys.append(("s", item.value))
        else:  # date-times compare canonicalised: not a plain key lookup
            return None
    return keys


def _equality_terms(q: Any) -> list[tuple[str, list[IndexKey]]]:
    """(attribute, keys) of the top-level ``attr==literal`` terms every match must satisfy."""
    terms = [q] if isinstance(q, Comparison) else list(q.items) if isinstance(q, And) else []
    found = []
    for term in terms:
        if not isinstance(term, Comparison) or term.op != "==":
            continue
        path = term.path
        if path.subs or path.member is not None or path.keys:
            continue
        keys = _literal_keys(term.operand)
        if keys is not None:
            found.append((path.attr, keys))
    return found


def _first(pair: tuple[float, str]) -> float:
    return pair[0]


def _range_ids(ordered: SortedKeyList, low: float | None, low_in: bool, high: float | None,
               high_in: bool) -> tuple[int, int]:
    """Positions [start, stop) of the pairs whose number lies in the range."""
    start = 0 if low is None else (ordered.bisect_key_left(low) if low_in else ordered.bisect_key_right(low))
    stop = len(ordered) if high is None else (ordered.bisect_key_right(high) if high_in
                                              else ordered.bisect_key_left(high))
    return start, max(start, stop)


class _Tenant:
    """In-memory view of one tenant: entities in query order, plus a per-type index.

    Dicts keep insertion order, which is the query order as long as entities arrive in
    (createdAt, id) order. An entity that arrives out of order (same millisecond, smaller id; a
    clock step back; a type added by an update) marks the affected dict unsorted, and it is
    re-sorted once before the next read that iterates it.
    """

    __slots__ = ("entities", "by_type", "seq", "_last", "_unsorted", "_unsorted_types", "values", "ranges",
                 "bounds", "_range_count", "typed", "_typed_unsorted", "_typed_count")

    def __init__(self) -> None:
        self.entities: dict[str, Doc] = {}
        self.by_type: dict[str, dict[str, Doc]] = {}
        self.seq = 0
        self._last: dict[str, tuple[str, str]] = {}  # last key appended per type ("" = all)
        self._unsorted = False
        self._unsorted_types: set[str] = set()
        # Equality indexes, built on first use by a query and kept current by every write:
        # attribute IRI -> value key -> ids of the entities holding that value.
        self.values: dict[str, dict[IndexKey, set[str]]] = {}
        # Ordered numeric indexes, built on first use by a range term of q: scope -> attribute IRI ->
        # sorted (number, id) pairs, so a selective ``attr>n`` is answered by bisection instead of a
        # scan. The scope is the query's one type, or "" (every entity) for a query without a single
        # type: a write pays only for the indexes of its own types, not for every type's queries.
        self.ranges: dict[str, dict[str, SortedKeyList]] = {}
        # Beside each ordered index, id -> (least, greatest) of the entity's numbers: a scan tests a
        # range term against it with one lookup before running the whole q on the entity.
        self.bounds: dict[str, dict[str, Bounds]] = {}
        self._range_count = 0
        # Per-type equality indexes, built on first use by a query naming one type: type IRI -> attribute
        # IRI -> value key -> ids of that type's entities holding the value, in query order, so
        # ``type=T&q=attr=="v"`` walks only the entities of T that hold "v" (not all of T, nor all "v").
        self.typed: dict[str, dict[str, TypedIndex]] = {}
        self._typed_unsorted: set[tuple[str, str, IndexKey]] = set()  # keys whose ids left query order
        self._typed_count = 0

    def _index(self, entity: Doc, add: bool) -> None:
        """Add an entity to the equality indexes, or remove it."""
        eid = entity["id"]
        for attr, index in self.values.items():
            for key in _entity_keys(entity, attr):
                if add:
                    index.setdefault(key, set()).add(eid)
                else:
                    ids = index.get(key)
                    if ids is not None:
                        ids.discard(eid)
                        if not ids:
                            del index[key]

    def _reindex(self, old: Doc, new: Doc) -> None:
        """Move an updated entity in the equality indexes of the attributes whose instances changed.
        Writes share the instances they do not touch (``frame_copy``/``attr_copy``), so an attribute
        whose instances are the same objects is skipped: a PATCH of one attribute re-keys that one only."""
        eid = new["id"]
        old_attrs, new_attrs = old.get("attrs", {}), new.get("attrs", {})
        for attr, index in self.values.items():
            if _same_keys(old_attrs.get(attr), new_attrs.get(attr)):
                continue
            before_keys, after_keys = _entity_keys(old, attr), _entity_keys(new, attr)
            for key in before_keys - after_keys:
                ids = index.get(key)
                if ids is not None:
                    ids.discard(eid)
                    if not ids:
                        del index[key]
            for key in after_keys - before_keys:
                index.setdefault(key, set()).add(eid)

    def _range_write(self, old: Doc | None, new: Doc | None) -> None:
        """Keep the ordered indexes current (``old`` None: a new entity; ``new`` None: a removed one): in
        each scope the entity is in before or after the write, its numbers on an indexed attribute
        leave and join, unless that attribute's instances are unchanged (as in ``_reindex``)."""
        eid = (new if new is not None else old)["id"]  # type: ignore[index]
        old_types = old.get("type", ()) if old is not None else ()
        new_types = new.get("type", ()) if new is not None else ()
        old_attrs = old.get("attrs", {}) if old is not None else {}
        new_attrs = new.get("attrs", {}) if new is not None else {}
        for scope in dict.fromkeys(("", *old_types, *new_types)):
            per = self.ranges.get(scope)
            if per is None:
                continue
            was = old is not None and (not scope or scope in old_types)
            now = new is not None and (not scope or scope in new_types)
            for attr, ordered in per.items():
                if was and now and _same_keys(old_attrs.get(attr), new_attrs.get(attr)):
                    continue
                before = _numbers(old, attr) if was else set()  # type: ignore[arg-type]
                after = _numbers(new, attr) if now else set()  # type: ignore[arg-type]
                for n in before - after:
                    ordered.discard((n, eid))
                for n in after - before:
                    ordered.add((n, eid))
                _set_bounds(self.bounds[scope][attr], eid, after)

    def _typed_write(self, old: Doc | None, new: Doc | None) -> None:
        """Keep the per-type equality indexes current: under each indexed type, an entity leaves the
        keys it no longer holds and joins the new ones (appended: a key whose ids fall out of query
        order is sorted again before its next use)."""
        eid = (new if new is not None else old)["id"]  # type: ignore[index]
        old_types = old.get("type", ()) if old is not None else ()
        new_types = new.get("type", ()) if new is not None else ()
        moved = old is not None and new is not None and old.get("createdAt") != new.get("createdAt")
        old_attrs = old.get("attrs", {}) if old is not None else {}
        new_attrs = new.get("attrs", {}) if new is not None else {}
        for type_iri in dict.fromkeys((*old_types, *new_types)):
            per = self.typed.get(type_iri)
            if per is None:
                continue
            was, now = type_iri in old_types, type_iri in new_types
            for attr, index in per.items():
                if was and now and not moved and _same_keys(old_attrs.get(attr), new_attrs.get(attr)):
                    continue
                before = _entity_keys(old, attr) if was and old is not None else set()
                after = _entity_keys(new, attr) if now and new is not None else set()
                for key in before - after:
                    ids = index.get(key)
                    if ids is not None:
                        ids.pop(eid, None)
                        if not ids:
                            del index[key]
                for key in after - before:
                    ids = index.get(key)
                    if ids is None:
                        index[key] = {eid: None}
                        continue
                    last = self.entities.get(next(reversed(ids)))
                    ids[eid] = None
                    if last is None or _order_key(last) > _order_key(new):  # type: ignore[arg-type]
                        self._typed_unsorted.add((type_iri, attr, key))
                if moved:
                    self._typed_unsorted.update((type_iri, attr, key) for key in after & before)

    def typed_ids(self, type_iri: str, attr: str, key: IndexKey) -> dict[str, None] | None:
        """The ids of the entities of ``type_iri`` holding ``key`` on ``attr``, in query order; the index
        is built now if there is room for one more (None when there is not)."""
        per = self.typed.get(type_iri)
        index = per.get(attr) if per is not None else None
        if index is None:
            if self._typed_count >= MAX_TYPED_INDEXES:
                return None
            index = {}
            for eid, entity in self.ordered_type(type_iri).items():
                for k in _entity_keys(entity, attr):
                    ids = index.get(k)
                    if ids is None:
                        index[k] = {eid: None}
                    else:
                        ids[eid] = None
            self.typed.setdefault(type_iri, {})[attr] = index
            self._typed_count += 1
        ids = index.get(key)
        if ids is None:
            return {}
        if (type_iri, attr, key) in self._typed_unsorted:
            entities = self.entities
            ids = index[key] = dict.fromkeys(sorted(ids, key=lambda i: _order_key(entities[i])))
            self._typed_unsorted.discard((type_iri, attr, key))
        return ids

    def value_index(self, attr: str) -> dict[IndexKey, set[str]] | None:
        """The equality index of ``attr``, built now if there is room for one more."""
        index = self.values.get(attr)
        if index is None and len(self.values) < MAX_VALUE_INDEXES:
            index = {}
            for entity in self.entities.values():
                for key in _entity_keys(entity, attr):
                    index.setdefault(key, set()).add(entity["id"])
            self.values[attr] = index
        return index

    def range_index(self, attr: str, scope: str = "") -> SortedKeyList | None:
        """The ordered numeric index of ``attr`` over the entities of type ``scope`` ("" for all),
        built now if there is room for one more."""
        ordered = self.ranges.get(scope, {}).get(attr)
        if ordered is None and self._range_count < MAX_RANGE_INDEXES:
            bounds: Bounds = {}
            pairs = []
            for e in (self.by_type.get(scope, {}) if scope else self.entities).values():
                numbers = _numbers(e, attr)
                if numbers:
                    pairs.extend((n, e["id"]) for n in numbers)
                    _set_bounds(bounds, e["id"], numbers)
            ordered = SortedKeyList(pairs, key=_first)
            self.ranges.setdefault(scope, {})[attr] = ordered
            self.bounds.setdefault(scope, {})[attr] = bounds
            self._range_count += 1
        return ordered

    def _append(self, bucket: dict[str, Doc], name: str, entity: Doc) -> bool:
        """Append; False when the entity sorts before the bucket's last one."""
        key = _order_key(entity)
        bucket[entity["id"]] = entity
        last = self._last.get(name)
        if last is None or key >= last:
            self._last[name] = key
            return True
        return False

    def add(self, entity: Doc) -> None:
        if self.values:
            self._index(entity, True)
        if self.ranges:
            self._range_write(None, entity)
        if self.typed:
            self._typed_write(None, entity)
        if not self._append(self.entities, "", entity):
            self._unsorted = True
        for t in entity.get("type", ()):
            if not self._append(self.by_type.setdefault(t, {}), t, entity):
                self._unsorted_types.add(t)

    def remove(self, entity_id: str) -> Doc | None:
        old = self.entities.pop(entity_id, None)
        if old is not None:
            if self.values:
                self._index(old, False)
            if self.ranges:
                self._range_write(old, None)
            if self.typed:
                self._typed_write(old, None)
            for t in old.get("type", ()):
                bucket = self.by_type.get(t)
                if bucket is not None:
                    bucket.pop(entity_id, None)
                    if not bucket:
                        del self.by_type[t]
                        self._last.pop(t, None)
                        self._unsorted_types.discard(t)
        return old

    def replace(self, entity: Doc) -> None:
        """Keep the entity's place in query order while its types may change."""
        old = self.entities[entity["id"]]
        if self.values:
            self._reindex(old, entity)
        if self.ranges:
            self._range_write(old, entity)
        if self.typed:
            self._typed_write(old, entity)
        for t in old.get("type", ()):
            if t not in entity.get("type", ()):
                bucket = self.by_type.get(t)
                if bucket is not None:
                    bucket.pop(entity["id"], None)
                    if not bucket:
                        del self.by_type[t]
                        self._last.pop(t, None)
                        self._unsorted_types.discard(t)
        self.entities[entity["id"]] = entity
        if old.get("createdAt") != entity.get("createdAt"):  # its place in the order moved
            self._unsorted = True
            self._unsorted_types.update(entity.get("type", ()))
        for t in entity.get("type", ()):
            bucket = self.by_type.setdefault(t, {})
            if entity["id"] in bucket:
                bucket[entity["id"]] = entity
            elif not self._append(bucket, t, entity):
                self._unsorted_types.add(t)

    def ordered(self) -> dict[str, Doc]:
        """Every entity in query order."""
        if self._unsorted:
            self.entities = dict(sorted(self.entities.items(), key=lambda kv: _order_key(kv[1])))
            self._unsorted = False
        return self.entities

    def ordered_type(self, type_iri: str) -> dict[str, Doc]:
        """The entities of one type in query order."""
        bucket = self.by_type.get(type_iri)
        if bucket is None:
            return {}
        if type_iri in self._unsorted_types:
            bucket = self.by_type[type_iri] = dict(sorted(bucket.items(), key=lambda kv: _order_key(kv[1])))
            self._unsorted_types.discard(type_iri)
        return bucket


# True inside ``SqliteStore.batch()`` for the running task: its writes wait for the batch's commit.
_IN_BATCH: ContextVar[bool] = ContextVar("sqlite_in_batch", default=False)


class SqliteStore(Store):
    backend = "sqlite"

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._tenants: dict[str, _Tenant] = {}
        self._open_batches = 0
        self._in_tx = False
        self._commit_handle: asyncio.Handle | None = None
        self._committed: asyncio.Future[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._ckpt_db: sqlite3.Connection | None = None
        self._commits = 0  # commits since the last checkpoint
        self._ckpt_running: asyncio.Future[Any] | None = None
        self._page_size = 4096

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Group the writes of one operation into one commit (a batch of 100 entities: 1 fsync-free
        commit instead of 100). Writes are visible at once; the commit happens before the block ends,
        so nothing is acknowledged before it is durable. Writes of other tasks meanwhile commit
        everything written so far, so their durability does not wait for the batch either."""
        if _IN_BATCH.get():
            yield
            return
        token = _IN_BATCH.set(True)
        self._begin()
        self._open_batches += 1
        try:
            yield
        finally:
            _IN_BATCH.reset(token)
            self._open_batches -= 1
            self._commit()

    def _begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        """Run one write in the open transaction. Outside a batch, the transaction is committed at the
        next turn of the event loop, with the writes of every request handled in this turn (group
        commit: one WAL append for many requests); the writer waits for it in ``_durable``."""
        self._begin()
        cur = self.db.execute(sql, params)
        if not _IN_BATCH.get() and self._commit_handle is None:
            loop = asyncio.get_running_loop()
            self._committed = loop.create_future()
            self._commit_handle = loop.call_soon(self._commit)
        return cur

    def _commit(self) -> None:
        """Commit what is written so far and release the writers waiting for it; an open batch goes
        on in a new transaction."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        waiter, self._committed = self._committed, None
        try:
            if self._in_tx:
                self.db.execute("COMMIT")
                self._in_tx = False
                self._commits += 1
            if self._open_batches:
                self._begin()
        except sqlite3.Error as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved here too: a writer that went away must not warn
            raise
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _durable(self) -> None:
        """Return once this task's writes are committed (inside a batch, its end commits them)."""
        waiter = self._committed
        if waiter is not None and not _IN_BATCH.get():
            await asyncio.shield(waiter)

    async def start(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        self._db = db
        if self.path != ":memory:":
            # Checkpoints (WAL -> database file, with an fsync) run on a worker thread: done by the
            # committing write, one in every few hundred writes paid milliseconds on the event loop.
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # the WAL file is cut back to this
            self._page_size = db.execute("PRAGMA page_size").fetchone()[0]
            self._ckpt_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._ckpt_db.execute("PRAGMA busy_timeout=0")
            self._checkpointer = every(CHECKPOINT_SECONDS, self._checkpoint, "sqlite checkpoint")
        for (tenant,) in db.execute("SELECT tenant FROM tenants"):
            self._tenants[tenant] = _Tenant()
        with gctune.paused():
            loaded = 0
            for tenant, seq, blob in db.execute("SELECT tenant, seq, doc FROM entities ORDER BY tenant, seq"):
                t = self._tenants.get(tenant)
                if t is None:
                    t = self._tenants[tenant] = _Tenant()
                t.add(orjson.loads(blob))
                t.seq = max(t.seq, seq)
                loaded += 1
            gctune.freeze_loaded(loaded)

    async def _checkpoint(self) -> None:
        if self._commits == 0 or self._ckpt_db is None:
            return
        self._commits = 0
        _, frames, _ = await self._worker_checkpoint()
        # Under steady writes the worker never sees the WAL whole (frames keep arriving while it
        # copies), and SQLite restarts the WAL only after a checkpoint that left nothing behind: it
        # would grow without end. Past WAL_CATCH_UP the worker copies once more (what is left is what
        # arrived during that pass), then the writing connection commits what this turn wrote and
        # copies that remainder, a few ms on the loop; its next write restarts the WAL.
        if frames * self._page_size > WAL_CATCH_UP:
            await self._worker_checkpoint()
            if self._db is not None and not self._open_batches:  # a batch's transaction stays whole
                if self._in_tx:
                    self._commit()
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def _worker_checkpoint(self) -> tuple[int, int, int]:
        """One checkpoint pass on the worker thread: (busy, WAL length, frames copied) in frames.

        A pass that does not reach the WAL's end (writes went on meanwhile) leaves the pages it copied
        unflushed in the database file: SQLite syncs that file only when a checkpoint completes, and
        the one that does, on the loop, would then flush all of them (hundreds of ms). So each pass
        flushes the database file here (the WAL is synced by each pass's start); flushing only before
        the completing pass made that one flush, and the WAL appends it held up, twice as long."""
        db, path = self._ckpt_db, self.path
        assert db is not None

        def run() -> tuple[int, int, int]:
            (busy, frames, copied), = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            return busy, frames, copied

        self._ckpt_running = asyncio.get_running_loop().run_in_executor(None, run)
        return await asyncio.shield(self._ckpt_running)

    async def close(self) -> None:
        await stop(self._checkpointer)
        self._checkpointer = None
        if self._ckpt_running is not None:  # the worker thread still uses its connection
            with contextlib.suppress(Exception):
                await self._ckpt_running
        if self._ckpt_db is not None:
            self._ckpt_db.close()
            self._ckpt_db = None
        if self._db is not None:
            if self._in_tx:
                self._commit()
            self._db.close()  # the last connection to close checkpoints the rest
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store not started")
        return self._db

    async def describe(self) -> dict[str, Any]:
        return {"backend": "sqlite", "version": sqlite3.sqlite_version, "path": self.path}

    async def ping(self) -> bool:
        self.db.execute("SELECT 1").fetchone()
        return True

    # ---------------------------------------------------------------- tenants
    def _tenant(self, tenant: str, create: bool) -> _Tenant | None:
        t = self._tenants.get(tenant)
        if t is None and create:
            self._write("INSERT OR IGNORE INTO tenants VALUES (?)", (tenant,))
            t = self._tenants[tenant] = _Tenant()
        return t

    async def tenant_exists(self, tenant: str) -> bool:
        return tenant in self._tenants

    async def tenants(self) -> list[str]:
        return sorted(self._tenants)

    async def drop_tenant(self, tenant: str) -> None:
        async with self.batch():
            for table in ("entities", "docs", "tenants"):
                self._write(f"DELETE FROM {table} WHERE tenant=?", (tenant,))
        self._tenants.pop(tenant, None)

    # ---------------------------------------------------------------- entities
    async def create_entity(self, tenant: str, entity: Doc) -> None:
        t = self._tenant(tenant, create=True)
        assert t is not None
        if entity["id"] in t.entities:
            raise AlreadyExists(f"Entity {entity['id']} already exists")
        entity["_v"] = 1
        t.seq += 1
        self._write("INSERT INTO entities VALUES (?, ?, ?, ?)",
                        (tenant, entity["id"], t.seq, orjson.dumps(entity)))
        t.add(entity)
        await self._durable()

    async def get_entity(self, tenant: str, entity_id: str) -> Doc | None:
        t = self._tenants.get(tenant)
        return None if t is None else t.entities.get(entity_id)

    async def get_entities(self, tenant: str, ids: list[str]) -> dict[str, Doc]:
        t = self._tenants.get(tenant)
        if t is None:
            return {}
        return {i: t.entities[i] for i in ids if i in t.entities}

    async def replace_entity(self, tenant: str, entity: Doc, expected_version: int) -> bool:
        t = self._tenants.get(tenant)
        if t is None:
            return False
        old = t.entities.get(entity["id"])
        if old is None or old.get("_v") != expected_version:
            return False
        entity["_v"] = expected_version + 1
        self._write("UPDATE entities SET doc=? WHERE tenant=? AND id=?",
                        (orjson.dumps(entity), tenant, entity["id"]))
        t.replace(entity)
        await self._durable()
        return True

    async def delete_entity(self, tenant: str, entity_id: str) -> Doc | None:
        t = self._tenants.get(tenant)
        if t is None or entity_id not in t.entities:
            return None
        self._write("DELETE FROM entities WHERE tenant=? AND id=?", (tenant, entity_id))
        old = t.remove(entity_id)
        await self._durable()
        return old

    def _candidates(self, t: _Tenant, query: EntityQuery | None) -> tuple[Any, list[set[str]] | None]:
        """(entities to examine in query order, id sets one of which each match must be in)."""
        if query is None:
            return t.ordered().values(), None
        if query.ids is not None:
            found = [t.entities[i] for i in dict.fromkeys(query.ids) if i in t.entities]
            return sorted(found, key=_order_key), None
        if query.any_of is not None:
            union = self._any_of_candidates(t, query.any_of)
            if union is not None:
                return union, None
        single = _single_type(query.types)
        scope = t.ordered_type(single) if single is not None else t.ordered()
        members = self._typed_members(t, single, query.q, len(scope)) if single is not None else None
        if members is not None:  # the type's holders of an ``attr==value`` term, in query order
            narrower = (self._range_set(t, query.q, len(members), single)
                        if len(members) >= INDEX_MIN_SCAN else None)
            if narrower is None or len(narrower) > len(members) // 4:
                return map(t.entities.__getitem__, members), None
            return sorted((t.entities[i] for i in narrower), key=_order_key), None
        sets = self._equality_sets(t, query, len(scope), single or "")
        if sets is None:
            return scope.values(), None
        size = sum(len(ids) for ids in sets)
        if size <= len(scope) // 4:  # few enough to fetch and sort: far fewer entities examined
            ids = sets[0] if len(sets) == 1 else set().union(*sets)
            return sorted((t.entities[i] for i in ids), key=_order_key), None
        return scope.values(), sets  # scan, but skip non-members with a set lookup first

    @staticmethod
    def _any_of_candidates(t: _Tenant, alternatives: list[EntityQuery]) -> list[Doc] | None:
        """The entities several selectors can match, in query order, when each names ids or a type
        (the usual POST query); None when one names neither (only a scan finds its matches)."""
        found: dict[str, Doc] = {}
        for alt in alternatives:
            if alt.ids is not None:
                found.update((i, t.entities[i]) for i in alt.ids if i in t.entities)
                continue
            single = _single_type(alt.types)
            if single is None:
                return None
            found.update(t.by_type.get(single, {}))
        return sorted(found.values(), key=_order_key)

    @staticmethod
    def _typed_members(t: _Tenant, type_iri: str, q: Any, scan_size: int) -> dict[str, None] | None:
        """The fewest ids of ``type_iri`` one single-value ``attr==value`` term of q admits (every
        match is among them), or None when q has no such term or no index can be kept for it."""
        if q is None or scan_size < INDEX_MIN_SCAN:
            return None
        best: dict[str, None] | None = None
        for attr, keys in _equality_terms(q):
            if len(keys) == 1:
                ids = t.typed_ids(type_iri, attr, keys[0])
                if ids is not None and (best is None or len(ids) < len(best)):
                    best = ids
        return best

    @staticmethod
    def _equality_sets(t: _Tenant, query: EntityQuery, scan_size: int, scope: str) -> list[set[str]] | None:
        """The index sets of the most selective ``attr==value`` or numeric range term of q (any match is
        in one of them), or None when no such term narrows the scan."""
        if query.q is None or scan_size < INDEX_MIN_SCAN:
            return None
        best: list[set[str]] | None = None
        best_size = int(len(t.entities) * 0.9)  # a term nearly every entity meets narrows nothing
        for attr, keys in _equality_terms(query.q):
            index = t.value_index(attr)
            if index is None:
                continue
            sets = [index[k] for k in keys if k in index]
            size = sum(len(ids) for ids in sets)  # sized before any set is copied
            if size < best_size:
                best, best_size = sets, size
        narrower = SqliteStore._range_set(t, query.q, best_size, scope)
        return best if narrower is None else [narrower]

    @staticmethod
    def _range_set(t: _Tenant, q: Any, below: int, scope: str) -> set[str] | None:
        """The ids meeting q's most selective numeric range term, when fewer than ``below`` do.

        A range term is sized by bisection; its ids are gathered only when few entities meet it
        (gathering costs more than the scan it saves otherwise). No match at all ends the query."""
        best: set[str] | None = None
        size = len(t.by_type.get(scope, ())) if scope else len(t.entities)
        best_size = min(below, int(size * RANGE_SHARE) + 1)
        for attr, low, low_in, high, high_in in _range_terms(q):
            ordered = t.range_index(attr, scope)
            if ordered is None:
                continue
            start, stop = _range_ids(ordered, low, low_in, high, high_in)
            if stop - start < best_size:
                best = {eid for _, eid in ordered.islice(start, stop)}
                best_size = stop - start
        return best

    async def query_entities(self, tenant: str, query: EntityQuery) -> tuple[list[Doc], int | None]:
        from ..query.evaluator import entity_matcher

        t = self._tenants.get(tenant)
        if t is None:
            return [], (0 if query.count else None)
        pager = Pager(query)
        candidates, sets = self._candidates(t, query)
        check = query
        if query.ids is None and isinstance(query.types, TypeName) and not isinstance(candidates, list):
            check = replace(query, types=None)  # the type index already guarantees the type
        matches = entity_matcher(check)
        # range terms with an ordered index: tested on the entity's number bounds before q itself (the
        # bounds of the query's one type hold every entity that can match; else those of all)
        checks: list[RangeCheck] = []
        if query.q is not None:
            single = _single_type(query.types) or ""
            for attr, low, low_in, high, high_in in _range_terms(query.q):
                bounds = t.bounds.get(single, {}).get(attr) if single else None
                if bounds is None:
                    bounds = t.bounds.get("", {}).get(attr)
                if bounds is not None:
                    checks.append((bounds, low, low_in, high, high_in))
        if checks:
            q_matches = matches

            def matches(entity: Doc) -> bool:
                return _may_meet(checks, entity["id"]) and q_matches(entity)
        if sets is None:
            for entity in candidates:
                if matches(entity) and pager.add(entity):
                    break
            return pager.result()
        # a scan of the type's entities (keyed by id, in query order) skipping non-members by id
        items = candidates.mapping.items()
        if len(sets) == 1:
            members = sets[0]
            for eid, entity in items:
                if eid in members and matches(entity) and pager.add(entity):
                    break
        else:
            for eid, entity in items:
                if any(eid in ids for ids in sets) and matches(entity) and pager.add(entity):
                    break
        return pager.result()

    async def scan_entities(self, tenant: str, query: EntityQuery | None = None) -> AsyncIterator[Doc]:
        from ..query.evaluator import match_entity

        t = self._tenants.get(tenant)
        if t is None:
            return
        candidates, _ = self._candidates(t, query)
        for entity in list(candidates):
            if query is None or match_entity(query, entity):
                yield entity

    # ---------------------------------------------------------------- keyed documents
    async def insert_doc(self, tenant: str, collection: str, key: str, doc: Doc) -> None:
        self._tenant(tenant, create=True)
        try:
            self._write("INSERT INTO docs VALUES (?, ?, ?, ?)",
                            (tenant, collection, key, orjson.dumps(doc)))
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"{collection} {key} already exists") from exc
        await self._durable()

    async def put_doc(self, tenant: str, collection: str, key: str, doc: Doc) -> None:
        self._tenant(tenant, create=True)
        self._write("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?)",
                        (tenant, collection, key, orjson.dumps(doc)))
        await self._durable()

    async def get_doc(self, tenant: str, collection: str, key: str) -> Doc | None:
        row = self.db.execute("SELECT doc FROM docs WHERE tenant=? AND coll=? AND key=?",
                              (tenant, collection, key)).fetchone()
        return None if row is None else orjson.loads(row[0])

    async def delete_doc(self, tenant: str, collection: str, key: str) -> bool:
        cur = self._write("DELETE FROM docs WHERE tenant=? AND coll=? AND key=?", (tenant, collection, key))
        await self._durable()
        return cur.rowcount > 0

    async def list_docs(self, tenant: str, collection: str, prefix: str = "") -> list[Doc]:
        if prefix:
            rows = self.db.execute("SELECT doc FROM docs WHERE tenant=? AND coll=? AND key>=? AND key<? "
                                   "ORDER BY key", (tenant, collection, prefix, prefix + "\U0010ffff")).fetchall()
        else:
            rows = self.db.execute("SELECT doc FROM docs WHERE tenant=? AND coll=? ORDER BY key",
                                   (tenant, collection)).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    async def delete_docs(self, tenant: str, collection: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            self._write(f"DELETE FROM docs WHERE tenant=? AND coll=? AND key IN ({','.join('?' * len(part))})",
                        (tenant, collection, *part))

    # Reads and writes with no await in between: atomic for the one process this store serves.
    async def add_to_doc(self, tenant: str, collection: str, key: str, inc: dict[str, int],
                         maximum: dict[str, Any]) -> None:
        doc = await self.get_doc(tenant, collection, key) or {}
        for name, n in inc.items():
            doc[name] = doc.get(name, 0) + n
        for name, value in maximum.items():
            if doc.get(name) is None or value > doc[name]:
                doc[name] = value
        await self.put_doc(tenant, collection, key, doc)



def _single_type(types: Any) -> str | None:
    """A type IRI every match must have (a single term, or a term of a conjunction): the index to scan."""
    if isinstance(types, TypeName):
        return types.iri
    if isinstance(types, And):
        return next((n.iri for n in types.items if isinstance(n, TypeName)), None)
    return None
