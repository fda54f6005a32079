"""Linked entity retrieval (join / joinLevel / containedBy, clause 4.5.23), nested pick / omit
projections (clause 4.21) and orderBy (clause 4.23) on GET /entities and POST /entityOperations/query,
on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from broker.api.keys import RESOLVER, STORE
from broker.entities.render import RenderOptions
from broker.errors import BadRequestData, InvalidRequest, ResourceNotFound
from broker.services.linked import Linker, join_options, parse_projection
from broker.services.query import render_retrieved, retrieve_spec
from broker.store.base import DEFAULT_TENANT

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
URL = "/ngsi-ld/v1/entities"
POST_URL = "/ngsi-ld/v1/entityOperations/query"
JSON_CT = {"Content-Type": "application/json"}
B1, B2, C1, C2, F = ("urn:ngsi-ld:Building:1", "urn:ngsi-ld:Building:2", "urn:ngsi-ld:City:1",
                     "urn:ngsi-ld:City:2", "urn:ngsi-ld:Country:F")


def rel(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


async def create(client: TestClient, body: dict[str, Any]) -> None:
    resp = await client.post(URL, data=orjson.dumps(body), headers=JSON_CT)
    assert resp.status == 201, await resp.text()


async def seed(client: TestClient) -> None:
    """Two buildings in two cities of one country; City:2 has no country relationship."""
    await create(client, {"id": B1, "type": "Building", "name": prop("Tower"), "locatedAt": rel(C1)})
    await create(client, {"id": B2, "type": "Building", "name": prop("Hall"), "locatedAt": rel(C2)})
    await create(client, {"id": C1, "type": "City", "name": prop("Paris"), "description": prop("capital"),
                          "isInCountry": rel(F)})
    await create(client, {"id": C2, "type": "City", "name": prop("Lyon")})
    await create(client, {"id": F, "type": "Country", "name": prop("France"), "description": prop("EU")})


async def get(client: TestClient, query: str) -> Any:
    resp = await client.get(f"{URL}?{query}")
    assert resp.status == 200, await resp.text()
    return await resp.json(content_type=None)


async def problem(resp, status: int, type_name: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = await resp.json(content_type=None)
    assert body["type"] == ERR + type_name and body["detail"], body
    return body


# ------------------------------------------------------------------------------- projections


def test_projection_parser() -> None:
    p = parse_projection("id,locatedAt{id,name,isInCountry{description}}", "pick")
    assert p is not None and p.names == ("id", "locatedAt")
    assert p.nested["locatedAt"].names == ("id", "name", "isInCountry")
    assert p.nested["locatedAt"].nested["isInCountry"].names == ("description",)
    assert parse_projection(["a", "b{c}"], "pick") == parse_projection("a,b{c}", "pick")
    assert parse_projection(None, "pick") is None
    # the ETSI suite's 018_18 / 019_18 cases, and a few more
    for bad in ("id;name", "id,locatedAt{name", "id,locatedAt{{name}", "id,,name", "id,locatedAt{,name}",
                "id,locatedAt{}", "", "a}", "a{b}c", "a,", "{a}", ["a", 1], []):
        with pytest.raises(BadRequestData):
            parse_projection(bad, "pick")  # type: ignore[arg-type]


def test_join_options() -> None:
    assert join_options(None).join is None and join_options("@none", "3").join is None
    j = join_options("flat", "2", "urn:a:1,urn:a:2")
    assert (j.join, j.level, j.contained_by) == ("flat", 2, frozenset({"urn:a:1", "urn:a:2"}))
    assert join_options("inline", 4).level == 4
    for args in (("deep",), ("flat", "0"), ("flat", "x"), ("flat", "-1"), ("flat", "11"), ("flat", True),
                 ("flat", "1", "not a uri")):
        with pytest.raises(BadRequestData):
            join_options(*args)


async def test_nested_projection_errors_and_exclusions(client: TestClient) -> None:
    await seed(client)
    for query in ("pick=id;name", "pick=id,locatedAt{name", "pick=id,locatedAt{{name}", "pick=id,,name",
                  "pick=id,locatedAt{,name}", "pick=id,locatedAt{}", "omit=a{b", "pick=name&omit=name",
                  "pick=name&attrs=name", "omit=name&attrs=name"):
        await problem(await client.get(f"{URL}?type=Building&{query}"), 400, "BadRequestData")
    # an entity left with nothing by pick is not in the answer (ETSI 019_17_01)
    assert await get(client, "type=City&pick=isInCountry") == [
        {"isInCountry": {"type": "Relationship", "object": F}}]


# ------------------------------------------------------------------------------------- joins


async def test_inline_and_flat_one_level(client: TestClient) -> None:
    await seed(client)
    inline = await get(client, "type=Building&join=inline&pick=id,locatedAt")
    assert inline == [
        {"id": B1, "locatedAt": {**rel(C1), "entity": {
            "id": C1, "type": "City", "name": prop("Paris"), "description": prop("capital"),
            "isInCountry": rel(F)}}},
        {"id": B2, "locatedAt": {**rel(C2), "entity": {"id": C2, "type": "City", "name": prop("Lyon")}}}]
    simplified = await get(client, "type=Building&join=inline&joinLevel=1&options=keyValues&omit=name")
    assert simplified == [
        {"id": B1, "type": "Building", "locatedAt": {"id": C1, "type": "City", "name": "Paris",
                                                     "description": "capital", "isInCountry": F}},
        {"id": B2, "type": "Building", "locatedAt": {"id": C2, "type": "City", "name": "Lyon"}}]
    flat = await get(client, "type=Building&join=flat&options=keyValues&omit=name")
    assert [e["id"] for e in flat] == [B1, B2, C1, C2]
    assert flat[0] == {"id": B1, "type": "Building", "locatedAt": C1}
    # @none, or no join: the plain answer
    assert await get(client, "type=Building&join=@none&pick=locatedAt") == [
        {"locatedAt": rel(C1)}, {"locatedAt": rel(C2)}]


async def test_two_levels_with_nested_pick_and_omit(client: TestClient) -> None:
    await seed(client)
    pick = "pick=id,locatedAt{id,name,isInCountry{id,description}}"
    inline = await get(client, f"type=Building&id={B1}&join=inline&joinLevel=2&{pick}")
    assert inline == [{"id": B1, "locatedAt": {**rel(C1), "entity": {
        "id": C1, "name": prop("Paris"), "isInCountry": {**rel(F), "entity": {
            "id": F, "description": prop("EU")}}}}}]
    flat = await get(client, f"type=Building&id={B1}&join=flat&joinLevel=2&{pick}")
    assert flat == [{"id": B1, "locatedAt": rel(C1)},
                    {"id": C1, "name": prop("Paris"), "isInCountry": rel(F)},
                    {"id": F, "description": prop("EU")}]
    # joinLevel=1 stops at the city
    assert [e["id"] for e in await get(client, f"type=Building&id={B1}&join=flat&{pick}")] == [B1, C1]
    # omit: locatedAt{...} keeps locatedAt and trims the linked entities; unnamed ones come whole
    omit = "omit=type,name,locatedAt{name,isInCountry{description}}"
    inline = await get(client, f"type=Building&id={B1}&join=inline&joinLevel=2&{omit}")
    assert inline == [{"id": B1, "locatedAt": {**rel(C1), "entity": {
        "id": C1, "type": "City", "description": prop("capital"), "isInCountry": {**rel(F), "entity": {
            "id": F, "type": "Country", "name": prop("France")}}}}}]
    omit = "omit=type,locatedAt{name}"
    flat = await get(client, f"type=Building&id={B1}&join=flat&joinLevel=2&{omit}")
    assert flat[2] == {"id": F, "type": "Country", "name": prop("France"), "description": prop("EU")}


async def test_linked_entities_with_sys_attrs_missing_targets_and_cycles(client: TestClient) -> None:
    await create(client, {"id": "urn:ngsi-ld:A:1", "type": "A", "next": rel("urn:ngsi-ld:A:2"),
                          "gone": rel("urn:ngsi-ld:A:404"),
                          "many": {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:A:2"}]}})
    await create(client, {"id": "urn:ngsi-ld:A:2", "type": "A", "next": rel("urn:ngsi-ld:A:1")})
    [a1] = await get(client, "type=A&id=urn:ngsi-ld:A:1&join=inline&joinLevel=5&options=sysAttrs")
    a2 = a1["next"]["entity"]
    assert a2["id"] == "urn:ngsi-ld:A:2" and "createdAt" in a2
    assert "entity" not in a2["next"]  # A:1 is already on the path: the cycle ends
    assert "entity" not in a1["gone"]  # no such entity: the Relationship stays as it is
    assert [e["id"] for e in a1["many"]["entityList"]] == ["urn:ngsi-ld:A:2"]
    flat = await get(client, "type=A&join=flat&joinLevel=5")
    assert [e["id"] for e in flat] == ["urn:ngsi-ld:A:1", "urn:ngsi-ld:A:2"]
    # containedBy: ids already seen by the caller are not followed
    [a1] = await get(client, "type=A&id=urn:ngsi-ld:A:1&join=inline&containedBy=urn:ngsi-ld:A:2")
    assert "entity" not in a1["next"]


async def test_post_query_join_and_errors(client: TestClient) -> None:
    await seed(client)
    body = {"type": "Query", "entities": [{"type": "Building"}], "join": "flat"}
    resp = await client.post(POST_URL, data=orjson.dumps(body), headers=JSON_CT)
    assert resp.status == 200, await resp.text()
    assert [e["id"] for e in await resp.json()] == [B1, B2, C1, C2]
    body = {"type": "Query", "entities": [{"type": "Building"}], "join": "inline", "joinLevel": 2,
            "pick": ["id", "locatedAt{isInCountry{name}}"]}
    resp = await client.post(f"{POST_URL}?options=keyValues", data=orjson.dumps(body), headers=JSON_CT)
    assert await resp.json() == [{"id": B1, "locatedAt": {"isInCountry": {"name": "France"}}},
                                 {"id": B2, "locatedAt": {}}]
    for bad in ({"join": "sideways"}, {"join": "flat", "joinLevel": 0}):
        resp = await client.post(POST_URL, data=orjson.dumps({"type": "Query", "attrs": ["name"], **bad}),
                                 headers=JSON_CT)
        await problem(resp, 400, "BadRequestData")
    for query in ("join=sideways", "join=flat&joinLevel=0", "join=inline&joinLevel=two",
                  "join=flat&containedBy=nope"):
        await problem(await client.get(f"{URL}?type=Building&{query}"), 400, "BadRequestData")


async def test_geojson_with_inline_join(client: TestClient) -> None:
    await seed(client)
    resp = await client.get(f"{URL}?type=Building&id={B1}&join=inline&pick=id,locatedAt{{name}}",
                            headers={"Accept": "application/geo+json"})
    assert resp.status == 200
    body = await resp.json(content_type=None)
    [feature] = body["features"]
    assert feature["id"] == B1 and feature["properties"] == {
        "locatedAt": {**rel(C1), "entity": {"name": prop("Paris")}}}


async def test_render_one_for_retrieve(client: TestClient) -> None:
    """``Linker.render_one``: what GET /entities/{id} answers with join (a list only when flat links)."""
    await seed(client)
    store = client.server.app[STORE]
    tm = await client.server.app[RESOLVER].resolve(None)
    b1, c2 = await store.get_entity(DEFAULT_TENANT, B1), await store.get_entity(DEFAULT_TENANT, C2)
    assert b1 is not None and c2 is not None

    def linker(join: str, fmt: str = "normalized") -> Linker:
        return Linker(store, DEFAULT_TENANT, tm, RenderOptions(format=fmt), join_options(join))

    one = await linker("flat").render_one(b1)
    assert isinstance(one, list) and [e["id"] for e in one] == [B1, C1]
    assert await linker("flat").render_one(c2) == {"id": C2, "type": "City", "name": prop("Lyon")}
    inline = await linker("inline", "simplified").render_one(b1)
    assert isinstance(inline, dict) and inline["locatedAt"]["id"] == C1


async def test_retrieve_spec_and_render_retrieved(client: TestClient) -> None:
    """The helpers GET /entities/{id} calls: ETSI 018_10..21 (join, projections, 404s, 400s)."""
    await seed(client)
    store = client.server.app[STORE]
    tm = await client.server.app[RESOLVER].resolve(None)
    b1 = await store.get_entity(DEFAULT_TENANT, B1)
    assert b1 is not None

    async def render(**params: str) -> Any:
        return await render_retrieved(store, DEFAULT_TENANT, tm, b1, retrieve_spec(params, tm))

    assert await render(join="inline", joinLevel="2", pick="id,locatedAt{isInCountry{name}}") == {
        "id": B1, "locatedAt": {**rel(C1), "entity": {"isInCountry": {**rel(F), "entity": {
            "name": prop("France")}}}}}
    flat = await render(join="flat", options="keyValues", omit="name,locatedAt{name,description}")
    assert flat == [{"id": B1, "type": "Building", "locatedAt": C1},
                    {"id": C1, "type": "City", "isInCountry": F}]
    assert await render(attrs="name") == {"id": B1, "type": "Building", "name": prop("Tower")}
    for params, error in (({"attrs": "unknown"}, ResourceNotFound), ({"pick": "unknown"}, ResourceNotFound),
                          ({"omit": "id,type,name,locatedAt"}, ResourceNotFound),
                          ({"pick": "name", "attrs": "name"}, BadRequestData),
                          ({"omit": "name", "attrs": "name"}, BadRequestData),
                          ({"pick": "id,locatedAt{name"}, BadRequestData), ({"join": "x"}, BadRequestData),
                          ({"format": "invalidFormat"}, InvalidRequest),
                          ({"options": "keyValues,invalid"}, InvalidRequest)):
        with pytest.raises(error):
            await render(**params)


# ------------------------------------------------------------------------------------ orderBy


async def test_order_by(client: TestClient) -> None:
    for n, name, sub in ((2, "B", 2), (1, "A", 1), (3, "C", 3)):
        await create(client, {"id": f"urn:ngsi-ld:Building:{n}", "type": "Building",
                              "name": {**prop(name), "subProperty": prop(sub)}})
        await asyncio.sleep(0.003)  # distinct createdAt (ms precision): name.createdAt must not tie
    await create(client, {"id": "urn:ngsi-ld:Building:0", "type": "Building"})  # no name: always last

    async def order(by: str, extra: str = "") -> list[str]:
        return [e["id"][-1] for e in await get(client, f"type=Building&orderBy={by}{extra}")]

    assert await order("name") == ["1", "2", "3", "0"]
    assert await order("name;desc") == ["3", "2", "1", "0"]
    assert await order("id") == ["0", "1", "2", "3"]
    assert await order("id;desc") == ["3", "2", "1", "0"]
    assert await order("name.subProperty;desc") == ["3", "2", "1", "0"]
    assert await order("name.createdAt") == ["2", "1", "3", "0"]
    assert await order("type;asc,name.subProperty;desc,name;asc") == ["3", "2", "1", "0"]
    assert await order("name", "&limit=2&offset=1") == ["2", "3"]
    resp = await client.get(f"{URL}?type=Building&orderBy=name&limit=1&count=true")
    assert resp.headers["NGSILD-Results-Count"] == "4"
    assert 'rel="next"' in resp.headers["Link"] or "next" in ",".join(resp.headers.getall("Link"))
    for bad in ("name;up", "", "na(me", "name,,id"):
        await problem(await client.get(f"{URL}?type=Building&orderBy={bad}"), 400, "BadRequestData")


# ------------------------------------------------------------------------------ unknown params


async def test_unknown_parameters_are_invalid_requests(client: TestClient) -> None:
    await problem(await client.get(f"{URL}?type=Building&invalidParams=x"), 400, "InvalidRequest")
    for path in ("/types", "/types/", "/attributes", "/types/Building", "/attributes/name"):
        await problem(await client.get(f"/ngsi-ld/v1{path}?invalidParams=invalidValue"), 400, "InvalidRequest")
    for path in ("/types/?details=false", "/attributes/?details=true", "/types?local=true"):
        resp = await client.get(f"/ngsi-ld/v1{path}")
        assert resp.status == 200, (path, await resp.text())
