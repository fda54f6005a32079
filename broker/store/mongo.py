"""MongoDB store (any MongoDB-wire server: MongoDB 6+, FerretDB 1.24) on PyMongo's native async API.

One database per tenant (``<prefix>`` for the default tenant, ``<prefix>-<tenant>`` otherwise).
Queries compile to a MongoDB filter; when the compiler says the filter is only a prefilter (geo,
regexes beyond RE2), the exact predicate runs in Python on the candidates, so answers are exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from ..errors import AlreadyExists
from ..query.model import EntityQuery
from .base import DEFAULT_TENANT, Doc, Pager, Store
from .codec import decode_entity, decode_value, encode_entity, encode_key, encode_value

ENTITIES = "entities"
_SORT = [("createdAt", ASCENDING), ("_id", ASCENDING)]


class MongoStore(Store):
    backend = "mongodb"

    def __init__(self, url: str, prefix: str = "ngsild") -> None:
        self.url = url
        self.prefix = prefix
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=10000)
        self._known: set[str] = set()
        self._indexed: set[str] = set()
        self._ferretdb = False

    def _db_name(self, tenant: str) -> str:
        return self.prefix if tenant == DEFAULT_TENANT else f"{self.prefix}-{tenant}"

    def _tenant_of(self, db_name: str) -> str | None:
        if db_name == self.prefix:
            return DEFAULT_TENANT
        if db_name.startswith(self.prefix + "-"):
            return db_name[len(self.prefix) + 1:]
        return None

    async def start(self) -> None:
        await self.client.admin.command("ping")
        info = await self.client.admin.command("buildInfo")
        self._ferretdb = any(k.startswith("ferretdb") for k in info)
        for tenant in await self.tenants():
            await self._ensure_indexes(tenant)

    async def close(self) -> None:
        await self.client.close()

    async def describe(self) -> dict[str, Any]:
        info = await self.client.admin.command("buildInfo")
        return {"backend": "mongodb", "version": info.get("version"),
                "ferretdb": info.get("ferretdb", {}).get("version") if isinstance(info.get("ferretdb"), dict)
                else None}

    async def ping(self) -> bool:
        await self.client.admin.command("ping")
        return True

    # ---------------------------------------------------------------- tenants
    async def _ensure_indexes(self, tenant: str) -> None:
        if tenant in self._indexed:
            return
        coll = self.client[self._db_name(tenant)][ENTITIES]
        await coll.create_index([("type", ASCENDING)], name="type")
        await coll.create_index([("attrNames", ASCENDING)], name="attrNames")
        await coll.create_index(_SORT, name="order")
        self._indexed.add(tenant)
        self._known.add(tenant)

    async def tenant_exists(self, tenant: str) -> bool:
        if tenant in self._known:
            return True
        return tenant in await self.tenants()

    async def tenants(self) -> list[str]:
        names = await self.client.list_database_names()
        found = sorted(t for t in (self._tenant_of(n) for n in names) if t is not None)
        self._known.update(found)
        return found

    async def drop_tenant(self, tenant: str) -> None:
        await self.client.drop_database(self._db_name(tenant))
        self._known.discard(tenant)
        self._indexed.discard(tenant)

    def _entities(self, tenant: str) -> Any:
        return self.client[self._db_name(tenant)][ENTITIES]

    # ---------------------------------------------------------------- entities
    async def create_entity(self, tenant: str, entity: Doc) -> None:
        await self._ensure_indexes(tenant)
        entity["_v"] = 1
        try:
            await self._entities(tenant).insert_one(encode_entity(entity))
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"Entity {entity['id']} already exists") from exc

    async def get_entity(self, tenant: str, entity_id: str) -> Doc | None:
        doc = await self._entities(tenant).find_one({"_id": entity_id})
        return None if doc is None else decode_entity(doc)

    async def get_entities(self, tenant: str, ids: list[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        cursor = self._entities(tenant).find({"_id": {"$in": list(dict.fromkeys(ids))}})
        return {d["_id"]: decode_entity(d) async for d in cursor}

    async def replace_entity(self, tenant: str, entity: Doc, expected_version: int) -> bool:
        entity["_v"] = expected_version + 1
        res = await self._entities(tenant).replace_one({"_id": entity["id"], "_v": expected_version},
                                                       encode_entity(entity))
        if res.matched_count != 1:
            entity["_v"] = expected_version
            return False
        return True

    async def delete_entity(self, tenant: str, entity_id: str) -> Doc | None:
        doc = await self._entities(tenant).find_one_and_delete({"_id": entity_id})
        return None if doc is None else decode_entity(doc)

    async def query_entities(self, tenant: str, query: EntityQuery) -> tuple[list[Doc], int | None]:
        from ..query.evaluator import match_entity

        flt, exact = self._compile(query)
        coll = self._entities(tenant)
        if exact:
            total = await coll.count_documents(flt) if query.count else None
            cursor = coll.find(flt).sort(_SORT).skip(query.offset).limit(query.limit)
            return [decode_entity(d) async for d in cursor], total
        pager = Pager(query)
        async for raw in coll.find(flt).sort(_SORT):
            entity = decode_entity(raw)
            if match_entity(query, entity) and pager.add(entity):
                break
        return pager.result()

    def _compile(self, query: EntityQuery) -> tuple[dict[str, Any], bool]:
        """The filter of a query; on FerretDB without ``$elemMatch`` (then never exact)."""
        from ..query.mongo import compile_entity_query

        flt, exact = compile_entity_query(query)
        if self._ferretdb and _has_elem_match(flt):
            return relax_elem_match(flt), False
        return flt, exact

    async def scan_entities(self, tenant: str, query: EntityQuery | None = None) -> AsyncIterator[Doc]:
        from ..query.evaluator import match_entity

        flt: dict[str, Any] = {}
        exact = True
        if query is not None:
            flt, exact = self._compile(query)
        async for raw in self._entities(tenant).find(flt).sort(_SORT):
            entity = decode_entity(raw)
            if exact or query is None or match_entity(query, entity):
                yield entity

    # ---------------------------------------------------------------- keyed documents
    def _coll(self, tenant: str, collection: str) -> Any:
        self._known.add(tenant)
        return self.client[self._db_name(tenant)][collection]

    async def insert_doc(self, tenant: str, collection: str, key: str, doc: Doc) -> None:
        try:
            await self._coll(tenant, collection).insert_one({"_id": key, "d": encode_value(doc)})
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"{collection} {key} already exists") from exc

    async def put_doc(self, tenant: str, collection: str, key: str, doc: Doc) -> None:
        await self._coll(tenant, collection).replace_one({"_id": key}, {"_id": key, "d": encode_value(doc)},
                                                         upsert=True)

    async def get_doc(self, tenant: str, collection: str, key: str) -> Doc | None:
        raw = await self.client[self._db_name(tenant)][collection].find_one({"_id": key})
        return None if raw is None else decode_value(raw["d"])

    async def delete_doc(self, tenant: str, collection: str, key: str) -> bool:
        res = await self.client[self._db_name(tenant)][collection].delete_one({"_id": key})
        return res.deleted_count == 1

    async def list_docs(self, tenant: str, collection: str, prefix: str = "") -> list[Doc]:
        flt = {"_id": {"$gte": prefix, "$lt": prefix + "\U0010ffff"}} if prefix else {}
        cursor = self.client[self._db_name(tenant)][collection].find(flt).sort([("_id", ASCENDING)])
        return [decode_value(raw["d"]) async for raw in cursor]

    async def delete_docs(self, tenant: str, collection: str, keys: list[str]) -> None:
        if keys:
            await self.client[self._db_name(tenant)][collection].delete_many({"_id": {"$in": keys}})

    async def add_to_doc(self, tenant: str, collection: str, key: str, inc: dict[str, int],
                         maximum: dict[str, Any]) -> None:
        update: dict[str, Any] = {}
        if inc:
            update["$inc"] = {f"d.{encode_key(k)}": n for k, n in inc.items()}
        if maximum:
            update["$max"] = {f"d.{encode_key(k)}": encode_value(v) for k, v in maximum.items()}
        if not update:
            return
        coll = self._coll(tenant, collection)
        try:
            await coll.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:  # two upserts raced to create it: it exists now, so update it
            await coll.update_one({"_id": key}, update, upsert=True)



# FerretDB 1.24 answers $elemMatch over arrays of documents wrongly: one field condition matches
# nothing, several are rejected as "unknown operator". Its dotted paths traverse arrays correctly.
_KEEP_OPS = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$regex", "$options", "$all"})


def _has_elem_match(flt: Any) -> bool:
    if isinstance(flt, dict):
        return "$elemMatch" in flt or any(_has_elem_match(v) for v in flt.values())
    if isinstance(flt, list):
        return any(_has_elem_match(v) for v in flt)
    return False


def _positive(cond: Any) -> Any:
    """The part of a field condition that dotted-path traversal keeps as a superset (None: nothing)."""
    if not isinstance(cond, dict) or not any(k.startswith("$") for k in cond):
        return cond  # equality with a literal
    kept = {op: arg for op, arg in cond.items()
            if op in _KEEP_OPS or (op == "$exists" and arg is True)}
    if "$options" in kept and "$regex" not in kept:
        del kept["$options"]
    return kept or None


def relax_elem_match(flt: Any) -> Any:
    """A superset of ``flt`` without ``$elemMatch``: each becomes dotted conditions on the array's
    field (met perhaps by different elements); negative conditions are dropped. Valid because the
    compiled filters are monotone (no ``$not``/``$nor`` around them); the caller post-filters."""
    if isinstance(flt, list):
        return [relax_elem_match(f) for f in flt]
    if not isinstance(flt, dict):
        return flt
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            out[key] = [relax_elem_match(f) for f in cond]
        elif isinstance(cond, dict) and "$elemMatch" in cond:
            parts = [{f"{key}.{sub}": kept} for sub, sub_cond in cond["$elemMatch"].items()
                     if (kept := _positive(sub_cond)) is not None]
            extra.extend(parts or [{key: {"$exists": True}}])
        else:
            out[key] = cond
    if not extra:
        return out
    if "$and" in out:
        out["$and"] = [*out["$and"], *extra]
        return out
    if not out and len(extra) == 1:
        return extra[0]
    return {**out, "$and": extra} if out else {"$and": extra}
