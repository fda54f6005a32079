"""The expander's shortcut for common instances (``Expander._plain_instance``) must agree with the
general path: the same stored instance when it answers, and None (the general path decides, and may
refuse) otherwise. Generated instances mix valid and invalid members on purpose."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.entities.expand import NGSILD_NULL, Expander
from broker.errors import NgsiLdError
from broker.jsonld.termmap import TermMap

V = "https://uri.etsi.org/ngsi-ld/default-context/"
NOW = "2024-01-01T00:00:00.000Z"
TM = TermMap(b"t", None, {}, V)

scalars = st.one_of(st.integers(-10**6, 10**6), st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1]), st.floats(allow_nan=True), st.booleans(), st.none(),
                    st.sampled_from(["", "x", NGSILD_NULL, "urn:ngsi-ld:Thing:1", "not a uri", "a b:c"]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["a", "@none"]), scalars,
                                                                           max_size=2))
points = st.fixed_dictionaries({"type": st.sampled_from(["Point", "LineString"]),
                                "coordinates": st.lists(st.one_of(st.floats(-200, 200), st.integers(-200, 200),
                                                                  st.just(float("nan")), st.text(max_size=1)),
                                                        min_size=1, max_size=4)})
times = st.sampled_from(["2024-03-01T10:00:00Z", "2024-03-01T10:00:00.123Z", "2024-02-30T10:00:00Z", "yesterday",
                         "2024-03-01T10:00:00+01:00", 5])
members = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["Property", "Relationship", "GeoProperty", "JsonProperty", "Nope"]),
    "value": st.one_of(values, points),
    "object": st.one_of(scalars, st.lists(scalars, max_size=2)),
    "observedAt": times,
    "unitCode": st.sampled_from(["CEL", "", 3]),
    "datasetId": st.sampled_from(["urn:ngsi-ld:Dataset:a", "nope", 1]),
    "sub": st.fixed_dictionaries({"type": st.just("Property"), "value": scalars}),
    "lang": st.just("en"),
    "objectType": st.just("Thing"),
})


def _general(x: Expander, raw: dict[str, Any]) -> dict[str, Any] | NgsiLdError:
    try:
        return x.general_instance("a", raw)
    except NgsiLdError as err:
        return err


@settings(max_examples=600, deadline=None)
@given(raw=members, partial=st.booleans(), allow_null=st.booleans())
def test_plain_instance_agrees_with_the_general_path(raw: dict[str, Any], partial: bool, allow_null: bool) -> None:
    x = Expander(TM, NOW, allow_null=allow_null, partial=partial)
    fast = x._plain_instance(raw)
    general = _general(x, raw)
    if fast is not None:
        assert not isinstance(general, NgsiLdError), (raw, general)
        assert fast == general
        assert list(fast) == list(general)  # same member order in the stored document
    if isinstance(general, NgsiLdError):
        with pytest.raises(type(general)):
            x.instance("a", raw)
    else:
        assert x.instance("a", raw) == general


def test_the_template_attributes_take_the_shortcut() -> None:
    x = Expander(TM, NOW)
    for raw in ({"type": "Property", "value": 8.9, "observedAt": "2023-04-01T10:00:00Z", "unitCode": "M1",
                 "datasetId": "urn:ngsi-ld:Dataset:Bottom"},
                {"type": "Relationship", "object": "urn:ngsi-ld:Dataset:X"},
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.5, 43.4]}},
                {"type": "Property", "value": "Name of my entity"},
                {"type": "Property", "value": 8.9, "sandreCode": {"type": "Property", "value": "1311"}},
                {"type": "JsonProperty", "json": {"addressCountry": "FR", "n": [1, 2]}},
                {"type": "Property", "value": {"streetAddress": "Rua X", "postalCode": "4000"}}):
        assert x._plain_instance(raw) == x.general_instance("a", raw)
    for raw in ({"type": "Property", "value": NGSILD_NULL}, {"type": "Property", "value": {"@none": NGSILD_NULL}},
                {"type": "Property", "value": 1, "sub": {"type": "Property", "value": NGSILD_NULL}},
                {"type": "Relationship", "object": NGSILD_NULL}, {"type": "Property", "value": 1, "sub": 2},
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [200, 0]}}):
        assert x._plain_instance(raw) is None
