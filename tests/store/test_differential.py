"""Differential tests: each store's ``query_entities`` against the Python evaluator over a plain list.

Generated entities go into SQLite and the real FerretDB; generated queries (ids, idPattern, type
expressions, attrs, q, scopeQ, geoQ, pages, count) must give the same ids in the same order
((createdAt, id)) and the same count as filtering the sorted list with ``match_entity``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.query.evaluator import match_entity
from broker.query.model import EntityQuery
from broker.store.base import Store
from tests.query.strategies import entities, entity_queries

TENANT = "diff"
QUERIES_PER_DATASET = 12


def _order(entity: dict[str, Any]) -> tuple[str, str]:
    return entity["createdAt"], entity["id"]


@st.composite
def datasets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Distinct ids (the strategy's tricky ids kept once, then suffixed); createdAt with ties."""
    items = draw(st.lists(entities(), min_size=10, max_size=35))
    seen: set[str] = set()
    for n, e in enumerate(items):
        if e["id"] in seen:
            e["id"] = f"{e['id']}-{n}"
        seen.add(e["id"])
        e["createdAt"] = e["modifiedAt"] = f"2024-01-01T00:{n // 60:02d}:{(n % 60) // 3:02d}.000Z"
    # stores must order by (createdAt, id), not by arrival
    return draw(st.permutations(items))


@st.composite
def paged_queries(draw: st.DrawFn) -> EntityQuery:
    query = draw(entity_queries())
    query.offset = draw(st.sampled_from([0, 0, 1, 3, 10]))
    query.limit = draw(st.sampled_from([1, 2, 5, 20, 100]))
    query.count = draw(st.booleans())
    return query


async def _check(store: Store, dataset: list[dict[str, Any]], queries: list[EntityQuery]) -> None:
    await store.drop_tenant(TENANT)
    for entity in dataset:
        await store.create_entity(TENANT, dict(entity))
    ordered = sorted(dataset, key=_order)
    for query in queries:
        expected = [e["id"] for e in ordered if match_entity(query, e)]
        page, count = await store.query_entities(TENANT, query)
        got = [e["id"] for e in page]
        assert got == expected[query.offset:query.offset + query.limit], (store.backend, query)
        assert count == (len(expected) if query.count else None), (store.backend, query)
        scanned = [e["id"] async for e in store.scan_entities(TENANT, query)]
        assert scanned == expected, (store.backend, query)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(dataset=datasets(), queries=st.lists(paged_queries(), min_size=QUERIES_PER_DATASET,
                                            max_size=QUERIES_PER_DATASET))
async def test_store_matches_evaluator(store: Store, dataset: list[dict[str, Any]],
                                       queries: list[EntityQuery]) -> None:
    await _check(store, dataset, queries)


async def test_order_survives_out_of_order_writes(store: Store) -> None:
    """Out-of-order arrivals, type changes and a moved createdAt keep the (createdAt, id) order."""
    from broker.query.ast import TypeName

    base = {"modifiedAt": "2024-01-01T00:00:00.000Z", "attrs": {}}
    for ident, created in (("urn:c", "2024-01-02T00:00:00.000Z"), ("urn:b", "2024-01-01T00:00:00.000Z"),
                           ("urn:a", "2024-01-02T00:00:00.000Z"), ("urn:d", "2024-01-01T00:00:00.000Z")):
        await store.create_entity(TENANT, {**base, "id": ident, "type": ["urn:T"], "createdAt": created})
    moved = await store.get_entity(TENANT, "urn:b")
    assert moved is not None
    assert await store.replace_entity(TENANT, {**moved, "type": ["urn:T", "urn:U"]}, moved["_v"])
    await store.create_entity(TENANT, {**base, "id": "urn:e", "type": ["urn:U"],
                                       "createdAt": "2024-01-03T00:00:00.000Z"})
    everything = EntityQuery(types=TypeName("urn:T"), limit=10)
    page, _ = await store.query_entities(TENANT, everything)
    assert [e["id"] for e in page] == ["urn:b", "urn:d", "urn:a", "urn:c"]
    page, _ = await store.query_entities(TENANT, EntityQuery(types=TypeName("urn:U"), limit=10))
    assert [e["id"] for e in page] == ["urn:b", "urn:e"]
    page, _ = await store.query_entities(TENANT, EntityQuery(ids=["urn:e", "urn:a", "urn:d"], limit=10))
    assert [e["id"] for e in page] == ["urn:d", "urn:a", "urn:e"]
    first = await store.get_entity(TENANT, "urn:c")
    assert first is not None
    assert await store.replace_entity(TENANT, {**first, "createdAt": "2023-12-31T00:00:00.000Z"}, first["_v"])
    page, _ = await store.query_entities(TENANT, everything)
    assert [e["id"] for e in page] == ["urn:c", "urn:b", "urn:d", "urn:a"]
    page, _ = await store.query_entities(TENANT, EntityQuery(limit=2, offset=1))
    assert [e["id"] for e in page] == ["urn:b", "urn:d"]
