"""Replace, merge-patch and the attribute operations of clause 5.6, their error paths, and the one
change event each write emits, on both stores."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.entities.helpers import Recorder, V, create, get, names, problem, send, url

EID = "urn:ngsi-ld:Room:1"
NULL = "urn:ngsi-ld:null"
ROOM = {
    "id": EID, "type": "Room", "scope": "/Porto",
    "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL",
                    "accuracy": {"type": "Property", "value": 0.5},
                    "source": {"type": "Property", "value": "sensor"}},
    "humidity": [{"type": "Property", "value": 40},
                 {"type": "Property", "value": 41, "datasetId": "urn:ngsi-ld:Dataset:b"}],
    "isIn": {"type": "Relationship", "object": "urn:ngsi-ld:Building:A"},
}


async def _sys(client: TestClient) -> dict:
    return await get(client, EID, "?options=sysAttrs")


async def test_replace_entity(client: TestClient) -> None:
    await create(client, ROOM)
    before = await _sys(client)
    rec = Recorder(client)
    new = {"id": EID, "type": "Office", "temperature": 19, "door": {"type": "Property", "value": "open"}}
    resp = await send(client, "PUT", url(EID), new)
    assert resp.status == 204, await resp.text()
    after = await _sys(client)
    assert after["createdAt"] == before["createdAt"] and after["modifiedAt"] > before["modifiedAt"]
    assert after["temperature"]["createdAt"] == before["temperature"]["createdAt"]
    assert await get(client, EID, "?options=keyValues") == {"id": EID, "type": "Office", "temperature": 19,
                                                            "door": "open"}
    [event] = rec.take()
    assert event.kind == "update"
    assert names(event.created) == {"door"} and names(event.updated) == {"temperature"}
    assert names(event.deleted) == {"humidity", "isIn"}
    # id in the body must match; type may be left out (kept)
    resp = await send(client, "PUT", url(EID), {"id": "urn:ngsi-ld:Room:2", "type": "Room"})
    await problem(resp, 400, "BadRequestData")
    resp = await send(client, "PUT", url(EID), {"temperature": 5})
    assert resp.status == 204
    assert await get(client, EID, "?options=keyValues") == {"id": EID, "type": "Office", "temperature": 5}
    resp = await send(client, "PUT", url("urn:ngsi-ld:Room:404"), {**new, "id": "urn:ngsi-ld:Room:404"})
    await problem(resp, 404, "ResourceNotFound")
    resp = await send(client, "PUT", url(EID), {"temperature": NULL})
    await problem(resp, 400, "BadRequestData")
    assert len(rec.take()) == 1 and rec.calls == []


async def test_merge_entity(client: TestClient) -> None:
    await create(client, ROOM)
    before = await _sys(client)
    rec = Recorder(client)
    patch = {"temperature": {"value": 22, "accuracy": NULL, "observedAt": "2024-01-01T00:00:00Z"},
             "isIn": NULL, "pressure": 1013, "type": "Office", "scope": NULL}
    for ctype in ("application/json", "application/merge-patch+json"):
        resp = await send(client, "PATCH", url(EID), patch, ctype)
        assert resp.status == 204, await resp.text()
    got = await get(client, EID)
    assert got["type"] == ["Room", "Office"] and "scope" not in got and "isIn" not in got
    assert got["temperature"] == {"type": "Property", "value": 22, "unitCode": "CEL",
                                  "observedAt": "2024-01-01T00:00:00.000Z",
                                  "source": {"type": "Property", "value": "sensor"}}
    assert got["pressure"] == {"type": "Property", "value": 1013}
    assert got["humidity"] == ROOM["humidity"]
    after = await _sys(client)
    assert after["temperature"]["createdAt"] == before["temperature"]["createdAt"]
    assert after["temperature"]["modifiedAt"] > before["temperature"]["modifiedAt"]
    first, second = rec.take()
    assert names(first.created) == {"pressure"} and names(first.deleted) == {"isIn"}
    assert names(first.updated) == {"temperature"}
    assert names(second.updated) == {"temperature", "pressure"} and not second.created
    # delete one datasetId instance by merge; JSON-LD body
    patch = {"humidity": {"datasetId": "urn:ngsi-ld:Dataset:b", "value": NULL},
             "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"}
    resp = await send(client, "PATCH", url(EID), patch, "application/ld+json")
    assert resp.status == 204, await resp.text()
    assert (await get(client, EID))["humidity"] == {"type": "Property", "value": 40}
    [event] = rec.take()
    assert names(event.updated) == {"humidity"}


async def test_merge_errors_change_nothing(client: TestClient) -> None:
    await create(client, ROOM)
    rec = Recorder(client)
    bad = [
        ({"id": "urn:ngsi-ld:Room:2", "temperature": 1}, 400, "BadRequestData"),
        ({"temperature": 1, "brandNew": {"observedAt": "2024-01-01T00:00:00Z"}}, 400, "BadRequestData"),
        ({"temperature": {"type": "Relationship", "object": "not a uri"}}, 400, "BadRequestData"),
        ({"temperature": None}, 400, "BadRequestData"),
        ({}, 400, "BadRequestData"),
    ]
    for body, status, kind in bad:
        resp = await send(client, "PATCH", url(EID), body)
        await problem(resp, status, kind)
    resp = await send(client, "PATCH", url(EID), {"temperature": 1}, "text/plain")
    await problem(resp, 415, "UnsupportedMediaType")
    resp = await send(client, "PATCH", url("urn:ngsi-ld:Room:404"), {"temperature": 1})
    await problem(resp, 404, "ResourceNotFound")
    resp = await send(client, "PATCH", url("not-a-uri"), {"temperature": 1})
    await problem(resp, 400, "BadRequestData")
    assert await get(client, EID) == {**ROOM}
    assert rec.events == []


async def test_append_attrs(client: TestClient) -> None:
    await create(client, ROOM)
    before = await _sys(client)
    rec = Recorder(client)
    resp = await send(client, "POST", url(EID, "attrs"), {"temperature": 30, "co2": {"value": 400}})
    assert resp.status == 204, await resp.text()
    got = await get(client, EID)
    assert got["temperature"] == {"type": "Property", "value": 30} and got["co2"]["value"] == 400
    after = await _sys(client)
    assert after["temperature"]["createdAt"] == before["temperature"]["createdAt"]
    [event] = rec.take()
    assert names(event.created) == {"co2"} and names(event.updated) == {"temperature"}
    # noOverwrite: existing ones are kept and reported
    body = {"temperature": 99, "noise": 50,
            "humidity": {"type": "Property", "value": 7, "datasetId": "urn:ngsi-ld:Dataset:c"}}
    resp = await send(client, "POST", url(EID, "attrs") + "?options=noOverwrite", body)
    assert resp.status == 207
    # attributes are listed by expanded IRI, as the ETSI suite expects (010_04_01)
    assert await resp.json() == {"updated": [V + "noise", V + "humidity"], "notUpdated": [
        {"attributeName": V + "temperature", "reason": "Attribute exists and noOverwrite was requested"}]}
    got = await get(client, EID, "?options=keyValues")
    assert got["temperature"] == 30 and got["noise"] == 50 and got["humidity"] == {"dataset": {
        "@none": 40, "urn:ngsi-ld:Dataset:b": 41, "urn:ngsi-ld:Dataset:c": 7}}
    [event] = rec.take()
    assert names(event.created) == {"noise"} and names(event.updated) == {"humidity"}
    # nothing new at all: 207, no write, no event
    resp = await send(client, "POST", url(EID, "attrs") + "?options=noOverwrite", {"noise": 1})
    assert resp.status == 207
    assert rec.take() == []
    # append a type
    resp = await send(client, "POST", url(EID, "attrs"), {"type": "Office"})
    assert resp.status == 204
    assert (await get(client, EID))["type"] == ["Room", "Office"]


async def test_append_and_update_errors(client: TestClient) -> None:
    await create(client, ROOM)
    rec = Recorder(client)
    for method in ("POST", "PATCH"):
        path = url(EID, "attrs")
        await problem(await send(client, method, path, {"temperature": NULL} if method == "POST" else {}),
                      400, "BadRequestData")
        await problem(await send(client, method, path, [1, 2]), 400, "InvalidRequest")
        await problem(await send(client, method, path, {"good": 1, "bad=name": 2}), 400, "BadRequestData")
        await problem(await send(client, method, path, {"t": {"type": "Property"}}), 400, "BadRequestData")
        await problem(await send(client, method, path, {"id": "urn:x:other", "t": 1}), 400, "BadRequestData")
        await problem(await send(client, method, url("urn:ngsi-ld:Room:404", "attrs"), {"temperature": 1}),
                      404, "ResourceNotFound")
        await problem(await send(client, method, path, {"t": 1}, "text/plain"), 415, "UnsupportedMediaType")
    await problem(await send(client, "POST", url(EID, "attrs") + "?options=bogus", {"t": 1}),
                  400, "InvalidRequest")
    assert await get(client, EID) == ROOM
    assert rec.events == []


async def test_update_attrs(client: TestClient) -> None:
    await create(client, ROOM)
    rec = Recorder(client)
    body = {"temperature": {"type": "Property", "value": 25}, "nothere": 1,
            "humidity": {"type": "Property", "value": 45, "datasetId": "urn:ngsi-ld:Dataset:b"}}
    resp = await send(client, "PATCH", url(EID, "attrs"), body)
    # existing attributes are replaced, missing ones appended (ETSI 011_01_03): 204
    assert resp.status == 204
    got = await get(client, EID)
    assert got["temperature"] == {"type": "Property", "value": 25}  # replaced, sub-attributes gone
    assert got["humidity"][1]["value"] == 45 and got["nothere"] == {"type": "Property", "value": 1}
    [event] = rec.take()
    assert names(event.updated) == {"temperature", "humidity"} and names(event.created) == {"nothere"}
    resp = await send(client, "PATCH", url(EID, "attrs"), {"temperature": 26})
    assert resp.status == 204
    resp = await send(client, "PATCH", url(EID, "attrs"),
                      {"humidity": {"value": 1, "datasetId": "urn:ngsi-ld:Dataset:zzz"}})
    assert resp.status == 204  # a new datasetId instance is appended
    assert len((await get(client, EID))["humidity"]) == 3
    # an NGSI-LD Null for what does not exist is reported, and changes nothing
    resp = await send(client, "PATCH", url(EID, "attrs"), {"ghost": NULL, "temperature": 27})
    assert resp.status == 207
    assert await resp.json() == {"updated": [V + "temperature"],
                                 "notUpdated": [{"attributeName": V + "ghost", "reason": "Attribute does not exist"}]}
    rec.take()
    # urn:ngsi-ld:null deletes
    resp = await send(client, "PATCH", url(EID, "attrs"), {"isIn": NULL})
    assert resp.status == 204
    assert "isIn" not in await get(client, EID)
    [event] = rec.take()
    assert names(event.deleted) == {"isIn"}


async def test_retrieve_attribute(client: TestClient) -> None:
    await create(client, ROOM)
    resp = await client.get(url(EID, "attrs", "temperature"))
    assert resp.status == 200
    assert await resp.json() == ROOM["temperature"]
    resp = await client.get(url(EID, "attrs", "temperature") + "?options=keyValues")
    assert await resp.json() == 21.5
    resp = await client.get(url(EID, "attrs", "humidity") + "?options=concise")
    assert await resp.json() == [40, {"value": 41, "datasetId": "urn:ngsi-ld:Dataset:b"}]
    resp = await client.get(url(EID, "attrs", "humidity") + "?datasetId=urn:ngsi-ld:Dataset:b")
    assert (await resp.json())["value"] == 41
    resp = await client.get(url(EID, "attrs", "temperature"), headers={"Accept": "application/ld+json"})
    body = await resp.json(content_type=None)
    assert "@context" in body and body["value"] == 21.5
    await problem(await client.get(url(EID, "attrs", "nothere")), 404, "ResourceNotFound")
    await problem(await client.get(url("urn:ngsi-ld:Room:404", "attrs", "temperature")), 404, "ResourceNotFound")
    await problem(await client.get(url(EID, "attrs", "humidity") + "?datasetId=urn:x:none"),
                  404, "ResourceNotFound")


async def test_partial_attribute_update(client: TestClient) -> None:
    await create(client, ROOM)
    before = await _sys(client)
    rec = Recorder(client)
    resp = await send(client, "PATCH", url(EID, "attrs", "temperature"),
                      {"value": 23, "accuracy": 0.2, "source": NULL, "calibrated": {"type": "Property", "value": True}})
    assert resp.status == 204, await resp.text()
    got = await get(client, EID)
    assert got["temperature"] == {"type": "Property", "value": 23, "unitCode": "CEL",
                                  "accuracy": {"type": "Property", "value": 0.2},
                                  "calibrated": {"type": "Property", "value": True}}
    after = await _sys(client)
    assert after["temperature"]["createdAt"] == before["temperature"]["createdAt"]
    assert after["temperature"]["accuracy"]["createdAt"] == before["temperature"]["accuracy"]["createdAt"]
    [event] = rec.take()
    assert names(event.updated) == {"temperature"}
    # metadata only keeps the value; datasetId picks the instance
    resp = await send(client, "PATCH", url(EID, "attrs", "temperature"), {"observedAt": "2024-02-02T00:00:00Z"})
    assert resp.status == 204
    assert (await get(client, EID))["temperature"]["value"] == 23
    resp = await send(client, "PATCH", url(EID, "attrs", "humidity"),
                      {"value": 50, "datasetId": "urn:ngsi-ld:Dataset:b"})
    assert resp.status == 204
    assert (await get(client, EID, "?options=keyValues"))["humidity"] == {"dataset": {
        "@none": 40, "urn:ngsi-ld:Dataset:b": 50}}
    # errors
    for path, body, status, kind in [
        (url(EID, "attrs", "nothere"), {"value": 1}, 404, "ResourceNotFound"),
        (url(EID, "attrs", "humidity"), {"value": 1, "datasetId": "urn:x:none"}, 404, "ResourceNotFound"),
        (url("urn:ngsi-ld:Room:404", "attrs", "temperature"), {"value": 1}, 404, "ResourceNotFound"),
        (url(EID, "attrs", "temperature"), {}, 400, "BadRequestData"),
        (url(EID, "attrs", "temperature"), [1], 400, "BadRequestData"),
        (url(EID, "attrs", "temperature"), {"value": None}, 400, "BadRequestData"),
        (url(EID, "attrs", "isIn"), {"object": "not a uri"}, 400, "BadRequestData"),
    ]:
        await problem(await send(client, "PATCH", path, body), status, kind)
    rec.take()
    # value null deletes that instance
    resp = await send(client, "PATCH", url(EID, "attrs", "humidity"),
                      {"value": NULL, "datasetId": "urn:ngsi-ld:Dataset:b"})
    assert resp.status == 204
    assert (await get(client, EID, "?options=keyValues"))["humidity"] == 40


async def test_replace_attribute(client: TestClient) -> None:
    await create(client, ROOM)
    before = await _sys(client)
    rec = Recorder(client)
    resp = await send(client, "PUT", url(EID, "attrs", "temperature"), {"type": "Property", "value": 18})
    assert resp.status == 204, await resp.text()
    assert (await get(client, EID))["temperature"] == {"type": "Property", "value": 18}
    after = await _sys(client)
    assert after["temperature"]["createdAt"] == before["temperature"]["createdAt"]
    [event] = rec.take()
    assert names(event.updated) == {"temperature"}
    resp = await send(client, "PUT", url(EID, "attrs", "isIn"), {"type": "Relationship", "object": "urn:x:B"})
    assert resp.status == 204
    await problem(await send(client, "PUT", url(EID, "attrs", "nothere"), {"value": 1}), 404, "ResourceNotFound")
    await problem(await send(client, "PUT", url(EID, "attrs", "temperature"), {"type": "Property"}),
                  400, "BadRequestData")
    await problem(await send(client, "PUT", url(EID, "attrs", "temperature"), {"value": NULL}),
                  400, "BadRequestData")
    assert (await get(client, EID))["temperature"] == {"type": "Property", "value": 18}


async def test_delete_attribute(client: TestClient) -> None:
    await create(client, ROOM)
    rec = Recorder(client)
    resp = await client.delete(url(EID, "attrs", "humidity") + "?datasetId=urn:ngsi-ld:Dataset:b")
    assert resp.status == 204
    assert (await get(client, EID))["humidity"] == {"type": "Property", "value": 40}
    [event] = rec.take()
    assert names(event.updated) == {"humidity"} and not event.deleted
    await problem(await client.delete(url(EID, "attrs", "humidity") + "?datasetId=urn:ngsi-ld:Dataset:b"),
                  404, "ResourceNotFound")
    resp = await client.delete(url(EID, "attrs", "humidity"))
    assert resp.status == 204
    assert "humidity" not in await get(client, EID)
    [event] = rec.take()
    assert names(event.deleted) == {"humidity"}
    await send(client, "POST", url(EID, "attrs"), {"speed": [{"value": 1, "datasetId": "urn:x:a"},
                                                             {"value": 2, "datasetId": "urn:x:b"}]})
    await problem(await client.delete(url(EID, "attrs", "speed")), 404, "ResourceNotFound")  # no default
    resp = await client.delete(url(EID, "attrs", "speed") + "?deleteAll=true")
    assert resp.status == 204
    assert "speed" not in await get(client, EID)
    await problem(await client.delete(url(EID, "attrs", "nothere")), 404, "ResourceNotFound")
    await problem(await client.delete(url("urn:ngsi-ld:Room:404", "attrs", "temperature")),
                  404, "ResourceNotFound")
    await problem(await client.delete(url(EID, "attrs", "temperature") + "?datasetId=bad id"),
                  400, "BadRequestData")
    await problem(await client.delete(url(EID, "attrs", "temperature") + "?deleteAll=maybe"),
                  400, "BadRequestData")
    assert (await get(client, EID))["temperature"] == ROOM["temperature"]


async def test_create_and_delete_events_and_null_rejected(client: TestClient) -> None:
    rec = Recorder(client)
    await create(client, ROOM)
    resp = await client.delete(url(EID))
    assert resp.status == 204
    created, deleted = rec.take()
    assert created.kind == "create" and names(created.created) == {"temperature", "humidity", "isIn"}
    assert deleted.kind == "delete" and names(deleted.deleted) == {"temperature", "humidity", "isIn"}
    for bad in ({**ROOM, "temperature": NULL}, {**ROOM, "temperature": {"value": NULL}},
                {**ROOM, "scope": "no-slash"}, {**ROOM, "type": []}, {**ROOM, "x": {"type": "Nope", "value": 1}}):
        await problem(await send(client, "POST", "/ngsi-ld/v1/entities", bad), 400, "BadRequestData")
    await problem(await client.get(url(EID)), 404, "ResourceNotFound")
    assert rec.events == []
