"""The Smart Data Models @context documents shipped with the broker: resolved from the package, with
no download, on both stores; ``CONTEXT_BUILTIN_MODELS=false`` turns them off."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from broker.app import RESOLVER, create_app
from broker.config import load_settings
from broker.jsonld.core import DEFAULT_CORE_URL
from broker.jsonld.resolver import KIND_CACHED, ContextResolver
from tests.conftest import test_settings as settings_for

MODELS = Path(__file__).resolve().parents[2] / "broker" / "jsonld" / "contexts" / "models"
ENV_RAW = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
ENV_PAGES = "https://smart-data-models.github.io/dataModel.Environment/context.jsonld"
WEATHER = "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
SDM_ROOT = "https://smartdatamodels.org/context.jsonld"
SDM = "https://smartdatamodels.org/"
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
EID = "urn:ngsi-ld:AirQualityObserved:Porto:ParqueDaCidade"

AIR = {
    "id": EID,
    "type": "AirQualityObserved",
    "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-25T10:00:00Z"}},
    "no2": {"type": "Property", "value": 45, "unitCode": "GQ"},
    "temperature": {"type": "Property", "value": 12.2, "unitCode": "CEL"},
    "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:porto-aq-7"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-8.6752, 41.1681]}},
}


def link(url: str) -> dict[str, str]:
    return {"Link": LINK.format(url), "Accept": "application/json"}


def no_download(client: TestClient) -> None:
    """The resolver opens its HTTP session on the first real download only."""
    assert client.app is not None
    assert client.app[RESOLVER]._session is None


async def test_subject_context_resolves_from_the_package(client: TestClient) -> None:
    resp = await client.post("/ngsi-ld/v1/entities", json=AIR,
                             headers={**link(ENV_RAW), "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    # stored under the subject's IRIs: read without a Link, the attributes come back expanded
    resp = await client.get(f"/ngsi-ld/v1/entities/{EID}", headers={"Accept": "application/json"})
    body = await resp.json()
    assert body["type"] == SDM + "dataModel.Environment/AirQualityObserved"
    assert body[SDM + "dataModel.Environment/no2"]["value"] == 45
    assert body[SDM + "dateObserved"]["value"] == {"@type": "DateTime", "@value": "2026-11-25T10:00:00Z"}
    assert "location" in body  # a core term stays a core term
    # the github.io URL of the same subject compacts and queries alike
    resp = await client.get("/ngsi-ld/v1/entities", params={"type": "AirQualityObserved", "q": "no2>40"},
                            headers=link(ENV_PAGES))
    found = await resp.json()
    assert resp.status == 200 and [e["id"] for e in found] == [EID]
    assert found[0]["no2"] == {"type": "Property", "value": 45, "unitCode": "GQ"}
    assert found[0]["refDevice"]["object"] == "urn:ngsi-ld:Device:porto-aq-7"
    # the same short name means another IRI in another subject: Weather's temperature is not this one
    resp = await client.get("/ngsi-ld/v1/entities", params={"q": "temperature>0"}, headers=link(WEATHER))
    assert resp.status == 200 and await resp.json() == []
    resp = await client.get("/ngsi-ld/v1/entities", params={"q": "temperature>0"}, headers=link(ENV_RAW))
    assert [e["id"] for e in await resp.json()] == [EID]
    # used contexts are listed as Cached, as downloaded ones are
    resp = await client.get("/ngsi-ld/v1/jsonldContexts")
    assert set(await resp.json()) == {DEFAULT_CORE_URL, ENV_RAW, ENV_PAGES, WEATHER}
    resp = await client.get(f"/ngsi-ld/v1/jsonldContexts/{quote(ENV_RAW, safe='')}", params={"details": "true"})
    assert (await resp.json())["kind"] == KIND_CACHED
    no_download(client)


async def test_a_deleted_model_context_comes_back_from_the_package(client: TestClient) -> None:
    await client.get("/ngsi-ld/v1/entities", params={"type": "AirQualityObserved"}, headers=link(ENV_RAW))
    resp = await client.delete(f"/ngsi-ld/v1/jsonldContexts/{quote(ENV_RAW, safe='')}")
    assert resp.status == 204, await resp.text()
    resp = await client.get("/ngsi-ld/v1/jsonldContexts")
    assert ENV_RAW not in await resp.json()
    resp = await client.post("/ngsi-ld/v1/entities", json=AIR,
                             headers={**link(ENV_RAW), "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"/ngsi-ld/v1/jsonldContexts/{quote(ENV_RAW, safe='')}", params={"reload": "true"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["@context"]["no2"] == SDM + "dataModel.Environment/no2"
    no_download(client)


async def test_the_legacy_root_context_keeps_core_terms(client: TestClient) -> None:
    """smartdatamodels.org/context.jsonld defines ``location`` with an http IRI and ``name`` as its
    own: the core context, applied last, keeps them core terms (geo-queries and ``name`` work)."""
    resp = await client.post("/ngsi-ld/v1/entities", json={**AIR, "name": {"type": "Property", "value": "Parque"}},
                             headers={**link(SDM_ROOT), "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    resp = await client.get("/ngsi-ld/v1/entities", headers=link(SDM_ROOT), params={
        "type": "AirQualityObserved", "georel": "near;maxDistance==1000", "geometry": "Point",
        "coordinates": "[-8.675,41.168]", "q": 'name=="Parque"'})
    found = await resp.json()
    assert resp.status == 200 and [e["id"] for e in found] == [EID], found
    resp = await client.get(f"/ngsi-ld/v1/entities/{EID}", headers={"Accept": "application/json"})
    body = await resp.json()
    assert body["type"] == "https://uri.fiware.org/ns/data-models#AirQualityObserved"
    # core terms: ``location``, and ``name`` as the IRI the core context v1.8 gives it (no term there)
    assert body["location"]["type"] == "GeoProperty" and body["ngsi-ld:name"]["value"] == "Parque"
    no_download(client)


def test_every_shipped_model_context_is_listed_and_builds() -> None:
    index = json.loads((MODELS / "index.json").read_text())
    files = {p.name for p in MODELS.glob("*.jsonld")}
    assert set(index.values()) == files  # nothing shipped unreachable, nothing listed missing
    assert all(name in (MODELS / "SOURCES.md").read_text() for name in files)  # each one attributed
    r = ContextResolver()
    assert r.mirror_builtin_models() == len(index)
    assert set(r.mirror) == set(index)
    assert r.entries.keys() == set()  # nothing read until a request names it


async def test_every_shipped_model_context_expands_its_terms() -> None:
    r = ContextResolver()
    r.mirror_builtin_models()
    try:
        for url, file in sorted(r.mirror.items()):
            terms = json.loads(file.read_text())["@context"]
            tm = await r.resolve(url)
            model = next(k for k, v in terms.items() if k[:1].isupper() and isinstance(v, str))
            assert tm.expand(model) == terms[model], url
        assert r._session is None
    finally:
        await r.close()


@pytest.mark.parametrize("value", ["false", "0"])
def test_builtin_models_can_be_turned_off(value: str) -> None:
    assert load_settings([], env={"CONTEXT_BUILTIN_MODELS": value}).context_builtin_models is False
    assert load_settings([], env={}).context_builtin_models is True
    assert create_app(settings_for(context_builtin_models=False))[RESOLVER].mirror == {}
    assert ENV_RAW in create_app(settings_for())[RESOLVER].mirror
