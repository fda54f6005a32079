"""The renderer's fast paths keep the answer's members and their order whatever the stored order."""

from __future__ import annotations

import orjson

from broker.entities.render import CONCISE, Renderer, RenderOptions
from broker.jsonld.resolver import ContextResolver

V = "https://uri.etsi.org/ngsi-ld/default-context/"


async def test_instance_member_order_is_fixed() -> None:
    tm = await ContextResolver().resolve(None)
    stored = {"id": "urn:x:1", "type": [V + "T"], "scope": ["/a"], "createdAt": "c", "modifiedAt": "m", "attrs": {
        V + "p": [{"modifiedAt": "m", "unitCode": "CEL", "observedAt": "o", "value": 1, "type": "Property",
                   "createdAt": "c", "subs": {V + "s": [{"type": "Property", "value": 2}][0]}}],
        V + "r": [{"object": "urn:y", "type": "Relationship", "objectType": V + "Y"},
                  {"type": "Relationship", "object": "urn:z", "datasetId": "urn:d"}],
    }}
    out = Renderer(tm, RenderOptions(sys_attrs=True)).entity(stored)
    assert orjson.dumps(out) == orjson.dumps({
        "id": "urn:x:1", "type": "T", "scope": "/a",
        "p": {"type": "Property", "value": 1, "observedAt": "o", "unitCode": "CEL", "createdAt": "c",
              "modifiedAt": "m", "s": {"type": "Property", "value": 2}},
        "r": [{"type": "Relationship", "object": "urn:y", "objectType": "Y"},
              {"type": "Relationship", "object": "urn:z", "datasetId": "urn:d"}],
        "createdAt": "c", "modifiedAt": "m"})
    concise = Renderer(tm, RenderOptions(format=CONCISE, dataset_id=frozenset({"@none"}))).entity(stored)
    assert concise == {"id": "urn:x:1", "type": "T", "scope": "/a",
                       "p": {"value": 1, "observedAt": "o", "unitCode": "CEL", "s": 2},
                       "r": {"object": "urn:y", "objectType": "Y"}}
