"""IoTA-JSON codec; cases after iotagent-json ``test/unit/ngsiv2/MQTT_receive_measures-test.js`` and the manual."""

from __future__ import annotations

import pytest

from agents.errors import JsonPayloadError
from agents.iotajson import (
    JsonCommand,
    attribute_measure,
    format_command,
    format_configuration,
    format_poll_response,
    parse_command,
    parse_command_results,
    parse_configuration_request,
    parse_measures,
    parse_single_attribute,
)


def test_object_is_one_measure_group() -> None:
    assert parse_measures(b'{"temperature": 87, "humidity": 40}') == [{"temperature": 87, "humidity": 40}]


def test_array_is_a_multimeasure_in_order() -> None:
    groups = parse_measures('[{"t": 1, "TimeInstant": "2020-01-01T00:00:00Z"}, {"t": 2}]')
    assert groups == [{"t": 1, "TimeInstant": "2020-01-01T00:00:00Z"}, {"t": 2}]


def test_http_timestamp_parameter_is_added_to_every_group() -> None:
    assert parse_measures([{"a": 1}, {"b": 2}], timestamp="2016-01-01T00:00:00Z") == [
        {"a": 1, "TimeInstant": "2016-01-01T00:00:00Z"}, {"b": 2, "TimeInstant": "2016-01-01T00:00:00Z"}]


def test_decoded_bodies_are_accepted() -> None:
    assert parse_measures({"a": 1}) == [{"a": 1}]


@pytest.mark.parametrize(
    "payload", [b"", b"   ", b"not json", b"42", b'"text"', b"[]", b'[{"a":1}, 3]', b"\xff\xfe", b"NaN", b"null"]
)
def test_malformed_measures(payload: bytes) -> None:
    with pytest.raises(JsonPayloadError):
        parse_measures(payload)


@pytest.mark.parametrize(
    ("payload", "ctype", "expected"),
    [
        (b"23", None, 23),
        (b"true", None, True),
        (b'"on"', None, "on"),
        (b"[5]", None, [5]),
        (b'[{"timestamp": 1, "value": 2}]', None, [{"timestamp": 1, "value": 2}]),
        (b'{"a": 1}', None, {"a": 1}),
        (b"abc", None, "616263"),
        (b"\x01\xff", None, "01ff"),
        (b"23", "application/octet-stream", "3233"),
        (b"hello", "text/plain; charset=utf-8", "hello"),
    ],
)
def test_single_attribute(payload: bytes, ctype: str | None, expected: object) -> None:
    assert parse_single_attribute(payload, ctype) == expected


def test_attribute_measure() -> None:
    assert attribute_measure("temperature", 21) == {"temperature": 21}
    with pytest.raises(JsonPayloadError):
        attribute_measure("", 1)


def test_command_results() -> None:
    assert parse_command_results(b'{"ping": "pong"}') == {"ping": "pong"}
    assert parse_command_results('[{"ping": {"r": 1}}]') == {"ping": {"r": 1}}
    for bad in (b"{}", b"[1]", b"pong", b'"pong"'):
        with pytest.raises(JsonPayloadError):
            parse_command_results(bad)


def test_commands_and_polling() -> None:
    assert format_command("ping", {"data": "22"}) == '{"ping":{"data":"22"}}'
    assert parse_command('{"ping": {"data": "22"}}') == [JsonCommand("ping", {"data": "22"})]
    assert format_poll_response({"a": 1, "b": "x"}) == '{"a":1,"b":"x"}'
    with pytest.raises(JsonPayloadError):
        parse_command(b"[]")


def test_configuration() -> None:
    req = parse_configuration_request(b'{"type": "configuration", "fields": ["sleepTime", "warningLevel"]}')
    assert (req.type, req.fields) == ("configuration", ["sleepTime", "warningLevel"])
    for bad in (b'{"type": "x", "fields": []}', b'{"type": "subscription", "fields": "a"}', b"[]", b"x"):
        with pytest.raises(JsonPayloadError):
            parse_configuration_request(bad)
    assert format_configuration({"sleepTime": "200"}, dt="20160125T092703Z") == (
        '{"sleepTime":"200","dt":"20160125T092703Z"}')
