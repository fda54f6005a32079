"""Query pages without join / pick / omit are assembled from cached per-entity renderings
(``api/query._cached_page``): the same answers as rendering each time, never stale, never shared
between tenants, contexts, options or media types. Runs on both stores."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient

from tests.entities.helpers import ENTITIES, V, create, get, send, url

LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def _room(n: int, temperature: float) -> dict:
    return {"id": f"urn:ngsi-ld:Room:q{n}", "type": "Room",
            "temperature": {"type": "Property", "value": temperature, "unitCode": "CEL"},
            "humidity": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:d:2"}],
            "isIn": {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"}}


async def _query(client: TestClient, params: str, **headers: str):  # type: ignore[no-untyped-def]
    resp = await client.get(f"{ENTITIES}?type=Room{params}", headers=headers)
    assert resp.status == 200, await resp.text()
    return resp, await resp.read()


async def test_pages_match_single_renderings_and_follow_writes(client: TestClient) -> None:
    for n in range(5):
        await create(client, _room(n, 20 + n))
    resp = await client.post("/ngsi-ld/v1/jsonldContexts", json={"@context": {"temp": V + "temperature"}})
    assert resp.status == 201
    other_ctx = LINK.format("http://some.host" + resp.headers["Location"])
    variants = [("", {}), ("&options=keyValues", {}), ("&options=concise,sysAttrs", {}),
                ("&attrs=temperature", {}), ("&datasetId=urn:d:2", {}), ("&format=simplified", {}),
                ("", {"Accept": "application/ld+json"}), ("&options=keyValues", {"Link": other_ctx})]
    for round_ in range(3):
        for params, headers in variants:
            resp, body = await _query(client, params + "&count=true&limit=3", **headers)
            page = orjson.loads(body)
            assert [e["id"] for e in page] == [f"urn:ngsi-ld:Room:q{n}" for n in range(3)]
            assert resp.headers["NGSILD-Results-Count"] == "5"
            assert any('rel="next"' in link for link in resp.headers.getall("Link"))
            if headers.get("Accept") == "application/ld+json":
                assert not any("json-ld#context" in link for link in resp.headers.getall("Link"))
                assert all("@context" in e for e in page)
            else:
                assert any("json-ld#context" in link for link in resp.headers.getall("Link"))
            for entity in page:
                single = await get(client, entity["id"], "?" + params.lstrip("&") if params else "", **headers)
                assert entity == single
        # a write shows in the next page at once
        resp = await send(client, "PATCH", url("urn:ngsi-ld:Room:q1", "attrs", "temperature"),
                          {"value": 100 + round_})
        assert resp.status == 204
        _, body = await _query(client, "&options=keyValues&limit=3")
        assert orjson.loads(body)[1]["temperature"] == 100 + round_
        _, body = await _query(client, "&options=keyValues&limit=3", Link=other_ctx)
        assert orjson.loads(body)[1]["temp"] == 100 + round_


async def test_tenants_do_not_share_pages(client: TestClient) -> None:
    await create(client, _room(0, 1))
    await create(client, _room(0, 2), **{"NGSILD-Tenant": "other"})
    for _ in range(2):
        _, body = await _query(client, "&options=keyValues")
        assert [e["temperature"] for e in orjson.loads(body)] == [1]
        _, body = await _query(client, "&options=keyValues", **{"NGSILD-Tenant": "other"})
        assert [e["temperature"] for e in orjson.loads(body)] == [2]
    assert (await client.delete(url("urn:ngsi-ld:Room:q0"))).status == 204
    await create(client, _room(0, 3))
    _, body = await _query(client, "&options=keyValues")
    assert [e["temperature"] for e in orjson.loads(body)] == [3]
