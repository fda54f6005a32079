"""The broker's route table resolves every request as aiohttp's own router does."""

from __future__ import annotations

import itertools

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from broker.api.routing import RouteTable
from broker.app import create_app
from tests.conftest import test_settings as broker_settings

METHODS = ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS")
PATHS = (
    "/", "/health", "/health/", "/ready", "/version", "/ngsi-ld/ex/v1/version", "/nowhere", "/ngsi-ld", "/ngsi-ld/v1",
    "/ngsi-ld/v1/entities", "/ngsi-ld/v1/entities/", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/", "/ngsi-ld/v1/entities/urn%3Angsi-ld%3ARoom%3A1",
    "/ngsi-ld/v1/entities/urn:a%2Fb", "/ngsi-ld/v1/entities/urn:a%252Fb", "/ngsi-ld/v1/entities//attrs",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/attrs", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/attrs/",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/attrs/temperature",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/attrs/https%3A%2F%2Fex.org%2Ft",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1/attrs/temperature/x", "/ngsi-ld/v1/entities/urn:x/other",
    "/ngsi-ld/v1/entityOperations/upsert", "/ngsi-ld/v1/entityOperations/upsert/", "/ngsi-ld/v1/entityOperations/x",
    "/ngsi-ld/v1/entityOperations/query", "/ngsi-ld/v1/types", "/ngsi-ld/v1/types/", "/ngsi-ld/v1/types/Room",
    "/ngsi-ld/v1/types/https%3A%2F%2Fex.org%2FRoom", "/ngsi-ld/v1/attributes/temperature", "/ngsi-ld/v1/attributes",
    "/ngsi-ld/v1/jsonldContexts", "/ngsi-ld/v1/jsonldContexts/abc", "/ngsi-ld/v1/jsonldContexts/a/b/c",
    "/ngsi-ld/v1/subscriptions", "/ngsi-ld/v1/subscriptions/", "/ngsi-ld/v1/subscriptions/urn:s:1",
    "/ngsi-ld/v1/subscriptions/urn:s:1/x", "/openapi.yaml", "/openapi.json", "/ngsi-ld/v1/entities/a b",
)


async def test_route_table_matches_aiohttp_on_every_route() -> None:
    app = create_app(broker_settings())
    app.freeze()
    table = RouteTable(app)
    compared = 0
    for method, path in itertools.product(METHODS, PATHS):
        expected = await app.router.resolve(make_mocked_request(method, path, app=app))
        handler, found = table.resolve(method, make_mocked_request(method, path).rel_url.path_safe)
        if expected.http_exception is None:
            assert handler is expected.handler, (method, path)
            assert found == dict(expected), (method, path)
        else:
            try:
                await handler(None)
            except web.HTTPException as exc:
                assert exc.status == expected.http_exception.status, (method, path)
                assert getattr(exc, "allowed_methods", None) == getattr(expected.http_exception, "allowed_methods",
                                                                         None), (method, path)
            else:
                raise AssertionError(f"{method} {path}: resolved, aiohttp says {expected.http_exception.status}")
        compared += 1
    assert compared == len(METHODS) * len(PATHS)
    assert table.handlers() == {route.handler for route in app.router.routes()}
