"""UltraLight 2.0 codec; cases from iotagent-ul ``docs/usermanual.md`` and ``lib/ulParser.js`` behaviour."""

from __future__ import annotations

import pytest

from agents.errors import PayloadError, UltralightParseError
from agents.ultralight import (
    UlCommand,
    cast_value,
    format_command,
    format_configuration,
    format_measures,
    format_poll_response,
    parse_command,
    parse_command_result,
    parse_configuration_request,
    parse_measures,
    serialize_command_payload,
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("t|15|h|30", [{"t": 15, "h": 30}]),
        ("|t|15", [{"t": 15}]),
        ("gps|1.2/3.4#t|10", [{"gps": "1.2/3.4"}, {"t": 10}]),
        ("2016-06-13T00:35:30Z|lle|100", [{"lle": 100, "TimeInstant": "2016-06-13T00:35:30Z"}]),
        ("a|true|b|false|c|null|d|1e3|e|[1,2]|f|text", [
            {"a": True, "b": False, "c": None, "d": 1000.0, "e": [1, 2], "f": "text"}]),
        ("s|NaN|i|Infinity", [{"s": "NaN", "i": "Infinity"}]),
        ("id|dev7|type|T", [{"id": "dev7", "type": "T"}]),
        ("email|a@b.c", [{"email": "a@b.c"}]),
        ("t|15\n", [{"t": 15}]),
    ],
)
def test_parse_measures(payload: str, expected: list[dict]) -> None:
    assert parse_measures(payload) == expected


@pytest.mark.parametrize("payload", ["", "   ", "t", "t|", "|", "t||h|1", "t|1#", "t|1##h|2", "ts|t|1|h|"])
def test_malformed_measures_raise(payload: str) -> None:
    with pytest.raises(UltralightParseError):
        parse_measures(payload)


def test_parse_error_is_a_payload_error_with_body() -> None:
    with pytest.raises(PayloadError) as info:
        parse_measures("t|")
    assert info.value.to_body()["name"] == "PARSE_ERROR"


def test_cast_value_keeps_text() -> None:
    assert cast_value("15") == 15
    assert cast_value("01") == "01"  # not valid JSON
    assert cast_value('"q"') == "q"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("Robot1@turn|left", UlCommand("Robot1", "turn", value="left")),
        ("dev@cmd|p1=1|p2=2", UlCommand("dev", "cmd", params={"p1": "1", "p2": "2"})),
        ("dev@ping", UlCommand("dev", "ping", params={})),
        ("dev@cmd|", UlCommand("dev", "cmd", value="")),
    ],
)
def test_parse_command(payload: str, expected: UlCommand) -> None:
    assert parse_command(payload) == expected


@pytest.mark.parametrize("payload", ["", "nodevice|x", "@cmd|x", "dev@|x", "dev@cmd|a=1|b", "dev@cmd|a=1=2|b=2"])
def test_malformed_commands(payload: str) -> None:
    with pytest.raises(UltralightParseError):
        parse_command(payload)


def test_parse_command_result() -> None:
    r = parse_command_result("Robot1@turn|turned left")
    assert (r.device_id, r.command, r.result) == ("Robot1", "turn", "turned left")
    assert parse_command_result("dev@read|[72,368,1]").result == [72, 368, 1]
    assert parse_command_result("dev@ping").result is None
    with pytest.raises(UltralightParseError):
        parse_command_result("no target|x")
    with pytest.raises(UltralightParseError):
        parse_command_result("")


def test_format_command_and_roundtrip() -> None:
    assert format_command("Robot1", "turn", "left") == "Robot1@turn|left"
    assert format_command("dev", "set", {"p1": 1, "p2": True}) == "dev@set|p1=1|p2=true"
    assert format_command("dev", "dim", 1.5) == "dev@dim|1.5"
    assert format_command("dev", "ping") == "dev@ping|"
    assert parse_command(format_command("dev", "set", {"a": "x", "b": "y"})) == UlCommand(
        "dev", "set", params={"a": "x", "b": "y"})


def test_poll_response_and_payload_types() -> None:
    assert format_poll_response(["d@a|1", "d@b|2"]) == "d@a|1#d@b|2"
    assert format_poll_response(["d@a|1", "d@b|2"], separator="|") == "d@a|1|d@b|2"
    assert format_poll_response([]) == ""
    assert serialize_command_payload("d@a|1") == "d@a|1"
    assert serialize_command_payload("d@a|1", "binaryfromstring") == b"d@a|1"
    assert serialize_command_payload("cafe", "binaryfromhex") == b"\xca\xfe"
    assert serialize_command_payload({"a": 1}, "binaryfromjson") == b'{"a":1}'
    assert serialize_command_payload({"a": 1}, "json") == '{"a":1}'
    with pytest.raises(UltralightParseError):
        serialize_command_payload("xyz", "binaryfromhex")


def test_configuration_messages() -> None:
    req = parse_configuration_request("configuration|pollingInterval|publishInterval")
    assert (req.type, req.attributes) == ("configuration", ["pollingInterval", "publishInterval"])
    assert parse_configuration_request("subscription|a").type == "subscription"
    with pytest.raises(UltralightParseError):
        parse_configuration_request("reboot|a")
    with pytest.raises(UltralightParseError):
        parse_configuration_request("")
    assert (
        format_configuration("device_1", {"pollingInterval": 200, "publishInterval": 80}, dt="20190626T154200Z")
        == "device_1@configuration|pollingInterval=200|publishInterval=80|dt=20190626T154200Z"
    )


def test_format_measures_roundtrip() -> None:
    text = format_measures({"t": 15, "s": "on"}, timestamp="2016-06-13T00:35:30Z")
    assert parse_measures(text) == [{"t": 15, "s": "on", "TimeInstant": "2016-06-13T00:35:30Z"}]
