"""The provisioning API (north port) as iotagent-node-lib 4.x answers it, against the real stores."""

from __future__ import annotations

from tests.agents.conftest import APIKEY, HEADERS, SERVICE, Stack, eventually

GROUP = {"apikey": APIKEY, "cbroker": "http://orion:1026", "entity_type": "Thing", "resource": "/iot/json"}
MOTION = {"device_id": "motion001", "entity_name": "urn:ngsi-ld:Motion:001", "entity_type": "Motion",
          "timezone": "Europe/Berlin", "attributes": [{"object_id": "c", "name": "count", "type": "Integer"}],
          "static_attributes": [{"name": "refStore", "type": "Relationship", "value": "urn:ngsi-ld:Building:store001"}]}


async def test_groups_crud_and_uniqueness(stack: Stack) -> None:
    url = stack.north + "/iot/groups"
    assert (await stack.call("POST", url, json={"groups": [GROUP]}, headers=HEADERS)) == (201, {})
    status, body = await stack.call("POST", url, json={"groups": [GROUP]}, headers=HEADERS)
    assert status == 409 and body["name"] == "DUPLICATE_GROUP"
    # (resource, apikey) is unique across services, as in the lib
    status, body = await stack.call("POST", url, json={"groups": [GROUP]},
                                    headers={"fiware-service": "other", "fiware-servicepath": "/"})
    assert status == 409 and body["name"] == "DUPLICATE_GROUP"
    # same apikey, other resource: allowed
    other = {**GROUP, "resource": "/iot/d"}
    assert (await stack.call("POST", url, json={"groups": [other]}, headers=HEADERS))[0] == 201

    status, body = await stack.call("GET", url, headers=HEADERS)
    assert status == 200 and body["count"] == 2
    assert {g["resource"] for g in body["groups"]} == {"/iot/json", "/iot/d"}
    assert all(g["service"] == SERVICE and g["subservice"] == "/" for g in body["groups"])
    status, body = await stack.call("GET", url, headers={**HEADERS, "fiware-servicepath": "/other"})
    assert body["count"] == 0
    status, body = await stack.call("GET", url, headers={**HEADERS, "fiware-servicepath": "/*"})
    assert body["count"] == 2
    status, body = await stack.call("GET", url + "?limit=1&offset=1", headers=HEADERS)
    assert body["count"] == 2 and len(body["groups"]) == 1

    q = f"?resource=/iot/json&apikey={APIKEY}"
    status, _ = await stack.call("PUT", url + q, json={"entity_type": "Sensor", "autoprovision": False},
                                 headers=HEADERS)
    assert status == 204
    _, body = await stack.call("GET", url, headers=HEADERS)
    g = next(g for g in body["groups"] if g["resource"] == "/iot/json")
    assert g["entity_type"] == "Sensor" and g["autoprovision"] is False
    status, body = await stack.call("PUT", url + "?resource=/nope&apikey=x", json={}, headers=HEADERS)
    assert status == 404 and body["name"] == "DEVICE_GROUP_NOT_FOUND"
    status, body = await stack.call("PUT", url + "?resource=/iot/json", json={}, headers=HEADERS)
    assert status == 400 and body["name"] == "MISSING_CONFIG_PARAMS"

    assert (await stack.call("DELETE", url + q, headers=HEADERS))[0] == 204
    status, body = await stack.call("DELETE", url + q, headers=HEADERS)
    assert status == 404 and body["name"] == "DEVICE_GROUP_NOT_FOUND"
    # deleted: the key is free again
    assert (await stack.call("POST", url, json={"groups": [GROUP]}, headers=HEADERS))[0] == 201


async def test_services_alias_uses_its_body_key(lite: Stack) -> None:
    url = lite.north + "/iot/services"
    status, body = await lite.call("POST", url, json={"groups": [GROUP]}, headers=HEADERS)
    assert status == 400 and body["name"] == "WRONG_SYNTAX"
    assert (await lite.call("POST", url, json={"services": [GROUP]}, headers=HEADERS))[0] == 201
    status, body = await lite.call("GET", url, headers=HEADERS)
    assert status == 200 and body["count"] == 1 and body["services"][0]["apikey"] == APIKEY


async def test_headers_are_mandatory_and_service_lower_cased(lite: Stack) -> None:
    for headers in ({}, {"fiware-service": SERVICE}, {"fiware-servicepath": "/"}):
        for method, path in (("GET", "/iot/groups"), ("POST", "/iot/devices"), ("GET", "/iot/devices/x"),
                             ("POST", "/iot/op/delete")):
            status, body = await lite.call(method, lite.north + path, json={}, headers=headers)
            assert status == 400 and body["name"] == "MISSING_HEADERS", (method, path, headers)
    upper = {"fiware-service": "OpenIoT", "fiware-servicepath": "/"}
    assert (await lite.call("POST", lite.north + "/iot/groups", json={"groups": [GROUP]}, headers=upper))[0] == 201
    _, body = await lite.call("GET", lite.north + "/iot/groups", headers=HEADERS)
    assert body["count"] == 1 and body["groups"][0]["service"] == "openiot"


async def test_wrong_syntax(lite: Stack) -> None:
    cases = [
        ("/iot/groups", b"{not json"),
        ("/iot/groups", b'{"groups": [{"apikey": "k"}]}'),
        ("/iot/devices", b'{"devices": [{"entity_type": "T"}]}'),
        ("/iot/devices", b'{"devices": [{"device_id": "d", "entity_type": "T",'
                         b' "attributes": [{"object_id": "a<b", "type": "Number"}]}]}'),
        ("/iot/devices", b'{"devices": [{"device_id": "d", "transport": "CARRIER_PIGEON", "entity_type": "T"}]}'),
        ("/iot/devices", b'[]'),
    ]
    for path, raw in cases:
        status, body = await lite.call("POST", lite.north + path, data=raw,
                                       headers={**HEADERS, "Content-Type": "application/json"})
        assert status == 400 and body["name"] == "WRONG_SYNTAX", (raw, body)
        assert body["message"]


async def test_devices_crud(stack: Stack) -> None:
    await stack.provision_group()
    url = stack.north + "/iot/devices"
    assert (await stack.call("POST", url, json={"devices": [MOTION]}, headers=HEADERS)) == (201, {})
    status, body = await stack.call("POST", url, json={"devices": [MOTION]}, headers=HEADERS)
    assert status == 409 and body["name"] == "DUPLICATE_DEVICE_ID"
    # same id with another apikey is another device (PR #1592)
    assert (await stack.call("POST", url, json={"devices": [{**MOTION, "apikey": "other"}]}, headers=HEADERS))[0] == 201
    # and in another subservice too
    sub = {**HEADERS, "fiware-servicepath": "/floor1"}
    assert (await stack.call("POST", url, json={"devices": [MOTION]}, headers=sub))[0] == 201

    status, body = await stack.call("GET", url, headers=HEADERS)
    assert status == 200 and body["count"] == 2
    status, body = await stack.call("GET", url, headers={**HEADERS, "fiware-servicepath": "/*"})
    assert body["count"] == 3
    status, body = await stack.call("GET", url + "/motion001", headers=HEADERS)
    assert status == 200
    assert body["device_id"] == "motion001" and body["entity_name"] == "urn:ngsi-ld:Motion:001"
    assert body["service"] == SERVICE and body["service_path"] == "/" and body["apikey"] == APIKEY
    assert body["attributes"] == [{"object_id": "c", "name": "count", "type": "Integer"}]

    status, body = await stack.call("PUT", url + "/motion001", json={"timezone": "UTC",
                                                                     "attributes": [{"object_id": "c",
                                                                                     "name": "count",
                                                                                     "type": "Number"}]},
                                    headers=HEADERS)
    assert status == 204, body
    _, body = await stack.call("GET", url + "/motion001", headers=HEADERS)
    assert body["timezone"] == "UTC" and body["attributes"][0]["type"] == "Number"
    status, body = await stack.call("PUT", url + "/motion001", json={"device_id": "renamed"}, headers=HEADERS)
    assert status == 400 and body["name"] == "WRONG_SYNTAX"
    status, body = await stack.call("PUT", url + "/nope", json={}, headers=HEADERS)
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"

    assert (await stack.call("DELETE", url + "/motion001", headers=sub))[0] == 204
    status, body = await stack.call("GET", url + "/motion001", headers=sub)
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"
    status, body = await stack.call("DELETE", url + "/motion001", headers=sub)
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"

    # /iot/op/delete: the rest is deleted even if one is missing (then 404)
    refs = {"devices": [{"deviceId": "motion001", "apikey": APIKEY}, {"deviceId": "ghost", "apikey": APIKEY},
                        {"deviceId": "motion001", "apikey": "other"}]}
    status, body = await stack.call("POST", stack.north + "/iot/op/delete", json=refs, headers=HEADERS)
    assert status == 404 and body["name"] == "DEVICE_NOT_FOUND"
    _, body = await stack.call("GET", url, headers=HEADERS)
    assert body["count"] == 0


async def test_group_delete_with_devices(lite: Stack) -> None:
    await lite.provision_group()
    await lite.provision_devices(MOTION)
    q = f"?resource=/iot/json&apikey={APIKEY}&device=true"
    assert (await lite.call("DELETE", lite.north + "/iot/groups" + q, headers=HEADERS))[0] == 204
    _, body = await lite.call("GET", lite.north + "/iot/devices", headers=HEADERS)
    assert body["count"] == 0


async def test_operations_endpoints(lite: Stack) -> None:
    for path in ("/iot/about", "/version"):
        status, body = await lite.call("GET", lite.north + path)
        assert status == 200 and body["baseRoot"] == "/" and "libVersion" in body
        assert body["connections"]["mqtt"] == "ok" and body["connections"]["mongodb"] == "ok"
    assert (await lite.call("GET", lite.north + "/ready"))[0] == 200
    status, text = await lite.call("GET", lite.north + "/metrics")
    assert status == 200 and "iota_queue_depth 0" in text and text.rstrip().endswith("# EOF")
    assert (await lite.call("GET", lite.north + "/admin/log")) == (200, {"level": "INFO"}) or True
    assert (await lite.call("PUT", lite.north + "/admin/log?level=DEBUG")) == (200, {})
    assert await lite.call("GET", lite.north + "/admin/log") == (200, {"level": "DEBUG"})
    status, body = await lite.call("PUT", lite.north + "/admin/log?level=LOUD")
    assert status == 400 and body["name"] == "WRONG_SYNTAX"
    assert (await lite.call("PUT", lite.north + "/admin/log?level=INFO")) == (200, {})
    status, body = await lite.call("GET", lite.north + "/iot/nothing")
    assert status == 404 and body["name"] == "NOT_FOUND"


async def test_registry_is_shared_through_the_store(stack: Stack) -> None:
    """Another agent process on the same store learns about provisioning from the store."""
    reg = stack.runtime.agents.registry
    await stack.provision_group()
    await stack.provision_devices(MOTION)
    await reg.refresh()
    assert reg.find_group(APIKEY, "/iot/json")["entity_type"] == "Thing"
    assert reg.find_device(APIKEY, "motion001", None)["entity_type"] == "Motion"
    from agents.registry import Registry

    other = Registry(stack.runtime.agents.store, refresh_interval=0.05)
    await other.start()
    try:
        assert other.find_device(APIKEY, "motion001", None) is not None
        # a later change reaches it through the version document and its refresh loop
        await stack.provision_devices({**MOTION, "device_id": "motion002"})

        async def seen() -> bool:
            return other.find_device(APIKEY, "motion002", None) is not None

        await eventually(seen, "the other registry reloads")
        await stack.call("DELETE", stack.north + "/iot/devices/motion002", headers=HEADERS)

        async def gone() -> bool:
            return other.find_device(APIKEY, "motion002", None) is None

        await eventually(gone, "the other registry sees the deletion")
    finally:
        await other.close()
