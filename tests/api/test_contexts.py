"""/ngsi-ld/v1/jsonldContexts over HTTP, on both stores, with a real context server in the process."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp.test_utils import TestClient

from broker.jsonld.core import DEFAULT_CORE_URL
from tests.jsonld.context_server import ContextServer

BASE = "/ngsi-ld/v1/jsonldContexts"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


async def problem(resp, status: int, type_name: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["type"] == ERR + type_name
    return body


async def host(client: TestClient, context: object) -> str:
    resp = await client.post(BASE, json={"@context": context})
    assert resp.status == 201, await resp.text()
    assert await resp.read() == b""
    location = resp.headers["Location"]
    assert location.startswith(BASE + "/")
    return location


async def details(client: TestClient, context_id: str) -> dict:
    resp = await client.get(f"{BASE}/{quote(context_id, safe='')}", params={"details": "true"})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def create_entity(client: TestClient, eid: str, link: str | None = None, context: object = None) -> None:
    body: dict = {"id": eid, "type": "T", "A1": {"type": "Property", "value": 1}}
    headers = {"Content-Type": "application/json"}
    if context is not None:
        body["@context"] = context
        headers["Content-Type"] = "application/ld+json"
    if link:
        headers["Link"] = LINK.format(link)
    resp = await client.post("/ngsi-ld/v1/entities", json=body, headers=headers)
    assert resp.status == 201, await resp.text()


async def test_empty_broker_lists_only_the_core_context(client: TestClient) -> None:
    resp = await client.get(BASE)
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == [DEFAULT_CORE_URL]
    for kind in ("Hosted", "ImplicitlyCreated"):
        resp = await client.get(BASE, params={"kind": kind, "details": "false"})
        assert await resp.json() == []
    core = await details(client, DEFAULT_CORE_URL)
    assert core["kind"] == "Cached" and core["URL"] == DEFAULT_CORE_URL
    resp = await client.get(f"{BASE}/{quote(DEFAULT_CORE_URL, safe='')}")
    assert (await resp.json())["@context"]["ngsi-ld"] == "https://uri.etsi.org/ngsi-ld/"


async def test_hosted_context_lifecycle(client: TestClient) -> None:
    location = await host(client, {"A1": "urn:test:A1"})
    local_id = location.rsplit("/", 1)[1]
    served = await client.get(location)
    assert served.status == 200 and served.content_type == "application/json"
    assert await served.json() == {"@context": {"A1": "urn:test:A1"}}

    info = await details(client, local_id)
    assert info["kind"] == "Hosted" and info["localId"] == local_id and info["numberOfHits"] == 0
    assert info["URL"] == str(client.make_url(location))
    assert set(info) <= {"URL", "localId", "kind", "createdAt", "lastUsage", "numberOfHits", "extraInfo"}

    # an entity created with the hosted URL (any host name) uses its terms and counts a hit
    await create_entity(client, "urn:ngsi-ld:T:hosted", link="http://some.host" + location)
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:T:hosted",
                            headers={"Link": LINK.format(info["URL"])})
    assert "A1" in await resp.json()
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:T:hosted")
    assert "urn:test:A1" in await resp.json()
    # the relative Location used verbatim as an inline @context names it too
    await create_entity(client, "urn:ngsi-ld:T:hosted2", context=location)
    info = await details(client, info["URL"])  # by URL works too
    assert info["numberOfHits"] == 3 and "lastUsage" in info

    listed = await (await client.get(BASE, params={"kind": "Hosted", "details": "true"})).json()
    assert [i["localId"] for i in listed] == [local_id]

    resp = await client.delete(location)
    assert resp.status == 204
    await problem(await client.get(location), 404, "ResourceNotFound")
    await problem(await client.delete(location), 404, "ResourceNotFound")


async def test_hosting_a_list_of_urls_caches_each_of_them(client: TestClient, ctx_server: ContextServer) -> None:
    urls = [ctx_server.url("/ctx"), ctx_server.url("/nested")]
    location = await host(client, urls)
    assert (await details(client, location.rsplit("/", 1)[1]))["kind"] == "Hosted"
    for url in urls:
        assert (await details(client, url))["kind"] == "Cached"
    cached = await (await client.get(BASE, params={"kind": "Cached"})).json()
    assert set(urls) | {DEFAULT_CORE_URL} == set(cached)
    assert ctx_server.hits["ctx"] == 1


async def test_bad_context_documents_are_rejected_and_change_nothing(client: TestClient,
                                                                     ctx_server: ContextServer) -> None:
    before = await (await client.get(BASE)).json()
    await problem(await client.post(BASE, data=b'{"A1": "urn:a" "A2": 1}',
                                     headers={"Content-Type": "application/json"}), 400, "InvalidRequest")
    await problem(await client.post(BASE, json={"A1": "urn:test:A1"}), 400, "InvalidRequest")
    await problem(await client.post(BASE, json=[{"@context": {}}]), 400, "InvalidRequest")
    await problem(await client.post(BASE, json={"@context": 5}), 400, "InvalidRequest")
    await problem(await client.post(BASE, json={"@context": {}, "id": "x"}), 400, "InvalidRequest")
    await problem(await client.post(BASE, json={"@context": {"A1": {"@id": 5}}}), 400, "BadRequestData")
    await problem(await client.post(BASE, json={"@context": "/api/v1/context.jsonld"}), 400, "BadRequestData")
    await problem(await client.post(BASE, data=b'{"@context": {}}', headers={"Content-Type": "text/plain"}),
                  415, "UnsupportedMediaType")
    await problem(await client.post(BASE, json={"@context": [ctx_server.url("/missing")]}),
                  503, "LdContextNotAvailable")
    assert await (await client.get(BASE)).json() == before


async def test_list_and_serve_parameters_are_checked(client: TestClient) -> None:
    await problem(await client.get(BASE, params={"kind": "other"}), 400, "BadRequestData")
    await problem(await client.get(BASE, params={"details": "other"}), 400, "BadRequestData")
    await problem(await client.get(BASE, params={"details": "true", "kind": "cached"}), 400, "BadRequestData")
    await problem(await client.get(f"{BASE}/nope", params={"details": "true"}), 404, "ResourceNotFound")
    await problem(await client.get(f"{BASE}/{quote('http://unknown.example/c.jsonld', safe='')}"),
                  404, "ResourceNotFound")
    location = await host(client, {"A1": "urn:test:A1"})
    await problem(await client.get(location, params={"details": "yes"}), 400, "BadRequestData")


async def test_delete_rules(client: TestClient, ctx_server: ContextServer) -> None:
    core = quote(DEFAULT_CORE_URL, safe="")
    await problem(await client.delete(f"{BASE}/{core}"), 400, "BadRequestData")
    await problem(await client.delete(f"{BASE}/{core}", params={"reload": "false"}), 400, "BadRequestData")
    assert (await client.delete(f"{BASE}/{core}", params={"reload": "true"})).status == 204
    await problem(await client.delete(f"{BASE}/123456", params={"reload": "true"}), 400, "BadRequestData")
    await problem(await client.delete(f"{BASE}/123456", params={"reload": "false"}), 404, "ResourceNotFound")
    await problem(await client.delete(f"{BASE}/123456", params={"reload": "xxx"}), 400, "BadRequestData")
    location = await host(client, {"A1": "urn:test:A1"})
    await problem(await client.delete(location, params={"reload": "true"}), 400, "BadRequestData")
    assert (await client.get(location)).status == 200  # still there

    # Cached: reload downloads again; a reload that fails keeps the old copy; delete drops it
    url = ctx_server.url("/flaky")
    ctx_server.healthy = True
    await create_entity(client, "urn:ngsi-ld:T:flaky", link=url)
    cached = f"{BASE}/{quote(url, safe='')}"
    assert (await client.delete(cached, params={"reload": "true"})).status == 204
    assert ctx_server.hits["flaky"] == 2
    ctx_server.healthy = False
    await problem(await client.delete(cached, params={"reload": "true"}), 503, "LdContextNotAvailable")
    info = await details(client, url)
    assert info["kind"] == "Cached"
    assert (await client.delete(cached)).status == 204
    await problem(await client.get(cached), 404, "ResourceNotFound")


async def test_inline_context_creates_an_implicit_context(client: TestClient, ctx_server: ContextServer) -> None:
    inline = [ctx_server.url("/ctx"), {"B9": "urn:test:B9"}]
    await create_entity(client, "urn:ngsi-ld:T:i1", context=inline)
    await create_entity(client, "urn:ngsi-ld:T:i2", context=inline)
    listed = await (await client.get(BASE, params={"kind": "ImplicitlyCreated", "details": "true"})).json()
    assert len(listed) == 1
    info = listed[0]
    assert info["kind"] == "ImplicitlyCreated" and info["numberOfHits"] == 2
    served = await client.get(f"{BASE}/{info['localId']}")
    assert await served.json() == {"@context": inline}
    # its URL can be used as a Link like any other context
    resp = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:T:i1", headers={"Link": LINK.format(info["URL"])})
    assert "A1" in await resp.json()
    await problem(await client.delete(f"{BASE}/{info['localId']}", params={"reload": "true"}),
                  400, "BadRequestData")
    assert (await client.delete(f"{BASE}/{info['localId']}")).status == 204
    assert await (await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json() == []


async def test_unreachable_context_is_503_and_nothing_is_created(client: TestClient,
                                                                 ctx_server: ContextServer) -> None:
    for path in ("/missing", "/text", "/nocontext"):
        resp = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:T:x", "type": "T"},
                                 headers={"Link": LINK.format(ctx_server.url(path))})
        await problem(resp, 503, "LdContextNotAvailable")
    await problem(await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:T:x"), 404, "ResourceNotFound")
    resp = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:T:x", "type": "T",
                                                            "@context": "/relative/context.jsonld"},
                             headers={"Content-Type": "application/ld+json"})
    await problem(resp, 400, "BadRequestData")
    resp = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:T:x", "type": "T"},
                             headers={"Link": LINK.format("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-non"
                                                          "-existing.jsonld".replace("https://", "http://127.0.0.1:1/"))})
    await problem(resp, 503, "LdContextNotAvailable")


async def test_a_reloaded_context_changes_what_q_and_type_names_mean(client: TestClient,
                                                                    ctx_server: ContextServer) -> None:
    """Parsed q expressions are cached per term map, not per context URL: after a reload
    that changes a term's IRI, the same query text expands with the new mapping."""
    url = ctx_server.url("/mutable")
    headers = {"Link": LINK.format(url)}

    async def make(eid: str, value: int) -> None:
        resp = await client.post("/ngsi-ld/v1/entities", headers={**headers, "Content-Type": "application/json"},
                                 json={"id": eid, "type": "urn:test:T", "temp": {"type": "Property", "value": value}})
        assert resp.status == 201, await resp.text()

    async def hits() -> list[str]:
        resp = await client.get("/ngsi-ld/v1/entities", params={"type": "urn:test:T", "q": "temp>1;temp<100"},
                                headers=headers)
        assert resp.status == 200, await resp.text()
        return [e["id"] for e in await resp.json()]

    await make("urn:ngsi-ld:T:old", 5)
    assert await hits() == ["urn:ngsi-ld:T:old"]
    ctx_server.mutable_iri = "urn:test:new"
    assert (await client.delete(f"{BASE}/{quote(url, safe='')}", params={"reload": "true"})).status == 204
    await make("urn:ngsi-ld:T:new", 7)
    assert await hits() == ["urn:ngsi-ld:T:new"]


async def test_retrieve_parameters_are_read_with_the_request_context(client: TestClient,
                                                                     ctx_server: ContextServer) -> None:
    """GET /entities/{id} keeps parsed parameters per term map and query string: the same
    ``?attrs=temp`` names another attribute under another @context."""
    resp = await client.post("/ngsi-ld/v1/entities", json={
        "id": "urn:ngsi-ld:T:attrs", "type": "urn:test:T", "temp": {"type": "Property", "value": 3}})
    assert resp.status == 201, await resp.text()
    path = "/ngsi-ld/v1/entities/urn:ngsi-ld:T:attrs"
    got = await client.get(path, params={"attrs": "temp"})
    assert got.status == 200 and (await got.json())["temp"]["value"] == 3
    other = {"Link": LINK.format(ctx_server.url("/mutable"))}  # temp -> urn:test:old there
    await problem(await client.get(path, params={"attrs": "temp"}, headers=other), 404, "ResourceNotFound")
    got = await client.get(path, params={"attrs": "temp"})
    assert got.status == 200 and (await got.json())["temp"]["value"] == 3
