"""Provisioning models (lib JSON-schema rules) and the error hierarchy."""

from __future__ import annotations

import pytest

from agents import errors
from models.iota import (
    ConfigGroup,
    Device,
    DeviceUpdate,
    GroupsRequest,
    parse_model,
)


def test_group_roundtrip_keeps_extras() -> None:
    body = {"apikey": "k", "resource": "/iot/json", "entity_type": "Thing", "cbroker": "http://x",
            "attributes": [{"object_id": "t", "name": "temperature", "type": "Number",
                            "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}, "custom": 1}],
            "static_attributes": [{"name": "loc", "type": "geo:point", "value": "1, 2"}],
            "explicitAttrs": "['temperature']", "timestamp": True, "transport": "MQTT"}
    group = parse_model(ConfigGroup, body)
    assert group.to_wire() == body
    assert group.attributes[0].target_name == "temperature" and group.attributes[0].source_id == "t"


def test_device_fields() -> None:
    dev = parse_model(Device, {"device_id": "d1", "protocol": "PDI-IoTA-UltraLight", "polling": True,
                               "commands": [{"name": "ping", "type": "command", "mqtt": {"qos": 1, "retain": False}}],
                               "explicitAttrs": True, "internal_attributes": {"lorawan": {"app_eui": "x"}}})
    assert dev.device_id == "d1" and dev.polling is True and dev.commands[0].mqtt.qos == 1


@pytest.mark.parametrize(
    ("model", "body", "fragment"),
    [
        (ConfigGroup, {"resource": "/iot/d"}, "apikey"),
        (ConfigGroup, {"apikey": "k"}, "resource"),
        (ConfigGroup, {"apikey": "k", "resource": "/r", "attributes": [{"name": "a(b)", "type": "T"}]}, "attributes.0.name"),
        (ConfigGroup, {"apikey": "k", "resource": "/r", "attributes": [{"name": "a", "type": "x'y"}]}, "attributes.0.type"),
        (ConfigGroup, {"apikey": "k", "resource": "/r", "attributes": [{"type": "Number"}]}, "name or an object_id"),
        (ConfigGroup, {"apikey": "k", "resource": "/r", "attributes": "nope"}, "attributes"),
        (ConfigGroup, {"apikey": "k", "resource": "/r", "transport": "CoAP"}, "transport"),
        (ConfigGroup, {"apikey": "k", "resource": "/r", "static_attributes": [{"object_id": "x", "value": 1}]},
         "static attribute needs a name"),
        (Device, {"entity_type": "T"}, "device_id"),
        (Device, {"device_id": ""}, "device_id"),
        (Device, {"device_id": "d", "timestamp": "sometimes"}, "timestamp"),
        (Device, {"device_id": "d", "commands": [{"name": "c", "mqtt": {"qos": 3}}]}, "qos"),
        (Device, {"device_id": "d", "attributes": [{"name": "a", "entity_type": "E;"}]}, "entity_type"),
    ],
)
def test_wrong_syntax(model: type, body: dict, fragment: str) -> None:
    with pytest.raises(errors.WrongSyntax) as info:
        parse_model(model, body)
    assert info.value.status == 400
    assert info.value.to_body()["name"] == "WRONG_SYNTAX"
    assert fragment in info.value.to_body()["message"]


def test_non_object_body_is_wrong_syntax() -> None:
    with pytest.raises(errors.WrongSyntax):
        parse_model(Device, ["device_id"])


def test_entity_type_on_attribute_allows_parentheses() -> None:
    parse_model(Device, {"device_id": "d", "attributes": [{"name": "a", "entity_type": "Type(1)"}]})


def test_update_and_request_wrappers() -> None:
    assert parse_model(DeviceUpdate, {"entity_name": "x"}).to_wire() == {"entity_name": "x"}
    assert len(parse_model(GroupsRequest, {"services": [{"apikey": "k", "resource": "/r"}]}).items) == 1
    with pytest.raises(errors.WrongSyntax):
        parse_model(GroupsRequest, {})


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (errors.WrongSyntax("x"), "WRONG_SYNTAX", 400),
        (errors.MissingHeaders("fiware-service"), "MISSING_HEADERS", 400),
        (errors.DeviceNotFound("d1", {"apikey": "k"}), "DEVICE_NOT_FOUND", 404),
        (errors.DeviceGroupNotFound({"apikey": "k"}), "DEVICE_GROUP_NOT_FOUND", 404),
        (errors.GroupNotFound("s", "/ss"), "GROUP_NOT_FOUND", 404),
        (errors.DuplicateDeviceId("d1"), "DUPLICATE_DEVICE_ID", 409),
        (errors.DuplicateGroup("/iot/d", "k"), "DUPLICATE_GROUP", 409),
        (errors.BadTimestamp("x"), "BAD_TIMESTAMP", 400),
        (errors.BadGeocoordinates("1,2,3"), "BAD_GEOCOORDINATES", 400),
        (errors.InvalidExpression("a +"), "INVALID_EXPRESSION", 400),
        (errors.MismatchedService(), "MISMATCHED_SERVICE", 403),
        (errors.MethodNotImplemented("DELETE", "/x"), "METHOD_NOT_IMPLEMENTED", 501),
        (errors.EntityGenericError("e", {"error": "x"}, 422), "ENTITY_GENERIC_ERROR", 422),
        (errors.AccessForbidden("s", "/"), "ACCESS_FORBIDDEN", 403),
        (errors.TypeNotFound("d1"), "TYPE_NOT_FOUND", 500),
    ],
)
def test_error_codes(exc: errors.IotaError, code: str, status: int) -> None:
    assert (exc.code, exc.status) == (code, status)
    body = exc.to_body()
    assert body["name"] == code and set(body) == {"name", "message"} and body["message"]
    assert isinstance(exc, errors.IotaError)


def test_messages_follow_the_lib() -> None:
    assert errors.InvalidExpression("a +").message == "Invalid expression in evaluation [a +]"
    assert errors.MethodNotImplemented("GET", "/p").message == "IoT Agents do not support the endpoint: GET /p"
