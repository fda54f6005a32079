"""Helpers shared by the entity and batch API tests: requests, problem checks, an event recorder."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from broker.api.keys import BUS
from broker.services.events import ChangeEvent

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
V = "https://uri.etsi.org/ngsi-ld/default-context/"
ENTITIES = "/ngsi-ld/v1/entities"
JSON_H = {"Content-Type": "application/json"}


def url(entity_id: str, *rest: str) -> str:
    return "/".join([ENTITIES, entity_id, *rest])


async def send(client: TestClient, method: str, path: str, body: Any = None,
               ctype: str = "application/json", **headers: str):  # type: ignore[no-untyped-def]
    h = {"Content-Type": ctype, **headers} if body is not None else dict(headers)
    data = orjson.dumps(body) if body is not None else None
    return await client.request(method, path, data=data, headers=h)


async def create(client: TestClient, body: dict[str, Any], **headers: str) -> None:
    resp = await send(client, "POST", ENTITIES, body, **headers)
    assert resp.status == 201, await resp.text()


async def get(client: TestClient, entity_id: str, query: str = "", **headers: str) -> dict[str, Any]:
    resp = await client.get(url(entity_id) + query, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json(content_type=None)


async def problem(resp, status: int, type_name: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = await resp.json(content_type=None)
    assert body["type"] == ERR + type_name, body
    assert body["status"] == status
    return body


class Recorder:
    """A real change-event listener on the app's bus; keeps every published list."""

    def __init__(self, client: TestClient) -> None:
        self.calls: list[list[ChangeEvent]] = []
        client.server.app[BUS].subscribe(self._listen)

    async def _listen(self, events: list[ChangeEvent]) -> None:
        self.calls.append(list(events))

    @property
    def events(self) -> list[ChangeEvent]:
        return [e for call in self.calls for e in call]

    def take(self) -> list[ChangeEvent]:
        out = self.events
        self.calls.clear()
        return out


def names(iris: frozenset[str]) -> set[str]:
    return {i.removeprefix(V) for i in iris}
