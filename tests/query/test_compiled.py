"""The compiled q matcher answers exactly as the reference evaluator does."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.query.compiled import compile_q
from broker.query.evaluator import match_q_reference
from broker.query.parser import parse_q
from tests.query.strategies import entities, expand, queries

EXAMPLES = int(os.environ.get("QUERY_FUZZ_EXAMPLES", "400"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entities(), min_size=1, max_size=6), queries())
def test_compiled_equals_reference(batch: list[dict], q: str) -> None:
    node = parse_q(q, expand)
    pred = compile_q(node)
    for entity in batch:
        assert pred(entity) == match_q_reference(node, entity), (q, entity)


def test_compiled_examples() -> None:
    e = {"id": "urn:x:1", "type": ["T"], "attrs": {
        expand("t"): [{"type": "Property", "value": 21.5}, {"type": "Property", "value": 3, "datasetId": "urn:d"}],
        expand("name"): [{"type": "LanguageProperty", "languageMap": {"en": "Porto", "pt": "Porto"}}],
        expand("rel"): [{"type": "Relationship", "object": "urn:ngsi-ld:B:1"}],
        expand("when"): [{"type": "Property", "value": {"@type": "DateTime", "@value": "2024-01-01T10:00:00Z"}}],
    }}
    cases = {
        "t>20": True, "t<4": True, "t==3": True, "t!=3": True, "t==5..10": False, "t==21.5,7": True,
        "name==\"Porto\"": True, "name~=or": True, "name!~=or": False, "rel==urn:ngsi-ld:B:1": True,
        "rel!=urn:ngsi-ld:B:1": False, "when>2023-12-31T00:00:00Z": True, "missing!=1": False,
        "t>100|rel==urn:ngsi-ld:B:1": True, "t>100;rel==urn:ngsi-ld:B:1": False, "t==true": False,
    }
    for q, expected in cases.items():
        node = parse_q(q, expand)
        assert compile_q(node)(e) is expected, q
        assert match_q_reference(node, e) is expected, q
