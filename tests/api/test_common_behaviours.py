"""Common behaviours and entity provision corner cases the ETSI conformance suite checks
(CommonBehaviours 059/048, Provision 001/003/010-013/054-056), on both stores."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.entities.helpers import ENTITIES, Recorder, V, create, get, problem, send, url

EID = "urn:ngsi-ld:Building:1"
LINK = '<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
OPS = "/ngsi-ld/v1/entityOperations"
SCOPE = "https://uri.etsi.org/ngsi-ld/scope"


async def test_unknown_query_parameter_is_invalid_request(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "name": "A"})
    rec = Recorder(client)
    body = {"id": "urn:ngsi-ld:Building:2", "type": "Building"}
    await problem(await send(client, "POST", ENTITIES + "?invalidParams=x", body), 400, "InvalidRequest")
    # the parameter error wins over a body error (ETSI 059_01_01 sends a JSON string)
    await problem(await send(client, "POST", ENTITIES + "?invalidParams=x", "{}", "application/ld+json"),
                  400, "InvalidRequest")
    for method, path, payload in (("GET", url(EID), None), ("DELETE", url(EID), None),
                                  ("PATCH", url(EID), {"name": "B"}), ("PUT", url(EID), {"name": "B"}),
                                  ("POST", url(EID, "attrs"), {"name": "B"}),
                                  ("PATCH", url(EID, "attrs"), {"name": "B"}),
                                  ("GET", url(EID, "attrs", "name"), None),
                                  ("PATCH", url(EID, "attrs", "name"), {"value": "B"}),
                                  ("PUT", url(EID, "attrs", "name"), {"type": "Property", "value": "B"}),
                                  ("DELETE", url(EID, "attrs", "name"), None),
                                  ("POST", f"{OPS}/create", [body]), ("POST", f"{OPS}/upsert", [body]),
                                  ("POST", f"{OPS}/update", [body]), ("POST", f"{OPS}/merge", [body]),
                                  ("POST", f"{OPS}/delete", [EID])):
        await problem(await send(client, method, path + "?bogus=1", payload), 400, "InvalidRequest")
    assert rec.events == []
    assert await get(client, EID, "?options=keyValues&type=Building&local=true") == \
        {"id": EID, "type": "Building", "name": "A"}


async def test_link_header_with_json_ld_body_is_bad_request(client: TestClient) -> None:
    ld = {"id": EID, "type": "Building", "@context": CORE}
    await problem(await send(client, "POST", ENTITIES, ld, "application/ld+json", Link=LINK), 400, "BadRequestData")
    await problem(await send(client, "POST", f"{OPS}/create", [ld], "application/ld+json", Link=LINK),
                  400, "BadRequestData")
    resp = await client.get(url(EID))
    assert resp.status == 404
    # the Link header alone with plain JSON is fine
    await create(client, {"id": EID, "type": "Building"}, Link=LINK)


async def test_malformed_body_and_type(client: TestClient) -> None:
    await problem(await send(client, "POST", ENTITIES, [], "application/ld+json"), 400, "InvalidRequest")
    await problem(await send(client, "POST", ENTITIES, [{"id": EID, "type": "T"}]), 400, "InvalidRequest")
    body = {"id": EID, "type": "type", "@context": CORE}
    await problem(await send(client, "POST", ENTITIES, body, "application/ld+json"), 400, "BadRequestData")
    await problem(await send(client, "POST", ENTITIES, {"id": EID, "type": "@T"}), 400, "BadRequestData")
    assert (await client.get(url(EID))).status == 404


async def test_empty_entity_id_in_url_is_bad_request(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "speed": 1})
    rec = Recorder(client)
    for method, path, payload in (("PUT", ENTITIES + "/", {"type": "Building"}),
                                  ("PATCH", ENTITIES + "/", {"speed": 2}),
                                  ("POST", ENTITIES + "//attrs", {"speed": 2}),
                                  ("PATCH", ENTITIES + "//attrs", {"speed": 2}),
                                  ("PATCH", ENTITIES + "//attrs/speed", {"value": 2}),
                                  ("PUT", ENTITIES + "//attrs/speed", {"type": "Property", "value": 2}),
                                  ("DELETE", ENTITIES + "//attrs/speed", None)):
        await problem(await send(client, method, path, payload), 400, "BadRequestData")
    # an empty attribute name is still no route for DELETE (ETSI 013_02_03)
    await problem(await send(client, "DELETE", url(EID, "attrs") + "/"), 405, "MethodNotAllowed")
    assert rec.events == []


async def test_update_attrs_types_and_scope(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "scope": "/Madrid"})
    resp = await send(client, "PATCH", url(EID, "attrs"), {"type": ["Vehicle", "Building"]})
    assert resp.status == 204, await resp.text()
    resp = await send(client, "PATCH", url(EID, "attrs"), {"scope": "/Company/A"})
    assert resp.status == 204, await resp.text()
    assert await get(client, EID) == {"id": EID, "type": ["Building", "Vehicle"], "scope": "/Company/A"}
    # no scope yet: it is not created, and the answer says so
    other = "urn:ngsi-ld:Building:2"
    await create(client, {"id": other, "type": "Building"})
    rec = Recorder(client)
    resp = await send(client, "PATCH", url(other, "attrs"), {"scope": "/Company/A"})
    assert resp.status == 207
    assert await resp.json() == {"updated": [], "notUpdated": [
        {"attributeName": SCOPE, "reason": "The entity has no scope to update"}]}
    assert await get(client, other) == {"id": other, "type": "Building"} and rec.events == []
    await problem(await send(client, "PATCH", url(other, "attrs"), {}), 400, "BadRequestData")


async def test_append_scope_overwrite_and_no_overwrite(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "scope": "/Madrid"})
    resp = await send(client, "POST", url(EID, "attrs") + "?options=noOverwrite", {"scope": "/Company/A"})
    assert resp.status == 204
    assert (await get(client, EID))["scope"] == ["/Madrid", "/Company/A"]
    resp = await send(client, "POST", url(EID, "attrs"), {"scope": "/Company/B"})
    assert resp.status == 204
    assert (await get(client, EID))["scope"] == "/Company/B"


async def test_scope_is_no_attribute_but_can_be_deleted(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "scope": "/Madrid", "speed": 1})
    rec = Recorder(client)
    await problem(await send(client, "PUT", url(EID, "attrs", "scope"), {"type": "Property", "value": "/x"}),
                  400, "BadRequestData")
    await problem(await send(client, "PUT", url(EID, "attrs", "@invalid"), {"type": "Property", "value": 1}),
                  400, "BadRequestData")
    assert rec.events == []
    resp = await send(client, "DELETE", url(EID, "attrs", "scope"))
    assert resp.status == 204
    assert await get(client, EID, "?options=keyValues") == {"id": EID, "type": "Building", "speed": 1}
    await problem(await send(client, "DELETE", url(EID, "attrs", "scope")), 404, "ResourceNotFound")
    assert len(rec.take()) == 1


async def test_partial_update_cannot_change_attribute_type(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "speed": {"type": "Property", "value": 1}})
    rec = Recorder(client)
    resp = await send(client, "PATCH", url(EID, "attrs", "speed"), {"type": "Relationship", "object": "urn:x:1"})
    await problem(resp, 400, "BadRequestData")
    assert rec.events == []
    resp = await send(client, "PATCH", url(EID, "attrs", "speed"), {"type": "Property", "value": 2})
    assert resp.status == 204
    assert (await get(client, EID))["speed"] == {"type": "Property", "value": 2}


async def test_update_result_lists_expanded_names(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "speed": 1})
    resp = await send(client, "POST", url(EID, "attrs") + "?options=noOverwrite", {"speed": 2, "added": 3})
    assert resp.status == 207
    assert await resp.json() == {"updated": [V + "added"], "notUpdated": [
        {"attributeName": V + "speed", "reason": "Attribute exists and noOverwrite was requested"}]}


async def test_undefined_format_or_options_value_is_invalid_request(client: TestClient) -> None:
    await create(client, {"id": EID, "type": "Building", "speed": 1})
    for query in ("?format=invalidFormat", "?options=invalidOptions", "?options=keyValues,invalid",
                  "?format=keyValues&options=invalid"):
        await problem(await client.get(url(EID) + query), 400, "InvalidRequest")
        await problem(await client.get(url(EID, "attrs", "speed") + query), 400, "InvalidRequest")
    assert await get(client, EID, "?format=keyValues") == {"id": EID, "type": "Building", "speed": 1}
