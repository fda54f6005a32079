"""Unit tests of expansion (validation, concise inference, merge fragments) and rendering."""

from __future__ import annotations

import pytest

from broker.entities.expand import NGSILD_NULL, Expander, infer_instance, is_null
from broker.entities.render import CONCISE, SIMPLIFIED, Renderer, RenderOptions, _lang_prefs
from broker.errors import BadRequestData, InvalidRequest
from broker.jsonld.termmap import TermMap

V = "https://uri.etsi.org/ngsi-ld/default-context/"
NOW = "2024-01-01T00:00:00.000Z"


def tm() -> TermMap:
    return TermMap(b"t", None, {"ex": {"@id": "https://example.org/", "_prefix": True}}, V)


def test_infer_instance_kinds() -> None:
    assert infer_instance(5, "a") == {"type": "Property", "value": 5}
    assert infer_instance({"type": "Point", "coordinates": [1, 2]}, "a")["type"] == "GeoProperty"
    assert infer_instance({"object": "urn:x:1"}, "a")["type"] == "Relationship"
    assert infer_instance({"a": 1}, "a") == {"type": "Property", "value": {"a": 1}}
    # a metadata-only object is a value in a create, a fragment in a merge
    assert infer_instance({"observedAt": NOW}, "a")["type"] == "Property"
    assert infer_instance({"observedAt": NOW}, "a", partial=True) == {"observedAt": NOW}
    with pytest.raises(BadRequestData):
        infer_instance({"type": "Nope", "value": 1}, "a")


def test_null_only_in_merge() -> None:
    strict = Expander(tm(), NOW)
    for raw in (NGSILD_NULL, {"value": NGSILD_NULL}, {"type": "Relationship", "object": NGSILD_NULL},
                {"type": "LanguageProperty", "languageMap": {"@none": NGSILD_NULL}}):
        with pytest.raises(BadRequestData):
            strict.instance("a", raw)
    merge = Expander(tm(), NOW, allow_null=True, partial=True)
    assert is_null(merge.instance("a", NGSILD_NULL))
    assert is_null(merge.instance("a", {"type": "LanguageProperty", "languageMap": {"@none": NGSILD_NULL}}))
    assert is_null(merge.instance("a", {"type": "ListProperty", "valueList": [NGSILD_NULL]}))
    frag = merge.instance("a", {"sub": NGSILD_NULL, "unitCode": "CEL"})
    assert "type" not in frag and frag["unitCode"] == "CEL" and is_null(frag["subs"][V + "sub"])


def test_validation_errors() -> None:
    ex = Expander(tm(), NOW)
    bad = [
        ("a", {"type": "Property"}),
        ("a", {"type": "Property", "value": 1, "object": "urn:x:1"}),
        ("a", {"type": "Relationship", "object": "no uri"}),
        ("a", {"type": "GeoProperty", "value": "POINT(1 2)"}),
        ("a", {"type": "LanguageProperty", "languageMap": {"en": 5}}),
        ("a", {"type": "ListProperty", "valueList": 5}),
        ("a", {"type": "ListRelationship", "objectList": ["no uri"]}),
        ("a", {"type": "VocabProperty", "vocab": 5}),
        ("a", {"type": "Property", "value": 1, "datasetId": "no uri"}),
        ("a", {"type": "Property", "value": 1, "observedAt": "yesterday"}),
        ("a", {"type": "Property", "value": 1, "objectType": "X"}),
        ("a b", 1),
        ("a", {"value": 1, "sub": None}),
    ]
    for name, raw in bad:
        with pytest.raises(BadRequestData):
            ex.attribute(name, raw)
    with pytest.raises(BadRequestData):
        ex.entity({"id": "urn:x:1", "type": "T", "scope": "nope"})
    with pytest.raises(BadRequestData):
        ex.entity({"id": "urn:x:1"})
    # a body that is not an object at all is a malformed request (ETSI 001_02_02 wants InvalidRequest)
    with pytest.raises(InvalidRequest):
        ex.fragment([1])
    with pytest.raises(InvalidRequest):
        ex.entity([])
    # names that are JSON-LD keywords, and types that expand to a keyword (core "type" = @type)
    with pytest.raises(BadRequestData):
        ex.attribute("@invalid", 1)
    with pytest.raises(BadRequestData):
        ex.entity({"id": "urn:x:1", "type": "type"})


def test_vocab_expands_and_compacts() -> None:
    t = tm()
    ent = Expander(t, NOW).entity({"id": "urn:x:1", "type": "T", "k": {"vocab": ["ex:a", "b"]}})
    assert ent["attrs"][V + "k"][0]["vocab"] == ["https://example.org/a", V + "b"]
    out = Renderer(t, RenderOptions(format=CONCISE)).entity(ent)
    assert out["k"] == {"vocab": ["ex:a", "b"]}


def test_lang_prefs_order() -> None:
    assert _lang_prefs("fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5") == ["fr-CH", "fr", "en", "*"]
    assert _lang_prefs("en;q=0.1, nl") == ["nl", "en"]
    assert _lang_prefs("de;q=0") == []


def test_render_simplified_and_concise_edge_cases() -> None:
    t = tm()
    ent = Expander(t, NOW).entity({
        "id": "urn:x:1", "type": ["A", "B"],
        "geo": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}, "q": 1},
        "rel": {"type": "Relationship", "object": ["urn:x:2", "urn:x:3"]},
        "obj": {"value": {"value": 1}},
    })
    simple = Renderer(t, RenderOptions(format=SIMPLIFIED)).entity(ent)
    assert simple == {"id": "urn:x:1", "type": ["A", "B"], "geo": {"type": "Point", "coordinates": [1, 2]},
                      "rel": ["urn:x:2", "urn:x:3"], "obj": {"value": 1}}
    concise = Renderer(t, RenderOptions(format=CONCISE)).entity(ent)
    assert concise["geo"] == {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}, "q": 1}
    assert concise["rel"] == {"object": ["urn:x:2", "urn:x:3"]}
    assert concise["obj"] == {"value": {"value": 1}}  # an object value keeps its "value" key


def test_attribute_count_is_bounded() -> None:
    from broker.entities.expand import MAX_ATTRIBUTES, Expander
    from broker.errors import BadRequestData
    from broker.jsonld.resolver import ContextResolver

    tm = ContextResolver().default_map
    body = {"id": "urn:ngsi-ld:T:1", "type": "T", **{f"a{i}": i for i in range(MAX_ATTRIBUTES + 1)}}
    with pytest.raises(BadRequestData, match="attributes"):
        Expander(tm, "2024-01-01T00:00:00.000Z").entity(body)
    del body["a0"]
    assert len(Expander(tm, "2024-01-01T00:00:00.000Z").entity(body)["attrs"]) == MAX_ATTRIBUTES
