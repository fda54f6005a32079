"""The raw-store baseline: the same stored documents written and read straight through the driver.

What "raw" means here (one connection, one Python loop, no HTTP, no broker):

- documents: the broker's stored form of the seeded entities (expanded by the broker's own
  ``Expander``; for MongoDB also encoded by ``store/codec.py``), prepared before the clock starts;
- ``insert``: one document per statement/``insert_one``, autocommitted (SQLite: WAL, synchronous=NORMAL,
  the store's own schema; ``orjson.dumps`` inside the timed loop);
- ``get``: by id (SQLite: ``SELECT doc`` + ``orjson.loads``; MongoDB: ``find_one({_id})``);
- ``update``: dissolvedOxygen ``value`` + ``observedAt`` of one entity (SQLite: read-modify-write,
  select + loads + dumps + update; MongoDB: one ``update_one`` with ``$set``, which is cheaper than
  the broker's find + version-checked ``replace_one``);
- ``query``: the property query of the HTTP scenario (random type, observed property > n, static
  equality; first 20 in creation order). SQLite: a ``json_extract``/``json_each`` scan in SQL
  (``query_sql``) and the same predicate as a Python filter over in-memory dicts bucketed by type
  (``query_py``, what the embedded store does); MongoDB: ``find`` with the filter the broker's own
  compiler produces, sorted like the broker, limit 20.

Each operation runs for at most ``seconds`` or ``max_ops`` operations, whichever comes first, and
reports ops/s and ops per CPU-second of the loop's process (for MongoDB that excludes the server's
CPU, so only the wall-clock figure is comparable there).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import orjson
from dataset import OBSERVED, STATIC_QUERIES, DataSet


def expand(term: str) -> str:
    """A term as the broker expands it with the core @context (``description`` is a Dublin Core IRI,
    unknown terms fall to the default vocabulary)."""
    from broker.jsonld.resolver import ContextResolver

    global _TM
    if _TM is None:
        _TM = ContextResolver().default_map
    return _TM.expand(term)


_TM: Any = None


def stored_entities(data: DataSet) -> list[dict[str, Any]]:
    """The seeded entities in the broker's stored form (expanded with the core @context)."""
    from broker.entities.expand import Expander
    from broker.jsonld.resolver import ContextResolver
    from broker.timeutil import now_iso

    tm = ContextResolver().default_map
    out = []
    for n in range(data.size):
        out.append(Expander(tm, now_iso()).entity(data.entity(n)))
    return out


def _timed(fn: Callable[[int], None], seconds: float, max_ops: int) -> dict[str, float]:
    """ops/s by the wall clock, and ops per CPU-second of this process (which, unlike the wall
    clock, barely moves when other processes compete for the core)."""
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + seconds
    ops = 0
    while ops < max_ops:
        fn(ops)
        ops += 1
        if time.perf_counter() >= deadline:  # every op: FerretDB queries take seconds each
            break
    elapsed = time.perf_counter() - start
    cpu = max(time.process_time() - cpu0, 1e-6)
    return {"ops": ops, "seconds": round(elapsed, 3), "ops_per_s": round(ops / elapsed, 1),
            "cpu_s": round(cpu, 3), "ops_per_cpu_s": round(ops / cpu, 1)}


def _query_params(data: DataSet, rng: random.Random) -> tuple[str, str, int, str, str]:
    """(type, observed attr, threshold, static attr, static value) drawn like the wrk script."""
    static = rng.choice(STATIC_QUERIES)
    name, value = static.split("==", 1)
    return rng.choice(data.types), rng.choice(OBSERVED), rng.randint(0, 100), name, value.strip('"')


def _type_iri(t: str) -> str:
    return expand(t)


def run_sqlite(data: DataSet, docs: list[dict[str, Any]], path: str, seconds: float,
               max_ops: int) -> dict[str, Any]:
    from broker.store.sqlite import _SCHEMA

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    rng = random.Random(7)
    res: dict[str, Any] = {}
    n = len(docs)

    def insert(i: int) -> None:
        d = docs[i]
        db.execute("INSERT INTO entities VALUES (?, ?, ?, ?)", ("", d["id"], i, orjson.dumps(d)))

    res["insert"] = _timed(insert, seconds, n)
    done = int(res["insert"]["ops"])
    if done < n:  # the rest untimed, in one transaction, so the query sees the whole data set
        db.execute("BEGIN")
        db.executemany("INSERT INTO entities VALUES (?, ?, ?, ?)",
                       [("", d["id"], i, orjson.dumps(d)) for i, d in enumerate(docs) if i >= done])
        db.execute("COMMIT")

    ids = [d["id"] for d in docs]

    def get(_: int) -> None:
        row = db.execute("SELECT doc FROM entities WHERE tenant=? AND id=?", ("", rng.choice(ids))).fetchone()
        orjson.loads(row[0])

    res["get"] = _timed(get, seconds, max_ops)
    do_iri = expand("dissolvedOxygen")

    def update(_: int) -> None:
        eid = rng.choice(ids)
        doc = orjson.loads(db.execute("SELECT doc FROM entities WHERE tenant=? AND id=?", ("", eid)).fetchone()[0])
        inst = doc["attrs"][do_iri][0]
        inst["value"] = rng.random() * 100
        inst["observedAt"] = inst["modifiedAt"] = doc["modifiedAt"] = "2024-01-01T00:00:00.000Z"
        doc["_v"] = doc.get("_v", 1) + 1
        db.execute("UPDATE entities SET doc=? WHERE tenant=? AND id=?", (orjson.dumps(doc), "", eid))

    res["update"] = _timed(update, seconds, max_ops)

    sql = ("SELECT doc FROM entities WHERE tenant='' AND json_extract(doc, '$.type[0]') = ? "
           "AND EXISTS (SELECT 1 FROM json_each(doc, ?) WHERE json_extract(value, '$.value') > ?) "
           "AND json_extract(doc, ?) = ? ORDER BY seq LIMIT 20")

    def query_sql(_: int) -> None:
        t, attr, thr, sname, sval = _query_params(data, rng)
        rows = db.execute(sql, (_type_iri(t), f'$.attrs."{expand(attr)}"', thr,
                                f'$.attrs."{expand(sname)}"[0].value', sval)).fetchall()
        [orjson.loads(r[0]) for r in rows]

    res["query_sql"] = _timed(query_sql, seconds, max_ops)

    by_type: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_type.setdefault(d["type"][0], []).append(d)

    def query_py(_: int) -> None:
        t, attr, thr, sname, sval = _query_params(data, rng)
        a_iri, s_iri = expand(attr), expand(sname)
        page = []
        for e in by_type.get(_type_iri(t), ()):
            attrs = e["attrs"]
            if any(i.get("value", 0) > thr for i in attrs.get(a_iri, ())) and \
                    any(i.get("value") == sval for i in attrs.get(s_iri, ())):
                page.append(e)
                if len(page) >= 20:
                    break

    res["query_py"] = _timed(query_py, seconds, max_ops)
    db.close()
    return res


def run_mongo(data: DataSet, docs: list[dict[str, Any]], url: str, db_name: str, seconds: float,
              max_ops: int) -> dict[str, Any]:
    from pymongo import ASCENDING, MongoClient

    from broker.query.model import EntityQuery
    from broker.query.mongo import compile_entity_query
    from broker.query.parser import parse_q, parse_type_expr
    from broker.store.codec import encode_entity, encode_key

    client: MongoClient[dict[str, Any]] = MongoClient(url, maxPoolSize=1, serverSelectionTimeoutMS=10000)
    client.drop_database(db_name)
    coll = client[db_name]["entities"]
    coll.create_index([("type", ASCENDING)], name="type")
    coll.create_index([("attrNames", ASCENDING)], name="attrNames")
    sort = [("createdAt", ASCENDING), ("_id", ASCENDING)]
    coll.create_index(sort, name="order")
    encoded = []
    for d in docs:
        e = dict(d)
        e["_v"] = 1
        encoded.append(encode_entity(e))
    rng = random.Random(7)
    res: dict[str, Any] = {}

    def insert(i: int) -> None:
        coll.insert_one(encoded[i])

    res["insert"] = _timed(insert, seconds, len(encoded))
    done = int(res["insert"]["ops"])
    if done < len(encoded):
        coll.insert_many(encoded[done:], ordered=False)

    ids = [d["id"] for d in docs]
    res["get"] = _timed(lambda _: coll.find_one({"_id": rng.choice(ids)}), seconds, max_ops)
    do_field = "attrs." + encode_key(expand("dissolvedOxygen")) + ".0"

    def update(_: int) -> None:
        coll.update_one({"_id": rng.choice(ids)}, {"$set": {
            do_field + ".value": rng.random() * 100, do_field + ".observedAt": "2024-01-01T00:00:00.000Z",
            do_field + ".modifiedAt": "2024-01-01T00:00:00.000Z", "modifiedAt": "2024-01-01T00:00:00.000Z"},
            "$inc": {"_v": 1}})

    res["update"] = _timed(update, seconds, max_ops)

    def query(_: int) -> None:
        t, attr, thr, sname, sval = _query_params(data, rng)
        q = EntityQuery(types=parse_type_expr(t, expand), q=parse_q(f'{attr}>{thr};{sname}=="{sval}"', expand))
        flt, _exact = compile_entity_query(q)
        list(coll.find(flt).sort(sort).limit(20))

    res["query"] = _timed(query, seconds, max_ops)
    client.drop_database(db_name)
    client.close()
    return res
