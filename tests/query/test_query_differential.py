"""Differential tests: the MongoDB filter is a superset of the evaluator, and equal when ``exact``."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.evaluator import match_entity
from broker.query.model import EntityQuery
from broker.query.mongo import compile_entity_query
from broker.query.parser import parse_geoq, parse_q
from tests.query.encoding import encode_entity
from tests.query.mongo_matcher import matches
from tests.query.strategies import entities, entity_queries, expand, geo_args, queries

# QUERY_FUZZ_EXAMPLES=20000 for a long soak; the default keeps the suite quick.
EXAMPLES = int(os.environ.get("QUERY_FUZZ_EXAMPLES", "400"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(query: EntityQuery, entity: dict[str, Any]) -> None:
    expected = match_entity(query, entity)
    filt, exact = compile_entity_query(query)
    got = matches(filt, encode_entity(entity))
    if expected:
        assert got, f"filter misses a match: {filt}"
    if exact:
        assert got == expected, f"exact filter differs from the evaluator: {filt}"


@SETTINGS
@given(entities(), queries())
def test_q_filter_is_superset_and_exact_when_claimed(entity: dict[str, Any], q: str) -> None:
    check(EntityQuery(q=parse_q(q, expand)), entity)


@SETTINGS
@given(entities(), entity_queries())
def test_entity_query_filter_is_superset_and_exact_when_claimed(entity: dict[str, Any],
                                                               query: EntityQuery) -> None:
    check(query, entity)


@SETTINGS
@given(entities(with_location=True), geo_args())
def test_geo_prefilter_is_superset(entity: dict[str, Any], args: tuple) -> None:
    try:
        geo = parse_geoq(*args, expand)
    except BadRequestData:  # overlapping MultiPolygon parts
        return
    check(EntityQuery(geo_q=geo), entity)


@settings(max_examples=max(50, EXAMPLES // 4), deadline=None)
@given(st.lists(entities(), min_size=5, max_size=10), queries())
def test_q_selects_the_same_entities_as_a_collection(batch: list[dict[str, Any]], q: str) -> None:
    """Whole-collection view of the same property, as a store would use it."""
    query = EntityQuery(q=parse_q(q, expand))
    filt, exact = compile_entity_query(query)
    evaluated = [match_entity(query, e) for e in batch]
    filtered = [matches(filt, encode_entity(e)) for e in batch]
    assert all(f for f, e in zip(filtered, evaluated, strict=True) if e)
    if exact:
        assert filtered == evaluated
