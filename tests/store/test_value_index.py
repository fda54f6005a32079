"""The embedded store's equality (tenant-wide and per type) and numeric range indexes answer exactly
what a full scan answers, across writes that change values, types and the query order."""

from __future__ import annotations

import random

from broker.query.ast import TypeName
from broker.query.evaluator import match_entity
from broker.query.model import EntityQuery
from broker.query.parser import parse_q
from broker.services.entities import EntityService
from broker.services.events import EventBus
from broker.store.sqlite import SqliteStore, _numbers

V = "https://example.org/"


def expand(name: str) -> str:
    return V + name


def make(i: int, rng: random.Random) -> dict:
    station = rng.choice(["a", "b", "c", "d"] + [f"s{n}" for n in range(40)])
    attrs = {
        V + "station": [{"type": "Property", "value": station}],
        V + "level": [{"type": "Property", "value": rng.randint(0, 9)},
                      {"type": "Property", "value": rng.randint(0, 9), "datasetId": "urn:ds:2"}],
        V + "flag": [{"type": "Property", "value": rng.choice([True, False, 1, 0])}],
        V + "serves": [{"type": "Relationship", "object": f"urn:ngsi-ld:D:{rng.randint(0, 30)}"}],
        V + "name": [{"type": "LanguageProperty", "languageMap": {"en": station, "pt": "x"}}],
        # numbers of both kinds, a numeric string, a boolean, a list and a NaN: only numbers count
        V + "temp": [{"type": "Property", "value": rng.choice([
            round(rng.random() * 100, 2), rng.randint(0, 100), "99", True, [98.5, 1], float("nan")])},
            {"type": "Property", "value": round(rng.random() * 100, 1), "datasetId": "urn:ds:2"}],
    }
    return {"id": f"urn:ngsi-ld:E:{i:05d}", "type": [V + rng.choice(["T1", "T2"])],
            "createdAt": f"2024-01-01T00:00:{i % 60:02d}.000Z", "modifiedAt": "x", "attrs": attrs}


QUERIES = ['station=="nowhere"', 'station=="nowhere",s5', 'station=="s7"', 'station=="a",s3;level>4', 'level==3;serves=="urn:ngsi-ld:D:4"',
           'flag==true', 'flag==1', 'name=="s9"', 'level==2..3;station=="s1"', 'station=="s2"|level==1',
           'serves==urn:ngsi-ld:D:7,urn:ngsi-ld:D:8',
           'temp>97', 'temp>=99.5;station=="a"', 'temp<1', 'temp<=0.5', 'temp==3..4', 'temp>100', 'temp>=100',
           'temp>98;temp<99', 'temp>99|level==1', 'level>8;temp>90']


async def check_all(store: SqliteStore, entities: dict[str, dict]) -> None:
    check_ranges(store, entities)
    for text in QUERIES:
        for types in (None, TypeName(V + "T1"), TypeName(V + "T2")):
            q = EntityQuery(q=parse_q(text, expand), types=types, limit=1000, count=True)
            page, count = await store.query_entities("", q)
            expected = sorted((e for e in entities.values() if match_entity(q, e)),
                              key=lambda e: (e["createdAt"], e["id"]))
            assert [e["id"] for e in page] == [e["id"] for e in expected], text
            assert count == len(expected)


def check_ranges(store: SqliteStore, entities: dict[str, dict]) -> None:
    """Each ordered index holds the numbers of exactly the entities of its scope (its type, or all),
    and its bounds their least and greatest."""
    t = store._tenants[""]
    pairs = [(scope, attr, ordered) for scope, per in t.ranges.items() for attr, ordered in per.items()]
    assert {(scope, attr) for scope, attr, _ in pairs} == {(s, a) for s, per in t.bounds.items() for a in per}
    for scope, attr, ordered in pairs:
        members = [e for e in entities.values() if not scope or scope in e["type"]]
        assert sorted(ordered) == sorted((n, e["id"]) for e in members for n in _numbers(e, attr)), (scope, attr)
        assert t.bounds[scope][attr] == {e["id"]: (min(ns), max(ns)) for e in members
                                         if (ns := _numbers(e, attr))}


async def seed(store: SqliteStore, n: int, rng: random.Random) -> dict[str, dict]:
    """Start the store and create n entities; returns them by id."""
    await store.start()
    entities = {}
    for i in range(n):
        e = make(i, rng)
        await store.create_entity("", e)
        entities[e["id"]] = e
    return entities


async def test_index_matches_scan_across_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    try:
        entities = await seed(store, 1500, rng)
        await check_all(store, entities)  # builds the indexes
        assert store._tenants[""].values, "the equality index was not used"
        # a typed query ranges over its type's own index, an untyped one over the index of all
        assert store._tenants[""].ranges.keys() == {"", V + "T1", V + "T2"}
        check_ranges(store, entities)
        assert store._tenants[""].typed.keys() == {V + "T1", V + "T2"}, "the per-type index was not used"
        for i in rng.sample(range(1500), 300):  # updates move entities between index keys
            eid = f"urn:ngsi-ld:E:{i:05d}"
            new = make(i, rng)  # the type may change too
            if rng.random() < 0.2:  # and the place in the query order
                new["createdAt"] = f"2023-12-31T00:00:{rng.randint(0, 59):02d}.000Z"
            assert await store.replace_entity("", new, entities[eid]["_v"])
            entities[eid] = new
        await check_all(store, entities)
        for eid in rng.sample(sorted(entities), 100):  # only the place in the query order moves
            new = {**entities[eid], "createdAt": f"2023-12-30T00:00:{rng.randint(0, 59):02d}.000Z"}
            assert await store.replace_entity("", new, entities[eid]["_v"])
            entities[eid] = new
        await check_all(store, entities)
        for i in rng.sample(range(1500), 200):
            eid = f"urn:ngsi-ld:E:{i:05d}"
            if eid in entities:
                await store.delete_entity("", eid)
                del entities[eid]
        for i in range(1500, 1700):
            e = make(i, rng)
            await store.create_entity("", e)
            entities[e["id"]] = e
        await check_all(store, entities)
        # writes through the service share the instances they leave alone (attr_copy / frame_copy):
        # only the changed attributes are re-keyed, and the answers must still equal a scan
        svc = EntityService(store, EventBus())
        for i in rng.sample(sorted(entities), 300):
            if rng.random() < 0.5:
                await svc.update_attr("", i, V + "temp", {"value": rng.choice([99.9, 0.1, 3.5, 42])})
            else:
                await svc.append("", i, {"attrs": {V + "station": [
                    {"type": "Property", "value": rng.choice(["a", "s7", "zz"])}]}})
            entities[i] = await store.get_entity("", i)
        await check_all(store, entities)
    finally:
        await store.close()


async def test_per_type_indexes_are_bounded(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past MAX_TYPED_INDEXES (MAX_RANGE_INDEXES), a query on a new (type, attribute) pair (a new
    (scope, attribute) pair of a range term) scans instead, with the same answer."""
    import broker.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "MAX_TYPED_INDEXES", 1)
    monkeypatch.setattr(sqlite_store, "MAX_RANGE_INDEXES", 2)
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    try:
        entities = await seed(store, 400, random.Random(3))
        await check_all(store, entities)
        typed = store._tenants[""].typed
        assert sum(len(per) for per in typed.values()) == 1  # one pair indexed, the others scanned
        assert sum(len(per) for per in store._tenants[""].ranges.values()) == 2
    finally:
        await store.close()
