"""The renderer's shortcut for the usual instance in the normalized form must give exactly what the
general path gives: same members, same values, same key order (answers are compared as bytes by caches)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.entities.render import Renderer, RenderOptions
from broker.jsonld.termmap import TermMap

V = "https://uri.etsi.org/ngsi-ld/default-context/"
TM = TermMap(b"t", None, {"ex": {"@id": "https://example.org/", "_prefix": True}}, V)
T = "2024-01-01T00:00:00.000Z"

_ints = st.integers(-2**63, 2**63 - 1)  # what JSON bodies can carry (orjson reads larger ones as floats)
_values = st.one_of(_ints, st.floats(allow_nan=False), st.text(max_size=5), st.booleans(),
                    st.dictionaries(st.text(max_size=3), _ints, max_size=2), st.lists(_ints, max_size=2))


@st.composite
def instances(draw: Any, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Property", "Relationship", "GeoProperty", "LanguageProperty"]))
    inst: dict[str, Any] = {"type": kind}
    if kind == "Relationship":
        inst["object"] = draw(st.sampled_from(["urn:x:1", ["urn:x:1", "urn:x:2"]]))
        if draw(st.booleans()):
            inst["objectType"] = V + "Thing"
    elif kind == "GeoProperty":
        inst["value"] = {"type": "Point", "coordinates": [1.5, 2.5]}
    elif kind == "LanguageProperty":
        inst["languageMap"] = {"en": "x"}
    else:
        inst["value"] = draw(_values)
    for key, strat in (("datasetId", st.just("urn:d:1")), ("observedAt", st.just(T)), ("unitCode", st.just("CEL"))):
        if draw(st.booleans()):
            inst[key] = draw(strat)
    inst["createdAt"] = inst["modifiedAt"] = T
    if depth < 2 and draw(st.booleans()):
        inst["subs"] = {draw(st.sampled_from([V + "acc", "https://example.org/q"])): draw(instances(depth + 1))}
    # stored member order varies (merges rebuild instances): the answer's order must not
    keys = draw(st.permutations(list(inst)))
    return {k: inst[k] for k in keys}


@settings(max_examples=400, deadline=None)
@given(inst=instances(), sys_attrs=st.booleans(), fmt=st.sampled_from(["normalized", "concise", "simplified"]))
def test_shortcut_renders_like_the_general_path(inst: dict[str, Any], sys_attrs: bool, fmt: str) -> None:
    r = Renderer(TM, RenderOptions(format=fmt, sys_attrs=sys_attrs))
    assert orjson.dumps(r.instance(inst)) == orjson.dumps(r.general_instance(inst))
