"""Bounded fuzzing of what turns request input into stored form and queries: any JSON body, any query
parameters. The only exception allowed out is an NgsiLdError of status 4xx (rendered as problem+json);
anything else is a 500 for a client. Offline, deterministic (derandomized), a few seconds."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.entities.expand import Expander
from broker.errors import NgsiLdError
from broker.jsonld.termmap import TermMap
from broker.services.query import from_body, from_params

V = "https://uri.etsi.org/ngsi-ld/default-context/"
TM = TermMap(b"fuzz", None, {"ex": {"@id": "https://example.org/", "_prefix": True}}, V)
NOW = "2026-01-01T00:00:00.000Z"

KEYS = ["type", "value", "object", "id", "datasetId", "observedAt", "unitCode", "coordinates", "languageMap",
        "vocab", "json", "valueList", "objectList", "objectType", "scope", "@context", "location", "a", "b",
        "@none", "createdAt", "entities", "q", "geoQ", "georel", "geometry", "scopeQ", "attrs", "pick", "idPattern"]
WORDS = ["Property", "Relationship", "GeoProperty", "LanguageProperty", "VocabProperty", "JsonProperty",
         "ListProperty", "ListRelationship", "Point", "Polygon", "LineString", "urn:ngsi-ld:null", "urn:a:b",
         "2026-01-01T00:00:00Z", "@none", "en", "Query", "near;maxDistance==1", "within", "a==1", "/a/#", "a{b}"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**65), 2**65),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6), st.sampled_from(WORDS))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                    max_leaves=25)
BODY = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)
# a typed instance whose members are anything (the GeoJSON and value checks look inside them)
INSTANCE = st.fixed_dictionaries({"type": st.sampled_from(WORDS[:8])}, optional={
    "value": st.one_of(JSON, st.dictionaries(st.sampled_from(["type", "coordinates"]), JSON, max_size=2)),
    "object": JSON, "languageMap": JSON, "vocab": JSON, "json": JSON, "valueList": JSON, "objectList": JSON,
    "datasetId": JSON, "observedAt": JSON, "objectType": JSON})
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _only_client_errors(call: Any) -> None:
    try:
        call()
    except NgsiLdError as err:
        assert 400 <= err.status < 500, err.to_problem()


@FUZZ
@given(BODY, st.booleans(), st.sampled_from(["entity", "fragment", "merge", "attribute"]))
def test_expansion_refuses_only_with_4xx(body: dict[str, Any], with_id: bool, how: str) -> None:
    if with_id:
        body = {"id": "urn:ngsi-ld:T:1", "type": "T", **body}
    if how == "entity":
        _only_client_errors(lambda: Expander(TM, NOW).entity(body))
    elif how == "fragment":
        _only_client_errors(lambda: Expander(TM, NOW).fragment(body))
    elif how == "merge":
        _only_client_errors(lambda: Expander(TM, NOW, allow_null=True, partial=True).fragment(body))
    else:
        for value in body.values():
            _only_client_errors(lambda v=value: Expander(TM, NOW).attribute("a", v))


@FUZZ
@given(INSTANCE, st.booleans())
def test_attribute_instances_refuse_only_with_4xx(instance: dict[str, Any], partial: bool) -> None:
    _only_client_errors(lambda: Expander(TM, NOW, allow_null=partial, partial=partial).attribute("a", instance))


PARAMS = ["type", "id", "idPattern", "attrs", "q", "scopeQ", "georel", "geometry", "coordinates", "geoproperty",
          "pick", "omit", "orderBy", "limit", "offset", "count", "options", "format", "lang", "join", "joinLevel",
          "containedBy", "datasetId", "geometryProperty", "local"]
VALUES = st.one_of(st.text(max_size=12), st.sampled_from(
    ["T", "a==1", "a>5;b<3|c==\"x\"", "(a==1", "a==1..3", "/a/+", "near;maxDistance==10", "within", "Point",
     "Polygon", "[1,2]", "[[[0,0],[1,0],[1,1],[0,0]]]", "[[[[[1]]]]]", "a{b{c}}", "a,b", "-1", "0", "5",
     "99999999999999999999", "true", "keyValues", "concise", "sysAttrs", "inline", "urn:a:b", "@none", "a;desc"]))


@FUZZ
@given(st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=6))
def test_query_parameters_refuse_only_with_4xx(params: dict[str, str]) -> None:
    _only_client_errors(lambda: from_params(params, TM, 20, 1000, multi_options=[params.get("options", "")]))


@FUZZ
@given(BODY, st.dictionaries(st.sampled_from(["limit", "offset", "count", "options"]), VALUES, max_size=2))
def test_query_bodies_refuse_only_with_4xx(body: dict[str, Any], params: dict[str, str]) -> None:
    _only_client_errors(lambda: from_body({"type": "Query", **body}, params, TM, 20, 1000))
