"""The OpenAPI document: valid, in step with the registered routes, and served as YAML and JSON."""

from __future__ import annotations

import yaml
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from broker.api.keys import SETTINGS
from broker.api.openapi import documented_operations, load_document, registered_operations, served_document
from broker.app import create_app
from tests import conftest

# Operations described in broker/openapi.yaml that no handler serves yet (method, path). Empty now;
# list one here when the document runs ahead of the code on purpose.
NOT_IMPLEMENTED_YET: set[tuple[str, str]] = set()

PROBLEM = "#/components/schemas/ProblemDetails"


def test_document_is_valid_openapi() -> None:
    validate(load_document())  # type: ignore[arg-type]


def test_every_registered_route_is_documented_and_vice_versa() -> None:
    registered = registered_operations(create_app(conftest.test_settings()))
    documented = documented_operations(load_document())
    assert sorted(registered - documented) == [], "routes missing from broker/openapi.yaml"
    assert sorted(documented - registered - NOT_IMPLEMENTED_YET) == [], "documented but not served"
    assert NOT_IMPLEMENTED_YET <= documented


def test_errors_are_problem_details() -> None:
    doc = load_document()
    responses = doc["components"]["responses"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op.get("operationId"), f"{method} {path} has no operationId"
            for status, resp in op["responses"].items():
                if not status.startswith(("4", "5")) or path in ("/ready",):
                    continue
                resp = responses[resp["$ref"].rsplit("/", 1)[1]] if "$ref" in resp else resp
                schema = resp["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": PROBLEM}, f"{method} {path} {status}"


async def test_served_documents_list_exactly_the_registered_operations(client: TestClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    served = await resp.json()
    validate(served)
    registered = registered_operations(client.server.app)
    assert documented_operations(served) == registered
    assert served == served_document(load_document(), registered)
    resp = await client.get("/openapi.yaml")
    assert resp.status == 200 and resp.content_type == "application/yaml"
    assert yaml.safe_load(await resp.text()) == served


async def test_body_taking_operations_answer_and_document_413_and_415(client: TestClient) -> None:
    """Every operation with a request body refuses a wrong media type (415) and an oversized body
    (413), before anything else, and its description says so (API fuzzers check the statuses)."""
    doc = load_document()
    limit = client.server.app[SETTINGS].max_body_bytes
    fill = {"entityId": "urn:ngsi-ld:T:1", "attrId": "a", "subscriptionId": "urn:ngsi-ld:Subscription:1",
            "contextId": "urn:x:c"}
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or "requestBody" not in op:
                continue
            url = path.format(**fill)
            resp = await client.request(method.upper(), url, data=b"{}", headers={"Content-Type": "text/plain"})
            assert resp.status == 415, (method, path, resp.status, await resp.text())
            big = b'{"a": "' + b"x" * limit + b'"}'
            resp = await client.request(method.upper(), url, data=big, headers={"Content-Type": "application/json"})
            assert resp.status == 413, (method, path, resp.status)
            assert {"413", "415"} <= set(op["responses"]), f"{method} {path}"
            checked += 1
    assert checked >= 14
