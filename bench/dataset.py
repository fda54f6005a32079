"""The benchmark's data: Stellio's load-test template entity and the seeded data set.

The template is ``src/data/template_entity.json`` of stellio-hub/ngsild-load-tests (name,
description, stationCode; ammonium and waterTemperature with two datasetId instances each;
dissolvedOxygen with the sub-property sandreCode; the relationship servesDataset; a GeoProperty
point; plus the template's other simple properties), so our figures compare with Stellio's.

Seeded entity ``n`` is ``urn:ngsi-ld:Entity:<n>`` with type ``types[n % T]`` (T random 10-letter
type names, as Stellio's query scenarios use), random observed values in [0, 100) and
``servesDataset`` pointing at one of R relationship targets, all from a fixed RNG seed so every
store and round sees the same data.
"""

from __future__ import annotations

import copy
import random
import string
from dataclasses import dataclass, field
from typing import Any

import orjson

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LINK = f'<{CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ID_PREFIX = "urn:ngsi-ld:Entity:"
STATION_CODE = "BSS002JAWM"
OBSERVED = ("ammonium", "waterTemperature", "dissolvedOxygen")
STATIC_QUERIES = ('name=="Name of my entity"', 'description=="A short description of my entity"',
                  f'stationCode=="{STATION_CODE}"')

_OBS = {"type": "Property", "value": 8.9, "observedAt": "2023-04-01T10:00:00Z"}

TEMPLATE: dict[str, Any] = {
    "id": "<id>",
    "type": "Entity",
    "name": {"type": "Property", "value": "Name of my entity"},
    "description": {"type": "Property", "value": "A short description of my entity"},
    "stationCode": {"type": "Property", "value": STATION_CODE},
    "ammonium": [
        {"type": "Property", "value": 0.34, "observedAt": "2023-04-01T12:00:00Z", "unitCode": "M1",
         "datasetId": "urn:ngsi-ld:Dataset:Bottom"},
        {"type": "Property", "value": 0.41, "observedAt": "2023-04-01T13:00:00Z", "unitCode": "M1",
         "datasetId": "urn:ngsi-ld:Dataset:Surface"},
    ],
    "dissolvedOxygen": {"type": "Property", "sandreCode": {"type": "Property", "value": "1311"},
                        "value": 8.9, "observedAt": "2023-04-01T10:00:00Z", "unitCode": "M1"},
    "waterTemperature": [
        {"type": "Property", "value": 10.9, "observedAt": "2022-12-09T13:40:00Z", "unitCode": "CEL",
         "datasetId": "urn:ngsi-ld:Dataset:Bottom"},
        {"type": "Property", "value": 12.9, "observedAt": "2022-12-09T13:40:00Z", "unitCode": "CEL",
         "datasetId": "urn:ngsi-ld:Dataset:Surface"},
    ],
    **{name: dict(_OBS) for name in ("salinity", "airTemperature", "nitrate", "precipitation",
                                     "windDirection", "windSpeed", "norovirus", "conductivity")},
    "servesDataset": {"type": "Relationship", "object": "urn:ngsi-ld:Dataset:SurfaceWaterMonitoring"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.53452158, 43.48562782]}},
    "address": {"type": "JsonProperty", "json": {"addressCountry": "FR", "addressLocality": "Nantes"}},
    "dataProvider": {"type": "Property", "value": "My-Sensor"},
}

# Stellio's update_attributes_fragment.json (ammonium x2, dissolvedOxygen, waterTemperature x2).
FRAGMENT_KEYS = ("ammonium", "dissolvedOxygen", "waterTemperature")


def type_count(size: int) -> int:
    """Stellio's published runs: 1k entities over 5 types, 10k and 100k over 10."""
    return 5 if size <= 1000 else 10


@dataclass(frozen=True)
class DataSet:
    size: int
    types: list[str]
    relationships: list[str]
    seed: int = 42
    _values: list[tuple[float, float, float, float, float, int]] = field(default_factory=list, repr=False)

    @classmethod
    def make(cls, size: int, n_relationships: int = 10, seed: int = 42) -> DataSet:
        rng = random.Random(seed)
        types = ["".join(rng.choices(string.ascii_letters, k=10)) for _ in range(type_count(size))]
        rels = [f"urn:ngsi-ld:Relation:{rng.getrandbits(64):016x}" for _ in range(n_relationships)]
        values = [(rng.random() * 100, rng.random() * 100, rng.random() * 100, rng.random() * 100,
                   rng.random() * 100, rng.randrange(n_relationships)) for _ in range(size)]
        return cls(size, types, rels, seed, values)

    def entity(self, n: int) -> dict[str, Any]:
        """Seeded entity ``n`` in the API's normalized form."""
        a1, a2, w1, w2, do, rel = self._values[n]
        e = copy.deepcopy(TEMPLATE)
        e["id"] = f"{ID_PREFIX}{n}"
        e["type"] = self.types[n % len(self.types)]
        e["ammonium"][0]["value"], e["ammonium"][1]["value"] = round(a1, 3), round(a2, 3)
        e["waterTemperature"][0]["value"], e["waterTemperature"][1]["value"] = round(w1, 3), round(w2, 3)
        e["dissolvedOxygen"]["value"] = round(do, 3)
        e["servesDataset"]["object"] = self.relationships[rel]
        return e

    def batches(self, per_batch: int) -> list[bytes]:
        """The whole data set as JSON bodies for POST /entityOperations/upsert."""
        return [orjson.dumps([self.entity(n) for n in range(i, min(i + per_batch, self.size))])
                for i in range(0, self.size, per_batch)]


def lua_template(entity: dict[str, Any], holes: dict[str, str]) -> str:
    """JSON text of ``entity`` as a Lua ``string.format`` template: each marker value in ``holes``
    (e.g. ``"__ID__"``) becomes the format directive given (``%s``); literal ``%`` is escaped."""
    text = orjson.dumps(entity).decode().replace("%", "%%")
    for marker, directive in holes.items():
        text = text.replace(f'"{marker}"', directive)
    return text


def create_template() -> str:
    """POST /entities body: the template with a fresh id (type ``Entity``, outside the query types)."""
    e = copy.deepcopy(TEMPLATE)
    e["id"] = "__ID__"
    return lua_template(e, {"__ID__": '"%s"'})


def upsert_template() -> str:
    """One entity of a batch upsert: fresh id slot plus random observed values (type ``Entity``)."""
    e = copy.deepcopy(TEMPLATE)
    e["id"] = "__ID__"
    e["ammonium"][0]["value"], e["ammonium"][1]["value"] = "__A1__", "__A2__"
    e["waterTemperature"][0]["value"], e["waterTemperature"][1]["value"] = "__W1__", "__W2__"
    e["dissolvedOxygen"]["value"] = "__DO__"
    return lua_template(e, {"__ID__": '"%s"', "__A1__": "%.3f", "__A2__": "%.3f", "__W1__": "%.3f",
                            "__W2__": "%.3f", "__DO__": "%.3f"})


def fragment_template() -> str:
    """PATCH /entities/{id}/attrs body: Stellio's fragment with random values (so repeated updates
    do not collapse every entity onto the same values and skew the query scenarios)."""
    frag = {k: copy.deepcopy(TEMPLATE[k]) for k in FRAGMENT_KEYS}
    frag["ammonium"][0]["value"], frag["ammonium"][1]["value"] = "__A1__", "__A2__"
    frag["waterTemperature"][0]["value"], frag["waterTemperature"][1]["value"] = "__W1__", "__W2__"
    frag["dissolvedOxygen"]["value"] = "__DO__"
    return lua_template(frag, {"__A1__": "%.3f", "__A2__": "%.3f", "__W1__": "%.3f", "__W2__": "%.3f",
                               "__DO__": "%.3f"})
