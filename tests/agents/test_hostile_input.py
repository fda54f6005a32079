"""Malformed and hostile input on the agents' ports, found by fuzzing: the lib's {name, message} bodies
with 4xx statuses, never a 500, and a refused provisioning request writes nothing (on both stores)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tests.agents.conftest import APIKEY, HEADERS, SERVICE, Stack

JSON = {"Content-Type": "application/json"}


async def test_provisioning_refuses_deep_json_odd_services_and_huge_integers(stack: Stack) -> None:
    deep = b'{"groups": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for path in ("/iot/groups", "/iot/devices"):
        status, body = await stack.call("POST", stack.north + path, data=deep, headers={**HEADERS, **JSON})
        assert status == 400 and body["name"] == "WRONG_SYNTAX", body
    # the service is the tenant (a MongoDB database name): the NGSI-LD tenant rule applies
    for service in ("$x", "../x", "a b", "x.y", "ä", "a" * 49):
        status, body = await stack.call("GET", stack.north + "/iot/devices",
                                        headers={"fiware-service": service, "fiware-servicepath": "/"})
        assert status == 400 and body["name"] == "WRONG_SYNTAX", (service, body)
    # an integer past 64 bits fails its group / device, and the whole request writes nothing
    good = {"apikey": APIKEY, "entity_type": "Thing", "resource": "/iot/json"}
    bad = {"apikey": "other", "entity_type": "Thing", "resource": "/iot/json",
           "static_attributes": [{"name": "a", "type": "Number", "value": 2**64 - 1}]}
    status, body = await stack.call("POST", stack.north + "/iot/groups", json={"groups": [good, bad]},
                                    headers=HEADERS)
    if status == 201:  # the embedded store holds any integer
        status, body = await stack.call("GET", stack.north + "/iot/groups", headers=HEADERS)
        assert body["count"] == 2
        return
    assert status == 400 and body["name"] == "WRONG_SYNTAX", body
    status, body = await stack.call("GET", stack.north + "/iot/groups", headers=HEADERS)
    assert body["count"] == 0
    # no uniqueness key was left behind: the same groups without the bad value are created
    bad["static_attributes"][0]["value"] = 1  # type: ignore[index]
    status, body = await stack.call("POST", stack.north + "/iot/groups", json={"groups": [good, bad]},
                                    headers=HEADERS)
    assert status == 201, body
    devices = [{"device_id": "d1", "entity_name": "urn:ngsi-ld:Thing:d1", "entity_type": "Thing"},
               {"device_id": "d2", "entity_name": "urn:ngsi-ld:Thing:d2", "entity_type": "Thing",
                "static_attributes": [{"name": "a", "type": "Number", "value": 2**64 - 1}]}]
    status, body = await stack.call("POST", stack.north + "/iot/devices", json={"devices": devices},
                                    headers=HEADERS)
    assert status == 400 and body["name"] == "WRONG_SYNTAX", body
    status, body = await stack.call("GET", stack.north + "/iot/devices", headers=HEADERS)
    assert body["count"] == 0


async def test_south_refuses_deep_json_invalid_utf8_and_infinite_numbers(stack: Stack) -> None:
    await stack.provision_group()
    await stack.provision_devices({"device_id": "s1", "entity_name": "urn:ngsi-ld:Thing:s1", "entity_type": "Thing"})
    url = f"{stack.south}/iot/json?k={APIKEY}&i=s1"
    status, _ = await stack.call("POST", url, json={"t": 1})
    assert status == 200
    for payload in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b'{"t": 1e999}',
                    b'{"t": -1e999}', b"\xff\xfe"):
        status, body = await stack.call("POST", url, data=payload, headers=JSON)
        assert status == 400 and body["name"] == "PARSE_ERROR", (payload[:20], body)
    # an integer past 64 bits is refused on both stores, as the NGSI-LD API refuses it (MongoDB holds none)
    status, body = await stack.call("POST", url, data=b'{"t": 18446744073709551615}', headers=JSON)
    assert status == 400 and body["name"] == "WRONG_SYNTAX", body
    for path in ("/iot/d", "/iot/json/commands"):
        status, body = await stack.call("POST", f"{stack.south}{path}?k={APIKEY}&i=s1", data=b"\xff\xfe",
                                        headers={"Content-Type": "text/plain"})
        assert status == 400 and body["name"] == "PARSE_ERROR", (path, body)
    # a NUL in a key of a measure's value is data, kept as such by both stores
    status, body = await stack.call("POST", url, data=b'{"t": {"k\\u0000": 2}}', headers=JSON)
    assert status == 200, body
    status, entity = await stack.entity("urn:ngsi-ld:Thing:s1", SERVICE)
    assert entity["t"]["value"] == {"k\x00": 2}


async def _raw(url: str, head: bytes) -> bytes:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_too_long_request_lines_answer_like_the_lib(stack: Stack) -> None:
    for base in (stack.north, stack.south):
        data = await _raw(base, b"GET /iot/devices?x=" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split()[1] == b"414", head
        assert b'"name": "BAD_REQUEST"' in body


async def test_bodies_over_the_limit_answer_413_like_the_lib_and_the_ports_keep_serving(stack: Stack) -> None:
    big = b'{"t": "' + b"x" * (3 * 1024 * 1024) + b'"}'  # over the 2 MiB default body limit
    for url in (f"{stack.north}/iot/devices", f"{stack.south}/iot/json?k={APIKEY}&i=big"):
        status, body = await stack.call("POST", url, data=big, headers={**JSON, **HEADERS})
        assert status == 413, body
        assert set(body) == {"name", "message"}, body
    status, body = await stack.call("GET", f"{stack.north}/iot/about")
    assert status == 200 and "libVersion" in body, body
