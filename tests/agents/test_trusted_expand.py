"""The agents' cached expansion gives exactly ``Expander.entity``'s stored form, and the same refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents import iotajson
from agents.mapping import build_entities, effective_device
from agents.writer import TrustedExpander
from broker.entities.expand import NGSILD_NULL, Expander
from broker.errors import NgsiLdError
from broker.jsonld.termmap import TermMap

V = "https://uri.etsi.org/ngsi-ld/default-context/"
NOW = "2024-01-01T00:00:00.000Z"


def tm() -> TermMap:
    return TermMap(b"t", None, {"ex": {"@id": "https://example.org/", "_prefix": True},
                                "temperature": {"@id": "https://example.org/temp"}}, V)


def both(body: Any, trusted: TrustedExpander) -> tuple[Any, Any]:
    def run(fn: Any) -> Any:
        try:
            return fn()
        except NgsiLdError as exc:
            return (type(exc), str(exc))

    return (run(lambda: Expander(trusted.tm, NOW).entity(body)),
            run(lambda: trusted.entity(body, NOW, Expander(trusted.tm, NOW))))


MAPPED = build_entities(
    effective_device({
        "device_id": "d1", "entity_type": "Meter",
        "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                       {"object_id": "p", "name": "location", "type": "geo:point"},
                       {"object_id": "r", "name": "refRoom", "type": "Relationship"},
                       {"object_id": "u", "name": "unit", "type": "Text",
                        "metadata": {"unitCode": {"type": "Text", "value": "CEL"},
                                     "accuracy": {"type": "Number", "value": 0.5}}}],
        "static_attributes": [{"name": "kind", "type": "Text", "value": "meter"}]}),
    [{"t": 21.5, "p": "1, 2", "r": "urn:ngsi-ld:Room:1", "u": "x", "extra": True, "n": None, "o": {"a": [1]}},
     {"t": "3", "TimeInstant": "2024-05-01T10:00:00+02:00"}],
    now=datetime(2024, 1, 1, tzinfo=UTC))

BODIES: list[Any] = [
    *MAPPED,
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": 1, "observedAt": NOW}},
    {"id": "urn:ngsi-ld:M:1", "type": "ex:M", "ex:a": {"type": "Property", "value": "s"}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": False, "unitCode": "C"}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": "x", "observedAt": "2024-02-30T00:00:00Z"}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": "x", "observedAt": "1 May 2024"}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": "x", "observedAt": None}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": None}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "Property", "value": NGSILD_NULL}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a b": {"type": "Property", "value": 1}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "@a": {"type": "Property", "value": 1}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "scope": "/a", "a": {"type": "Property", "value": 1}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "createdAt": {"type": "Property", "value": 1}},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "temperature": {"type": "Property", "value": 1},
     "https://example.org/temp": {"type": "Property", "value": 2}},
    {"id": "not a uri", "type": "M", "a": {"type": "Property", "value": 1}},
    {"id": "urn:ngsi-ld:M:1", "type": "type", "a": {"type": "Property", "value": 1}},
    {"id": "urn:ngsi-ld:M:1", "type": "a b"},
    {"id": "urn:ngsi-ld:M:1", "type": ["M", "N"], "a": 1},
    {"@id": "urn:ngsi-ld:M:1", "type": "M", "a": 1},
    {"id": "urn:ngsi-ld:M:1", "type": "M", "a": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 200]}}},
]


@pytest.mark.parametrize("index", range(len(BODIES)))
def test_same_stored_form_and_refusals(index: int) -> None:
    trusted = TrustedExpander(tm())
    body = BODIES[index]
    for _ in range(2):  # cold, then with the caches filled
        slow, fast = both(body, trusted)
        assert fast == slow
        if isinstance(slow, dict):
            assert list(fast) == list(slow)
            for iri, instances in slow["attrs"].items():
                assert [list(i) for i in fast["attrs"][iri]] == [list(i) for i in instances]


def test_cached_types_are_private_copies() -> None:
    trusted = TrustedExpander(tm())
    first = trusted.entities([{"id": "urn:ngsi-ld:M:1", "type": "M"}], NOW)[0]
    first["type"].append("x")
    assert trusted.entities([{"id": "urn:ngsi-ld:M:1", "type": "M"}], NOW)[0]["type"] == [V + "M"]


@pytest.mark.parametrize("payload", [b'{"a": 1, "b": [1.5, "x", null, true]}', b'{"n": 123456789012345678901234}',
                                     b'"\\ud800"', b'{"a": 1, "a": 2}', b' [ {"x": -0} ] '])
def test_fast_json_same_as_json_parse(payload: bytes) -> None:
    from agents.jexl import js_json_loads

    assert iotajson._loads(payload) == js_json_loads(payload.decode())  # noqa: SLF001


# 1e400 is Infinity to JSON.parse; no store holds it, so a measure with it is refused
@pytest.mark.parametrize("payload", [b'{"a": NaN}', b"\xef\xbb\xbf{}", b"\xff", b"{", b"  ", b'{"f": 1e400}'])
def test_fast_json_refuses_the_same(payload: bytes) -> None:
    with pytest.raises(iotajson.JsonPayloadError):
        iotajson._loads(payload)  # noqa: SLF001
