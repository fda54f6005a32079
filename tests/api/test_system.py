"""Operations endpoints that carry NGSI-LD meaning: the Context Source Identity (v1.8)."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from broker.api.system import _duration

URL = "/ngsi-ld/v1/info/sourceIdentity"


async def test_source_identity(client: TestClient) -> None:
    resp = await client.get(URL)
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    assert body["type"] == "ContextSourceIdentity"
    assert re.fullmatch(r"urn:ngsi-ld:ContextSource:[0-9a-f-]{36}", body["id"])
    assert re.fullmatch(r"P(\d+D)?T\d{2}H\d{2}M\d{2}S", body["contextSourceUptime"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", body["contextSourceTimeAt"])
    assert body["contextSourceAlias"]
    assert body["contextSourceExtras"]["name"] == "ngsild-broker"
    again = await (await client.get(URL)).json()
    assert again["id"] == body["id"]  # one deployment, one id
    assert (await client.post(URL, data=b"{}")).status == 405


def test_uptime_is_an_iso_duration() -> None:
    assert _duration(0) == "PT00H00M00S"
    assert _duration(3_723) == "PT01H02M03S"
    assert _duration(2 * 86_400 + 5) == "P2DT00H00M05S"
