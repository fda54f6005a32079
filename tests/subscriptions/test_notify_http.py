"""HTTP notifications end to end: real broker app, real HTTP receiver in the test process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from broker.api.keys import DELIVERY
from broker.timeutil import format_iso, parse_iso
from tests.subscriptions.receiver import Receiver

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"
JSON = {"Content-Type": "application/json"}
CTX = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


def room(n: int, temp: float = 20.0, **attrs: Any) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Room:{n}", "type": "Room", "temperature": {"type": "Property", "value": temp},
            **attrs}


async def subscribe(client: TestClient, url: str, headers: dict[str, str] | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Room"}],
                            "notification": {"endpoint": {"uri": url}}}
    for key, value in extra.items():
        if key == "notification":
            body["notification"] = {**body["notification"], **value}
        else:
            body[key] = value
    r = await client.post(SUBS, json=body, headers={**JSON, **(headers or {})})
    assert r.status == 201, await r.text()
    return r.headers["Location"].rsplit("/", 1)[1]


async def create(client: TestClient, entity: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    r = await client.post(ENTITIES, json=entity, headers={**JSON, **(headers or {})})
    assert r.status == 201, await r.text()


async def update(client: TestClient, entity_id: str, attrs: dict[str, Any],
                 headers: dict[str, str] | None = None) -> None:
    r = await client.patch(f"{ENTITIES}/{entity_id}/attrs", json=attrs, headers={**JSON, **(headers or {})})
    assert r.status in (204, 207), await r.text()


def temp(value: float) -> dict[str, Any]:
    return {"temperature": {"type": "Property", "value": value}}


async def status_when(client: TestClient, sub_id: str, ok: Any, headers: dict[str, str] | None = None,
                      timeout: float = 15.0) -> dict[str, Any]:
    """Poll the subscription until ``ok(notification member)`` holds (generous timeout, no timing claims)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await (await client.get(f"{SUBS}/{sub_id}", headers=headers)).json()
        if ok(got["notification"]):
            return got
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.05)


async def test_notification_body_headers_and_counters(nclient: TestClient, receiver: Receiver) -> None:
    sub_id = await subscribe(nclient, receiver.url, watchedAttributes=["temperature"])
    await create(nclient, room(1))
    got = await receiver.next()
    body, headers = got["body"], got["headers"]
    assert body["type"] == "Notification" and body["id"].startswith("urn:ngsi-ld:Notification:")
    assert body["subscriptionId"] == sub_id
    parse_iso(body["notifiedAt"])
    assert body["data"] == [room(1)]
    assert headers["Content-Type"].startswith("application/json")
    assert f"<{CTX}>" in headers["Link"] and "json-ld#context" in headers["Link"]
    assert "NGSILD-Tenant" not in headers
    await update(nclient, "urn:ngsi-ld:Room:1", temp(25))
    second = (await receiver.next())["body"]
    assert second["data"][0]["temperature"]["value"] == 25 and second["id"] != body["id"]
    sub = await status_when(nclient, sub_id, lambda n: n.get("timesSent", 0) >= 2)
    n = sub["notification"]
    assert n["status"] == "ok" and "timesFailed" not in n and "lastSuccess" in n and "lastNotification" in n


async def test_keyvalues_ldjson_receiverinfo_and_tenant(nclient: TestClient, receiver: Receiver) -> None:
    tenant = {"NGSILD-Tenant": "city1"}
    await subscribe(nclient, receiver.url, tenant, notification={
        "format": "keyValues", "attributes": ["temperature"],
        "endpoint": {"uri": receiver.url, "accept": "application/ld+json",
                     "receiverInfo": [{"key": "X-Auth-Token", "value": "s3cret"}]}})
    await create(nclient, room(2, 18.5, humidity={"type": "Property", "value": 40}), tenant)
    got = await receiver.next()
    assert got["headers"]["Content-Type"].startswith("application/ld+json")
    assert got["headers"]["X-Auth-Token"] == "s3cret"
    assert got["headers"]["NGSILD-Tenant"] == "city1"
    assert got["body"]["@context"] == CTX
    # JSON-LD: every entity of data is a document with its own @context
    assert got["body"]["data"] == [{"id": "urn:ngsi-ld:Room:2", "type": "Room", "temperature": 18.5,
                                    "@context": CTX}]


async def test_jsonld_context_compacts_notifications(nclient: TestClient, receiver: Receiver) -> None:
    ctx = [{"Room": "https://example.org/Room", "temp": "https://example.org/t"}, CTX]
    body = {"type": "Subscription", "entities": [{"type": "Room"}], "@context": ctx,
            "notification": {"endpoint": {"uri": receiver.url, "accept": "application/ld+json"}}}
    r = await nclient.post(SUBS, json=body, headers={"Content-Type": "application/ld+json"})
    assert r.status == 201
    entity = {"id": "urn:ngsi-ld:Room:3", "type": "Room", "temp": {"type": "Property", "value": 1}, "@context": ctx}
    r = await nclient.post(ENTITIES, json=entity, headers={"Content-Type": "application/ld+json"})
    assert r.status == 201
    got = (await receiver.next())["body"]
    assert got["@context"] == ctx and got["data"][0]["@context"] == ctx
    assert got["data"][0]["type"] == "Room" and got["data"][0]["temp"]["value"] == 1


async def test_watched_attributes_and_q_filter(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(4, 10, humidity={"type": "Property", "value": 40}))
    await subscribe(nclient, receiver.url, watchedAttributes=["temperature"], q="temperature>30")
    await update(nclient, "urn:ngsi-ld:Room:4", {"humidity": {"type": "Property", "value": 41}})  # not watched
    await update(nclient, "urn:ngsi-ld:Room:4", temp(20))   # watched, q false
    await update(nclient, "urn:ngsi-ld:Room:4", temp(35))   # watched, q true
    # notifications of one subscription keep their order: the first one must be the matching change
    got = (await receiver.next())["body"]
    assert got["data"][0]["temperature"]["value"] == 35
    assert got["data"][0]["humidity"]["value"] == 41


async def test_entity_selectors_id_and_idpattern(nclient: TestClient, receiver: Receiver) -> None:
    await subscribe(nclient, receiver.url, entities=[{"id": "urn:ngsi-ld:Room:7", "type": "Room"},
                                                      {"idPattern": "urn:ngsi-ld:Room:9.*", "type": "Room"}])
    for n in (5, 7, 6, 90):
        await create(nclient, room(n))
    ids = [(await receiver.next())["body"]["data"][0]["id"] for _ in range(2)]
    assert ids == ["urn:ngsi-ld:Room:7", "urn:ngsi-ld:Room:90"]


async def test_triggers_entity_deleted_and_attribute_deleted(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(10, humidity={"type": "Property", "value": 1}))
    await subscribe(nclient, receiver.url, notificationTrigger=["attributeDeleted", "entityDeleted"])
    await update(nclient, "urn:ngsi-ld:Room:10", temp(30))  # an update: not a trigger here
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:10/attrs/humidity")
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    # the deleted attribute is shown as NGSI-LD Null (clause 4.5.18)
    assert got["humidity"] == {"type": "Property", "value": "urn:ngsi-ld:null"}
    assert got["temperature"]["value"] == 30
    assert (await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:10")).status == 204
    got = (await receiver.next())["body"]["data"][0]
    assert got["id"] == "urn:ngsi-ld:Room:10" and got["type"] == "Room" and "deletedAt" in got
    assert got["temperature"] == {"type": "Property", "value": "urn:ngsi-ld:null"}  # attributeDeleted too


async def test_show_changes_and_sysattrs(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(11, 12))
    await subscribe(nclient, receiver.url, notification={"showChanges": True, "sysAttrs": True})
    await update(nclient, "urn:ngsi-ld:Room:11", temp(13))
    got = (await receiver.next())["body"]["data"][0]
    assert got["temperature"]["value"] == 13 and got["temperature"]["previousValue"] == 12
    assert "modifiedAt" in got and "createdAt" in got["temperature"]


async def test_geojson_accept(nclient: TestClient, receiver: Receiver) -> None:
    await subscribe(nclient, receiver.url, notification={"endpoint": {"uri": receiver.url,
                                                                      "accept": "application/geo+json"}})
    loc = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2.35, 48.85]}}
    await create(nclient, room(12, location=loc))
    got = await receiver.next()
    assert got["headers"]["Content-Type"].startswith("application/geo+json")
    fc = got["body"]["data"]
    assert fc["type"] == "FeatureCollection"
    assert fc["features"][0]["geometry"] == loc["value"] and fc["features"][0]["id"] == "urn:ngsi-ld:Room:12"


async def test_batch_operations_notify_each_entity(nclient: TestClient, receiver: Receiver) -> None:
    await subscribe(nclient, receiver.url)
    r = await nclient.post("/ngsi-ld/v1/entityOperations/create", json=[room(20), room(21), room(22)],
                           headers=JSON)
    assert r.status == 201, await r.text()
    ids = sorted([(await receiver.next())["body"]["data"][0]["id"] for _ in range(3)])
    assert ids == [f"urn:ngsi-ld:Room:{n}" for n in (20, 21, 22)]


async def test_paused_and_expired_subscriptions_do_not_notify(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(30))
    sub_id = await subscribe(nclient, receiver.url, isActive=False,
                             entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:30"}])
    await update(nclient, "urn:ngsi-ld:Room:30", temp(1))   # paused: nothing
    r = await nclient.patch(f"{SUBS}/{sub_id}", json={"isActive": True}, headers=JSON)
    assert r.status == 204
    await update(nclient, "urn:ngsi-ld:Room:30", temp(2))
    assert (await receiver.next())["body"]["data"][0]["temperature"]["value"] == 2

    soon = format_iso(datetime.now(UTC) + timedelta(seconds=1))
    exp_id = await subscribe(nclient, receiver.url, expiresAt=soon, entities=[{"type": "Room",
                                                                               "id": "urn:ngsi-ld:Room:31"}])
    await create(nclient, room(31))
    assert (await receiver.next())["body"]["subscriptionId"] == exp_id
    while (await (await nclient.get(f"{SUBS}/{exp_id}")).json())["status"] != "expired":
        await asyncio.sleep(0.1)
    await update(nclient, "urn:ngsi-ld:Room:31", temp(3))   # expired: nothing
    later = format_iso(datetime.now(UTC) + timedelta(hours=1))
    assert (await nclient.patch(f"{SUBS}/{exp_id}", json={"expiresAt": later}, headers=JSON)).status == 204
    await update(nclient, "urn:ngsi-ld:Room:31", temp(4))
    got = (await receiver.next())["body"]
    assert got["subscriptionId"] == exp_id and got["data"][0]["temperature"]["value"] == 4


async def test_deleted_subscription_stops(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(32))
    gone = await subscribe(nclient, receiver.url, entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:32"}])
    assert (await nclient.delete(f"{SUBS}/{gone}")).status == 204
    await update(nclient, "urn:ngsi-ld:Room:32", temp(5))
    kept = await subscribe(nclient, receiver.url, entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:32"}])
    await update(nclient, "urn:ngsi-ld:Room:32", temp(6))
    got = (await receiver.next())["body"]
    assert got["subscriptionId"] == kept and got["data"][0]["temperature"]["value"] == 6


async def test_throttling_sends_latest_after_the_period(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(40))
    await subscribe(nclient, receiver.url, throttling=1, entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:40"}])
    for v in (1, 2, 3):
        await update(nclient, "urn:ngsi-ld:Room:40", temp(v))
    first = (await receiver.next())["body"]
    second = (await receiver.next())["body"]
    assert first["data"][0]["temperature"]["value"] == 1
    assert second["data"][0]["temperature"]["value"] == 3  # 2 and 3 merged: the latest state
    gap = parse_iso(second["notifiedAt"]) - parse_iso(first["notifiedAt"])
    assert gap >= timedelta(seconds=0.99)


async def test_periodic_subscription_sends_all_matching_entities(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(50, 1))
    await create(nclient, room(51, 2))
    await create(nclient, {"id": "urn:ngsi-ld:Car:1", "type": "Car"})
    sub_id = await subscribe(nclient, receiver.url, timeInterval=1, q="temperature<10")
    for _ in range(2):
        got = (await receiver.next())["body"]
        assert got["subscriptionId"] == sub_id
        assert sorted(e["id"] for e in got["data"]) == ["urn:ngsi-ld:Room:50", "urn:ngsi-ld:Room:51"]


async def test_retry_after_receiver_outage(nclient: TestClient) -> None:
    receiver = Receiver()  # not started: the endpoint refuses connections
    nclient.app[DELIVERY].max_attempts = 1000  # short backoff (fixture): keep retrying until it is up
    sub_id = await subscribe(nclient, receiver.url)
    await create(nclient, room(60))
    await status_when(nclient, sub_id, lambda n: "lastFailure" in n)
    await receiver.start()
    try:
        got = (await receiver.next(20))["body"]
        assert got["data"][0]["id"] == "urn:ngsi-ld:Room:60"
        sub = await status_when(nclient, sub_id, lambda n: n.get("lastSuccess", "") > n["lastFailure"])
        assert sub["notification"]["status"] == "ok" and "timesFailed" not in sub["notification"]
    finally:
        await receiver.stop()


async def test_final_failure_is_recorded_and_later_ones_still_go(nclient: TestClient, receiver: Receiver) -> None:
    receiver.status = 500
    sub_id = await subscribe(nclient, receiver.url)
    await create(nclient, room(70))
    for _ in range(3):  # notify_max_retries=3 attempts, all answered 500
        assert (await receiver.next())["body"]["data"][0]["id"] == "urn:ngsi-ld:Room:70"
    sub = await status_when(nclient, sub_id, lambda n: n.get("timesFailed", 0) == 1)
    assert sub["notification"]["status"] == "failed" and sub["notification"]["timesSent"] == 1
    receiver.status = 200
    await create(nclient, room(71))
    assert (await receiver.next())["body"]["data"][0]["id"] == "urn:ngsi-ld:Room:71"
    sub = await status_when(nclient, sub_id, lambda n: n["status"] == "ok")
    assert sub["notification"]["timesSent"] == 2


async def test_counted_as_sent_before_the_receiver_answers(nclient: TestClient, receiver: Receiver) -> None:
    """A receiver that reads the subscription as soon as it holds the notification (the ETSI suite's
    046_11_01 does) finds it counted: timesSent counts what went out, not answers read back."""
    sub_id = await subscribe(nclient, receiver.url)
    seen: list[dict[str, Any]] = []

    async def read_status() -> None:
        r = await nclient.get(f"{SUBS}/{sub_id}")
        seen.append((await r.json())["notification"])

    receiver.before_answer = read_status
    await create(nclient, room(80))
    assert (await receiver.next())["body"]["data"][0]["id"] == "urn:ngsi-ld:Room:80"
    await status_when(nclient, sub_id, lambda n: n.get("status") == "ok")
    assert seen and seen[0].get("timesSent") == 1 and "lastNotification" in seen[0], seen
    assert "lastSuccess" not in seen[0]  # the answer was not read yet: no outcome to report


async def test_link_keyvalues_sysattrs_and_dataset_filter(nclient: TestClient, receiver: Receiver) -> None:
    """A lone @context URL in a list is the Link; keyValues+sysAttrs has the entity's system times;
    datasetId keeps only the listed instances."""
    ctx = [CTX]
    await subscribe(nclient, receiver.url, {"Content-Type": "application/ld+json"}, **{"@context": ctx},
                    datasetId=["urn:ngsi-ld:Dataset:b"],
                    notification={"format": "keyValues", "sysAttrs": True})
    entity = room(80, temperature=[{"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:a"},
                                   {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"}])
    await create(nclient, entity)
    got = await receiver.next()
    assert got["headers"]["Link"].startswith(f"<{CTX}>")
    data = got["body"]["data"][0]
    assert data["temperature"] == 2
    assert "createdAt" in data and "modifiedAt" in data


async def test_deleted_instances_are_ngsi_ld_null_with_previous_values(nclient: TestClient,
                                                                       receiver: Receiver) -> None:
    name = [{"type": "Property", "value": "Eiffel Tower"},
            {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ngsi-ld:Dataset:fr"}]
    await create(nclient, room(81, name=name, owner={"type": "Relationship", "object": "urn:ngsi-ld:P:1"}))
    await subscribe(nclient, receiver.url, notificationTrigger=["attributeDeleted"],
                    notification={"showChanges": True, "sysAttrs": True})
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:81/attrs/name",
                             params={"datasetId": "urn:ngsi-ld:Dataset:fr"})
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    kept, gone = got["name"]
    assert kept["value"] == "Eiffel Tower"
    assert gone["value"] == "urn:ngsi-ld:null" and gone["datasetId"] == "urn:ngsi-ld:Dataset:fr"
    assert gone["previousValue"] == "Tour Eiffel" and "deletedAt" in gone
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:81/attrs/owner")
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    assert got["owner"]["object"] == "urn:ngsi-ld:null"
    assert got["owner"]["previousObject"] == "urn:ngsi-ld:P:1"


async def test_deleted_instances_in_key_values_are_in_the_dataset_map(nclient: TestClient,
                                                                       receiver: Receiver) -> None:
    """keyValues: a Multi-Attribute is ``{"dataset": {datasetId: value}}`` (CIM 009 v1.8 clause 4.5.4),
    a deleted instance's value the NGSI-LD Null; one instance left keeps its datasetId key there."""
    name = [{"type": "Property", "value": "Eiffel Tower"},
            {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ngsi-ld:Dataset:fr"},
            {"type": "Property", "value": "Eiffelturm", "datasetId": "urn:ngsi-ld:Dataset:de"}]
    await create(nclient, room(85, name=name))
    await subscribe(nclient, receiver.url, notificationTrigger=["attributeDeleted"],
                    entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:85"}], notification={"format": "keyValues"})
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:85/attrs/name", params={"datasetId": "urn:ngsi-ld:Dataset:fr"})
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    assert got["name"] == {"dataset": {"@none": "Eiffel Tower", "urn:ngsi-ld:Dataset:de": "Eiffelturm",
                                       "urn:ngsi-ld:Dataset:fr": "urn:ngsi-ld:null"}}
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:85/attrs/name", params={"datasetId": "urn:ngsi-ld:Dataset:de"})
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    assert got["name"] == {"dataset": {"@none": "Eiffel Tower", "urn:ngsi-ld:Dataset:de": "urn:ngsi-ld:null"}}


async def test_key_values_dataset_map_keeps_to_the_subscribed_datasets(nclient: TestClient,
                                                                       receiver: Receiver) -> None:
    """With the subscription's ``datasetId`` filter, the map holds only those instances: one kept
    instance keeps its own key beside the deleted one's Null."""
    name = [{"type": "Property", "value": "Eiffel Tower"},
            {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ngsi-ld:Dataset:fr"},
            {"type": "Property", "value": "Eiffelturm", "datasetId": "urn:ngsi-ld:Dataset:de"}]
    await create(nclient, room(86, name=name))
    await subscribe(nclient, receiver.url, notificationTrigger=["attributeDeleted"],
                    entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:86"}], notification={"format": "keyValues"},
                    datasetId=["urn:ngsi-ld:Dataset:fr", "urn:ngsi-ld:Dataset:de"])
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:86/attrs/name", params={"datasetId": "urn:ngsi-ld:Dataset:fr"})
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    assert got["name"] == {"dataset": {"urn:ngsi-ld:Dataset:de": "Eiffelturm",
                                       "urn:ngsi-ld:Dataset:fr": "urn:ngsi-ld:null"}}


async def test_entity_deletion_with_sysattrs(nclient: TestClient, receiver: Receiver) -> None:
    await create(nclient, room(82))
    await subscribe(nclient, receiver.url, notificationTrigger=["entityDeleted"],
                    notification={"format": "keyValues", "sysAttrs": True})
    assert (await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:82")).status == 204
    got = (await receiver.next())["body"]["data"][0]
    assert sorted(got) == ["createdAt", "deletedAt", "id", "modifiedAt", "type"]


async def test_join_and_pick_in_notifications(nclient: TestClient, receiver: Receiver) -> None:
    """join=flat appends the linked entity, join=inline puts it under the Relationship; pick projects."""
    await create(nclient, {"id": "urn:ngsi-ld:City:Paris", "type": "City",
                           "name": {"type": "Property", "value": "Paris"}})
    link = {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}
    await create(nclient, room(90, locatedAt=link))
    one = [{"type": "Room", "id": "urn:ngsi-ld:Room:90"}]
    flat = await subscribe(nclient, receiver.url, entities=one, notification={"join": "flat", "joinLevel": 1})
    await update(nclient, "urn:ngsi-ld:Room:90", temp(1))
    got = (await receiver.next())["body"]
    assert got["subscriptionId"] == flat
    assert [e["id"] for e in got["data"]] == ["urn:ngsi-ld:Room:90", "urn:ngsi-ld:City:Paris"]
    assert (await nclient.delete(f"{SUBS}/{flat}")).status == 204
    inline = await subscribe(nclient, receiver.url, entities=one,
                             notification={"join": "inline", "format": "keyValues", "pick": ["id", "locatedAt"]})
    await update(nclient, "urn:ngsi-ld:Room:90", temp(2))
    got = (await receiver.next())["body"]
    assert got["subscriptionId"] == inline
    assert got["data"] == [{"id": "urn:ngsi-ld:Room:90",
                            "locatedAt": {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris"}}]


async def test_q_is_percent_decoded_as_in_a_url(nclient: TestClient, receiver: Receiver) -> None:
    await subscribe(nclient, receiver.url, q='name=="Eiffel%20Tower"',
                    entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:95"}])
    await create(nclient, room(95, name={"type": "Property", "value": "Eiffel Tower"}))
    got = (await receiver.next())["body"]["data"][0]
    assert got["name"]["value"] == "Eiffel Tower"


async def test_entity_deletion_with_show_changes_lists_previous_values(nclient: TestClient,
                                                                      receiver: Receiver) -> None:
    street = {"type": "LanguageProperty", "languageMap": {"fr": "Grand Place"}}
    await create(nclient, room(83, 7, street=street))
    await subscribe(nclient, receiver.url, notificationTrigger=["entityDeleted"],
                    entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:83"}], notification={"showChanges": True})
    assert (await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:83")).status == 204
    got = (await receiver.next())["body"]["data"][0]
    assert got["temperature"] == {"type": "Property", "value": "urn:ngsi-ld:null", "previousValue": 7}
    assert got["street"] == {"type": "LanguageProperty", "languageMap": "urn:ngsi-ld:null",
                             "previousLanguageMap": {"fr": "Grand Place"}}


async def test_deleting_every_instance_is_one_null(nclient: TestClient, receiver: Receiver) -> None:
    name = [{"type": "Property", "value": "Eiffel Tower"},
            {"type": "Property", "value": "Tour Eiffel", "datasetId": "urn:ngsi-ld:Dataset:fr"}]
    await create(nclient, room(84, name=name))
    await subscribe(nclient, receiver.url, notificationTrigger=["attributeDeleted"],
                    entities=[{"type": "Room", "id": "urn:ngsi-ld:Room:84"}])
    r = await nclient.delete(f"{ENTITIES}/urn:ngsi-ld:Room:84/attrs/name", params={"deleteAll": "true"})
    assert r.status == 204, await r.text()
    got = (await receiver.next())["body"]["data"][0]
    assert got["name"] == {"type": "Property", "value": "urn:ngsi-ld:null"}


async def test_periodic_subscription_follows_a_changed_interval(nclient: TestClient, receiver: Receiver) -> None:
    """Periods are counted from creation per interval: a longer interval takes effect at its next
    boundary instead of waiting until its period count passes the old one's."""
    await create(nclient, room(52, 1))
    sub_id = await subscribe(nclient, receiver.url, timeInterval=1)
    for _ in range(3):
        await receiver.next()
    r = await nclient.patch(f"{SUBS}/{sub_id}", json={"timeInterval": 3}, headers=JSON)
    assert r.status == 204, await r.text()
    while not receiver.received.empty():  # a period of the old interval may have gone meanwhile
        receiver.received.get_nowait()
    started = asyncio.get_running_loop().time()
    got = (await receiver.next(timeout=9))["body"]
    assert got["subscriptionId"] == sub_id
    # the next 3 s boundary after creation is at most ~3 s away (the old count would wait ~9 s)
    assert asyncio.get_running_loop().time() - started < 6
