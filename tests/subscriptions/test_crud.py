"""Subscription CRUD and validation over HTTP, on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

SUBS = "/ngsi-ld/v1/subscriptions"
JSON = {"Content-Type": "application/json"}
CTX = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def sub(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Room"}],
                            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}}
    body.update(extra)
    return body


async def create(client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    r = await client.post(SUBS, json=body, headers=headers or JSON)
    assert r.status == 201, await r.text()
    return r.headers["Location"].rsplit("/", 1)[1]


async def problem(resp: Any, status: int, kind: str) -> str:
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = await resp.json(content_type=None)
    assert body["type"] == ERR + kind, body
    return body["detail"]


async def test_create_get_defaults(client: TestClient) -> None:
    sub_id = await create(client, sub(watchedAttributes=["temperature"], q="temperature>20"))
    assert sub_id.startswith("urn:ngsi-ld:Subscription:")
    r = await client.get(f"{SUBS}/{sub_id}")
    assert r.status == 200
    got = await r.json()
    assert got["id"] == sub_id and got["type"] == "Subscription"
    assert got["entities"] == [{"type": "Room"}]
    assert got["watchedAttributes"] == ["temperature"]
    assert got["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    # defaults the client did not write are not shown back (isActive, sysAttrs, showChanges), and the
    # notification status appears only after a first attempt
    assert got["status"] == "active" and "isActive" not in got
    n = got["notification"]
    assert n["format"] == "normalized" and n["endpoint"]["accept"] == "application/json"
    assert not {"timesSent", "timesFailed", "status", "sysAttrs", "showChanges"} & set(n)
    assert got["q"] == "temperature>20"
    assert "jsonldContext" not in got  # no inline @context: nothing to name


async def test_names_expand_with_request_context_and_compact_in_answers(client: TestClient) -> None:
    ctx = {"@context": [{"Room": "https://example.org/Room", "temp": "https://example.org/temperature"}, CTX]}
    body = {**sub(entities=[{"type": "Room"}], watchedAttributes=["temp"]), **ctx}
    sub_id = await create(client, body, {"Content-Type": "application/ld+json"})
    # without the context the names come back as full IRIs
    got = await (await client.get(f"{SUBS}/{sub_id}")).json()
    assert got["entities"] == [{"type": "https://example.org/Room"}]
    assert got["watchedAttributes"] == ["https://example.org/temperature"]
    r = await client.get(f"{SUBS}/{sub_id}", headers={"Accept": "application/ld+json"})
    assert "@context" in await r.json()


async def test_given_id_and_duplicate(client: TestClient) -> None:
    sid = "urn:ngsi-ld:Subscription:fixed"
    assert await create(client, sub(id=sid)) == sid
    r = await client.post(SUBS, json=sub(id=sid), headers=JSON)
    await problem(r, 409, "AlreadyExists")


async def test_list_pagination_count_and_links(client: TestClient) -> None:
    ids = [await create(client, sub(id=f"urn:ngsi-ld:Subscription:{i:02d}")) for i in range(5)]
    r = await client.get(SUBS, params={"limit": "2", "offset": "2", "count": "true"})
    assert r.status == 200
    assert r.headers["NGSILD-Results-Count"] == "5"
    assert [s["id"] for s in await r.json()] == ids[2:4]
    links = r.headers.getall("Link")
    assert any('rel="next"' in lk and "offset=4" in lk for lk in links), links
    assert any('rel="prev"' in lk and "offset=0" in lk for lk in links), links
    await problem(await client.get(SUBS, params={"limit": "5000"}), 403, "TooManyResults")
    await problem(await client.get(SUBS, params={"limit": "x"}), 400, "BadRequestData")


async def test_update_merges_and_delete(client: TestClient) -> None:
    sub_id = await create(client, sub(q="temperature>20", throttling=5))
    # a fragment member replaces the stored member whole: a notification without endpoint is invalid
    r = await client.patch(f"{SUBS}/{sub_id}", json={"notification": {"format": "keyValues"}}, headers=JSON)
    await problem(r, 400, "BadRequestData")
    patch = {"q": "temperature>30", "isActive": False,
             "notification": {"format": "keyValues", "endpoint": {"uri": "http://127.0.0.1:9/notify"}}}
    r = await client.patch(f"{SUBS}/{sub_id}", json=patch, headers=JSON)
    assert r.status == 204, await r.text()
    got = await (await client.get(f"{SUBS}/{sub_id}")).json()
    assert got["q"] == "temperature>30" and got["throttling"] == 5
    assert got["notification"]["format"] == "keyValues"
    assert got["notification"]["endpoint"]["uri"] == "http://127.0.0.1:9/notify"
    assert got["status"] == "paused"
    # a bad update changes nothing
    r = await client.patch(f"{SUBS}/{sub_id}", json={"q": "(temperature"}, headers=JSON)
    await problem(r, 400, "BadRequestData")
    assert (await (await client.get(f"{SUBS}/{sub_id}")).json())["q"] == "temperature>30"
    await problem(await client.patch(f"{SUBS}/{sub_id}", json={}, headers=JSON), 400, "BadRequestData")
    await problem(await client.patch(f"{SUBS}/urn:ngsi-ld:Subscription:none", json={"q": "a>1"}, headers=JSON),
                  404, "ResourceNotFound")
    assert (await client.delete(f"{SUBS}/{sub_id}")).status == 204
    await problem(await client.get(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    await problem(await client.delete(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    await problem(await client.get(f"{SUBS}/not-a-uri"), 400, "BadRequestData")


INVALID = [
    ("both watchedAttributes and timeInterval", sub(watchedAttributes=["a"], timeInterval=10)),
    ("throttling with timeInterval", sub(throttling=1, timeInterval=10)),
    ("bad q", sub(q="(temperature>3")),
    ("bad geoQ", sub(geoQ={"geometry": "Point", "coordinates": [500, 1], "georel": "near;maxDistance==10"})),
    ("bad georel", sub(geoQ={"geometry": "Point", "coordinates": [5, 1], "georel": "nearby"})),
    ("bad scopeQ", sub(scopeQ="no-slash")),
    ("bad endpoint uri", sub(notification={"endpoint": {"uri": "not a uri"}})),
    ("unsupported scheme", sub(notification={"endpoint": {"uri": "ftp://example.org/x"}})),
    ("mqtt without topic", sub(notification={"endpoint": {"uri": "mqtt://127.0.0.1:1883"}})),
    ("bad MQTT-QoS", sub(notification={"endpoint": {"uri": "mqtt://h/t", "notifierInfo": [
        {"key": "MQTT-QoS", "value": "3"}]}})),
    ("bad accept", sub(notification={"endpoint": {"uri": "http://h/x", "accept": "text/plain"}})),
    ("bad format", sub(notification={"format": "pretty", "endpoint": {"uri": "http://h/x"}})),
    ("no endpoint", sub(notification={})),
    ("no notification", {"type": "Subscription", "entities": [{"type": "Room"}]}),
    ("expiresAt in the past", sub(expiresAt="2001-01-01T00:00:00Z")),
    ("expiresAt not a date", sub(expiresAt="tomorrow")),
    ("empty entities", sub(entities=[])),
    ("entities and watchedAttributes missing", {"type": "Subscription",
                                                "notification": {"endpoint": {"uri": "http://h/x"}}}),
    ("empty watchedAttributes", sub(watchedAttributes=[])),
    ("selector without type", sub(entities=[{"id": "urn:ngsi-ld:Room:1"}])),
    ("selector id not a URI", sub(entities=[{"id": "room 1", "type": "Room"}])),
    ("bad idPattern", sub(entities=[{"idPattern": "([", "type": "Room"}])),
    ("wrong type", sub(type="Subscriptions")),
    ("id not a URI", sub(id="sub1")),
    ("negative throttling", sub(throttling=-1)),
    ("zero timeInterval", sub(timeInterval=0)),
    ("unknown trigger", sub(notificationTrigger=["entityTouched"])),
    ("isActive not boolean", sub(isActive="yes")),
    ("unknown member", sub(colour="blue")),
    ("empty datasetId", sub(datasetId=[])),
    ("datasetId not a URI", sub(datasetId=["french"])),
    ("timeInterval a string", sub(timeInterval="5s")),
    ("bad join", sub(notification={"endpoint": {"uri": "http://h/x"}, "join": "deep"})),
    ("joinLevel 0", sub(notification={"endpoint": {"uri": "http://h/x"}, "join": "flat", "joinLevel": 0})),
    ("pick and omit", sub(notification={"endpoint": {"uri": "http://h/x"}, "pick": ["id"], "omit": ["type"]})),
    ("pick and attributes", sub(notification={"endpoint": {"uri": "http://h/x"}, "pick": ["id"],
                                              "attributes": ["a"]})),
    ("bad pick", sub(notification={"endpoint": {"uri": "http://h/x"}, "pick": "a{b"})),
]


# pure validation: one store and one app are enough (the CRUD path runs on both stores); each case
# checks that nothing was stored, so sharing the app cannot hide a leak
@pytest.mark.parametrize("body", [b for _, b in INVALID], ids=[n for n, _ in INVALID])
async def test_invalid_subscriptions_are_rejected(shared_client: TestClient, body: dict[str, Any]) -> None:
    r = await shared_client.post(SUBS, json=body, headers=JSON)
    await problem(r, 400, "BadRequestData")
    listed = await (await shared_client.get(SUBS)).json()
    assert listed == []


@pytest.mark.parametrize("client", ["sqlite"], indirect=True)
async def test_bad_media_and_json(client: TestClient) -> None:
    r = await client.post(SUBS, data=b"{", headers=JSON)
    await problem(r, 400, "InvalidRequest")
    r = await client.post(SUBS, data=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await client.post(SUBS, json=[sub()], headers=JSON)
    await problem(r, 400, "BadRequestData")


async def test_tenants_are_separate(client: TestClient) -> None:
    sub_id = await create(client, sub(), {**JSON, "NGSILD-Tenant": "t1"})
    await problem(await client.get(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    assert (await client.get(f"{SUBS}/{sub_id}", headers={"NGSILD-Tenant": "t1"})).status == 200
    await problem(await client.get(SUBS, headers={"NGSILD-Tenant": "nobody"}), 404, "NonexistentTenant")


async def test_jsonld_context_member_names_the_context_used(client: TestClient) -> None:
    """GET shows jsonldContext: the given URL, or the ImplicitlyCreated entry's URL of an inline @context."""
    given = await create(client, sub(jsonldContext=CTX))
    assert (await (await client.get(f"{SUBS}/{given}")).json())["jsonldContext"] == CTX
    inline = [{"Room": "https://example.org/Room"}, CTX]
    sub_id = await create(client, {**sub(), "@context": inline}, {"Content-Type": "application/ld+json"})
    got = await (await client.get(f"{SUBS}/{sub_id}")).json()
    url = got["jsonldContext"]
    assert url.startswith(f"http://{client.host}:{client.port}/ngsi-ld/v1/jsonldContexts/"), url
    served = await client.get(url.split(str(client.port), 1)[1], params={"details": "true"})
    assert served.status == 200, await served.text()
    details = await served.json()
    assert details["kind"] == "ImplicitlyCreated"
    assert details["numberOfHits"] == 1  # the creation used it once (validating it is no second use)
    listed = await (await client.get(SUBS)).json()
    assert {s["id"]: s["jsonldContext"] for s in listed} == {given: CTX, sub_id: url}


async def test_members_read_back_as_written(client: TestClient) -> None:
    """Numbers keep their JSON type; datasetId is kept; isActive given is shown."""
    sub_id = await create(client, sub(timeInterval=5, isActive=True, datasetId=["urn:ngsi-ld:Dataset:a", "@none"]))
    got = await (await client.get(f"{SUBS}/{sub_id}")).json()
    assert got["timeInterval"] == 5 and isinstance(got["timeInterval"], int)
    assert got["isActive"] is True and got["datasetId"] == ["urn:ngsi-ld:Dataset:a", "@none"]
    half = await create(client, sub(throttling=0.5))
    assert (await (await client.get(f"{SUBS}/{half}")).json())["throttling"] == 0.5


@pytest.mark.parametrize("client", ["sqlite"], indirect=True)
async def test_list_in_creation_order_with_suite_style_links(client: TestClient) -> None:
    ids = [await create(client, sub(id=f"urn:ngsi-ld:Subscription:{n}")) for n in ("c", "a", "b")]
    assert [s["id"] for s in await (await client.get(SUBS)).json()] == ids
    r = await client.get(SUBS, params={"limit": "1", "offset": "2"})
    assert f'<{SUBS}?limit=1&offset=1>;rel="prev";type="application/ld+json"' in r.headers.getall("Link")


async def test_index_reload_keeps_unchanged_subscriptions(client: TestClient) -> None:
    """A reload after another write reuses unchanged entries: their @context is not used again."""
    from broker.api.keys import SUBSCRIPTIONS

    inline = [{"Room": "https://example.org/Room"}, CTX]
    sub_id = await create(client, {**sub(), "@context": inline}, {"Content-Type": "application/ld+json"})
    service = client.app[SUBSCRIPTIONS]
    before = service.compiled("", sub_id)
    await create(client, sub())  # bumps the revision: the next sync reloads the tenant
    await service.sync()
    assert service.compiled("", sub_id) is before
    url = (await (await client.get(f"{SUBS}/{sub_id}")).json())["jsonldContext"]
    details = await (await client.get(url.split(str(client.port), 1)[1], params={"details": "true"})).json()
    assert details["numberOfHits"] == 1


async def test_unknown_query_parameters_are_invalid_requests(shared_client: TestClient) -> None:
    for method, path in (("POST", SUBS), ("GET", SUBS), ("GET", f"{SUBS}/urn:ngsi-ld:Subscription:x"),
                         ("PATCH", f"{SUBS}/urn:ngsi-ld:Subscription:x"),
                         ("DELETE", f"{SUBS}/urn:ngsi-ld:Subscription:x")):
        r = await shared_client.request(method, path, params={"invalidParams": "invalidValue"}, json=sub(),
                                        headers=JSON)
        await problem(r, 400, "InvalidRequest")
    assert await (await shared_client.get(SUBS)).json() == []
