"""Malformed and hostile input found by fuzzing: every one is a 4xx problem, never a 500, and a refused
write changes nothing (on both stores)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp.test_utils import TestClient

from broker.api.middleware import MAX_HEADER_BYTES, MAX_LINE_BYTES
from broker.api.server import BrokerRunner
from broker.app import create_app
from tests.conftest import test_settings as settings_for_tests
from tests.entities.helpers import ENTITIES, Recorder, create, get, problem, send, url
from tests.jsonld.context_server import ContextServer

EID = "urn:ngsi-ld:Room:1"
OPS = "/ngsi-ld/v1/entityOperations"
ROOM = {"id": EID, "type": "Room", "temperature": {"type": "Property", "value": 21},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}}


async def test_unhashable_json_where_a_name_is_expected(client: TestClient) -> None:
    """Objects and arrays where a type or name string belongs are a 400 (they raised TypeError)."""
    await create(client, ROOM)
    before = await get(client, EID)
    rec = Recorder(client)
    bad_entities: list[dict[str, Any]] = [
        {"id": "urn:ngsi-ld:Room:2", "type": {}},
        {"id": "urn:ngsi-ld:Room:2", "type": [["Room"]]},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room", "a": {"type": {"x": 1}, "value": 1}},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room", "a": {"type": [], "value": 1}},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room", "a": {"value": {"type": ["Point"], "coordinates": 1},
                                                            "observedAt": {}}},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room",
         "a": {"type": "Relationship", "object": "urn:a:b", "objectType": {"x": 1}}},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room", "a": {"type": "GeoProperty", "value": {"type": {}, "coordinates": []}}},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room", "a": {"type": "GeoProperty", "value": {"type": ["Point"]}}},
        {"id": "urn:ngsi-ld:Room:2", "type": "Room",
         "a": {"type": "Relationship", "object": "urn:a:b", "objectType": [None]}},
    ]
    for body in bad_entities:
        await problem(await send(client, "POST", ENTITIES, body), 400, "BadRequestData")
        resp = await send(client, "POST", f"{OPS}/create", [body])
        assert resp.status == 207, await resp.text()
        assert (await resp.json())["errors"][0]["error"]["status"] == 400
    assert (await client.get(url("urn:ngsi-ld:Room:2"))).status == 404
    for method, path, body in (
            ("PATCH", url(EID), {"type": {}}),
            ("PATCH", url(EID), {"temperature": {"observedAt": "2026-01-01T00:00:00Z", "x": {"type": {}}}}),
            ("PATCH", url(EID), {"temperature": {"x": {"type": [], "value": 1}}}),
            ("PATCH", url(EID, "attrs", "temperature"), {"type": {"a": 1}, "value": 3}),
            ("PATCH", url(EID, "attrs", "temperature"), {"type": "GeoProperty", "value": {"type": {}}}),
            ("PUT", url(EID, "attrs", "temperature"), {"type": [1], "value": 3}),
            ("POST", url(EID, "attrs"), {"temperature": {"type": {}, "value": 3}}),
            ("PATCH", url(EID, "attrs"), {"temperature": {"type": [], "value": 3}})):
        resp = await send(client, method, path, body, "application/merge-patch+json" if method == "PATCH"
                          and path == url(EID) else "application/json")
        await problem(resp, 400, "BadRequestData")
    for op in ("update", "merge", "upsert"):
        resp = await send(client, "POST", f"{OPS}/{op}", [{"id": EID, "type": "Room",
                                                          "temperature": {"type": {"x": 1}, "value": 1}}])
        assert resp.status == 207, await resp.text()
    assert rec.events == []
    assert await get(client, EID) == before


async def test_oversized_numbers_and_deep_nesting_in_queries(client: TestClient) -> None:
    await create(client, ROOM)
    for query in ("type=Room&q=temperature==" + "1" * 5000,
                  "type=Room&georel=intersects&geometry=Point&coordinates=" + "[" * 1100 + "]" * 1100,
                  "type=Room&georel=intersects&geometry=Point&coordinates=" + "[" * 6 + "1,2" + "]" * 6,
                  "type=Room&pick=" + "owner{" * 20 + "id" + "}" * 20,
                  "type=Room&omit=" + "owner{" * 20 + "id" + "}" * 20):
        await problem(await client.get(f"{ENTITIES}?{query}"), 400, "BadRequestData")
        if "pick" not in query and "omit" not in query:
            await problem(await client.delete(f"{ENTITIES}?{query}"), 400, "BadRequestData")
    deep = "[" * 1000 + "1,2" + "]" * 1000  # deeper than Python's recursion limit, within orjson's
    body = ('{"type": "Query", "entities": [{"type": "Room"}], '
            f'"geoQ": {{"georel": "intersects", "geometry": "Point", "coordinates": {deep}}}}}')
    resp = await client.post(f"{OPS}/query", data=body, headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    # nesting within the limits still works
    resp = await client.get(f"{ENTITIES}?type=Room&pick=id,owner{{id}}&join=inline")
    assert resp.status == 200, await resp.text()
    assert (await get(client, EID))["temperature"]["value"] == 21


async def _raw(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    raw_headers, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().split(": ", 1) for line in raw_headers.split(b"\r\n") if b": " in line)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


async def test_protocol_errors_are_problems_and_long_queries_fit() -> None:
    """Request lines and headers beyond aiohttp's 8190 bytes: real queries fit (id= with hundreds of URNs);
    beyond the broker's limits, and for malformed HTTP, the answer is problem+json, not text/plain."""
    runner = BrokerRunner(create_app(settings_for_tests()), access_log=None)
    await runner.setup()
    try:
        from aiohttp import web

        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ids = ",".join(f"urn:ngsi-ld:Room:{i:06d}" for i in range(600))  # ~14 KB
        status, _, body = await _raw(port, f"GET {ENTITIES}?type=Room&id={ids} HTTP/1.1\r\nHost: x\r\n"
                                     "Connection: close\r\n\r\n".encode())
        assert status == 200, body
        assert orjson.loads(body) == []
        cases = ((b"GET " + ENTITIES.encode() + b"?type=Room&x=" + b"a" * MAX_LINE_BYTES + b" HTTP/1.1\r\n\r\n", 414),
                 (b"GET " + ENTITIES.encode() + b"?type=Room HTTP/1.1\r\nLink: " + b"a" * MAX_HEADER_BYTES
                  + b"\r\n\r\n", 431),
                 (b"GET " + ENTITIES.encode() + b"?type=Room HTTP/1.1\r\nBad Header\r\n\r\n", 400))
        for head, expected in cases:
            status, headers, body = await _raw(port, head)
            assert status == expected, body
            assert headers["content-type"].startswith("application/problem+json")
            assert orjson.loads(body)["status"] == expected
    finally:
        await runner.cleanup()


async def test_integers_beyond_64_bits(client: TestClient) -> None:
    """orjson parses integers up to 2**64 - 1, MongoDB stores none past 2**63 - 1: such values are a 400 on
    both stores (they were a 500 on MongoDB), q operands past 64 bits compare as floats, and a paging
    offset past 32 bits is a 400."""
    await create(client, ROOM)
    rec = Recorder(client)
    for raw in (b'{"id": "urn:ngsi-ld:Room:2", "type": "Room", "v": 18446744073709551615}',
                b'{"id": "urn:ngsi-ld:Room:2", "type": "Room", "v": {"value": {"a": [9223372036854775808]}}}',
                b'{"id": "urn:ngsi-ld:Room:2", "type": "Room", "v": {"type": "JsonProperty", '
                b'"json": {"a": 9223372036854775808}}}'):
        resp = await client.post(ENTITIES, data=raw, headers={"Content-Type": "application/json"})
        await problem(resp, 400, "BadRequestData")
    batch = (b'[{"id": "urn:ngsi-ld:Room:3", "type": "Room", "v": 1},'
             b' {"id": "urn:ngsi-ld:Room:2", "type": "Room", "v": 9223372036854775808}]')
    resp = await client.post(f"{OPS}/upsert", data=batch, headers={"Content-Type": "application/json"})
    assert resp.status == 207, await resp.text()
    body = await resp.json()
    assert body["success"] == ["urn:ngsi-ld:Room:3"]
    assert [e["entityId"] for e in body["errors"]] == ["urn:ngsi-ld:Room:2"]
    assert (await client.get(url("urn:ngsi-ld:Room:2"))).status == 404
    assert len(rec.events) == 1
    # the largest 64-bit integer is fine
    resp = await client.post(url(EID, "attrs"), data=b'{"v": 9223372036854775807}',
                             headers={"Content-Type": "application/json"})
    assert resp.status == 204, await resp.text()
    both = [EID, "urn:ngsi-ld:Room:3"]
    for q, expected in (("v==99999999999999999999", []), ("v<99999999999999999999", both),
                        ("v==2..99999999999999999999", [EID]), ("v>-99999999999999999999", both)):
        resp = await client.get(f"{ENTITIES}?type=Room&q={q}&options=keyValues&attrs=v")
        assert resp.status == 200, await resp.text()
        assert [e["id"] for e in await resp.json()] == expected, q
    await problem(await client.get(f"{ENTITIES}?type=Room&offset=99999999999999999999"), 400, "BadRequestData")
    sub = (b'{"type": "Subscription", "entities": [{"type": "Room"}], "throttling": 18446744073709551615,'
           b' "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}}')
    resp = await client.post("/ngsi-ld/v1/subscriptions", data=sub, headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()


async def test_control_characters_in_names_ids_and_value_keys(client: TestClient) -> None:
    """Control characters are no part of a URI, name or scope (NUL in a name was a 500 on MongoDB, whose
    keys are C strings); inside a value, a key with NUL is data and both stores keep it."""
    await create(client, ROOM)
    before = await get(client, EID)
    rec = Recorder(client)
    for raw in (b'{"id": "urn:ngsi-ld:Room:2", "type": "Room", "a\\u0000b": 1}',
                b'{"id": "urn:ngsi-ld:Room:2\\u0000", "type": "Room"}',
                b'{"id": "urn:ngsi-ld:Room:2", "type": "Room\\u0001"}',
                b'{"id": "urn:ngsi-ld:Room:2", "type": "Room", "scope": "/a\\u0000"}',
                b'{"id": "urn:ngsi-ld:Room:2", "type": "Room", "a": {"type": "Property", "value": 1, '
                b'"datasetId": "urn:x\\u007f"}}'):
        resp = await client.post(ENTITIES, data=raw, headers={"Content-Type": "application/json"})
        await problem(resp, 400, "BadRequestData")
    resp = await client.post(url(EID, "attrs"), data=b'{"t\\u0000": 1}', headers={"Content-Type": "application/json"})
    await problem(resp, 400, "BadRequestData")
    assert rec.events == []
    assert await get(client, EID) == before
    value = {"k\x00": 1, "%00": 2, "lang": {"e\x00n": "x"}}
    resp = await send(client, "POST", url(EID, "attrs"), {"data": {"type": "Property", "value": value}})
    assert resp.status == 204, await resp.text()
    assert (await get(client, EID))["data"]["value"] == value


async def test_contexts_read_whole_and_nested_within_limits(client: TestClient, ctx_server: ContextServer) -> None:
    """A context sent in many pieces was cut at the first ones ("not JSON"); a context nested past what
    the stores serialize was a 500."""
    link = f'<{ctx_server.url("/chunked")}>; rel="http://www.w3.org/ns/json-ld#context"'
    await create(client, {"id": EID, "type": "Room", "E1": 1}, Link=link)
    assert "urn:test:E1" in await get(client, EID)
    link = f'<{ctx_server.url("/deep")}>; rel="http://www.w3.org/ns/json-ld#context"'
    await problem(await client.get(f"{ENTITIES}?type=Room", headers={"Link": link}), 503, "LdContextNotAvailable")
    deep = "[" * 300 + "{}" + "]" * 300
    for path, body in ((ENTITIES, f'{{"id": "urn:ngsi-ld:Room:2", "type": "Room", "@context": {deep}}}'),
                       ("/ngsi-ld/v1/jsonldContexts", f'{{"@context": {deep}}}'),
                       ("/ngsi-ld/v1/jsonldContexts", '{"@context": ' + '{"a": ' * 80 + '"urn:x"' + "}" * 80 + "}")):
        resp = await client.post(path, data=body, headers={"Content-Type": "application/ld+json"})
        await problem(resp, 400, "BadRequestData")
    assert (await client.get(url("urn:ngsi-ld:Room:2"))).status == 404


def _nested(depth: int, leaf: str, conj: str, disj: str) -> str:
    expr = leaf
    for i in range(depth):
        expr = f"{leaf}{conj if i % 2 else disj}({expr})"
    return expr


async def test_deeply_nested_expressions_are_too_complex(client: TestClient) -> None:
    """and/or groups nested hundreds deep overflowed the recursive parser, compiler and evaluator (500)."""
    await create(client, ROOM)
    for depth, ok in ((25, True), (400, False)):
        for query in (f"type=Room&q={quote(_nested(depth, 't==1', ';', '|'))}",
                      f"type=Room&scopeQ={quote(_nested(depth, '/a', ';', ','))}",
                      f"type={quote(_nested(depth, 'Room', ';', '|'))}"):
            resp = await client.get(f"{ENTITIES}?{query}")
            if ok:
                assert resp.status == 200, await resp.text()
            else:
                await problem(resp, 403, "TooComplexQuery")
    body = {"type": "Query", "entities": [{"type": "Room"}], "q": _nested(400, "temperature==21", ";", "|")}
    await problem(await send(client, "POST", f"{OPS}/query", body), 403, "TooComplexQuery")
    sub = {"type": "Subscription", "entities": [{"type": "Room"}], "q": _nested(400, "temperature==21", ";", "|"),
           "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}}
    await problem(await send(client, "POST", "/ngsi-ld/v1/subscriptions", sub), 403, "TooComplexQuery")
    assert await (await client.get("/ngsi-ld/v1/subscriptions")).json() == []


async def test_query_strings_that_are_not_utf8(client: TestClient) -> None:
    """Percent-escapes that are not UTF-8 would decode to U+FFFD and query for a type nobody wrote:
    refused instead, on reads and writes; an escaped U+FFFD itself is still a character like any other."""
    await create(client, ROOM)
    before = await get(client, EID)
    for path in (f"{ENTITIES}?type=%FF", f"{ENTITIES}?type=Room&q=temperature%3D%3D%22%C3%28%22",
                 f"{url(EID)}?attrs=%E9t%E9", f"{ENTITIES}?type=Room&%FF=1"):
        await problem(await client.get(path), 400, "InvalidRequest")
    resp = await client.delete(f"{ENTITIES}?type=Room&q=temperature%3D%3D%FF")
    await problem(resp, 400, "InvalidRequest")
    assert await get(client, EID) == before
    resp = await client.get(f"{ENTITIES}?type=%EF%BF%BD")
    assert resp.status == 200 and await resp.json() == []
    resp = await client.get(f"{ENTITIES}?type=R%C3%B6om")  # valid UTF-8: an ordinary (unknown) type
    assert resp.status == 200 and await resp.json() == []
