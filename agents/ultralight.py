"""UltraLight 2.0 codec (measures, commands, command results, configuration), as iotagent-ul's ``ulParser``.

Pure functions over ``str``; transports decode bytes (UTF-8) and call these. Malformed payloads raise
:class:`UltralightParseError`, which the transports log and drop as the UL agent does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.errors import UltralightParseError
from agents.jexl import js_json_dumps, js_json_loads, to_js_string

TIMESTAMP_ATTRIBUTE = "TimeInstant"


def cast_value(raw: str) -> Any:
    """Values are ``JSON.parse``d when possible (``10`` → 10, ``true`` → True), else kept as text."""
    try:
        return js_json_loads(raw)
    except ValueError:
        return raw


def _parse_group(group: str) -> dict[str, Any]:
    if group.startswith("|"):
        group = group[1:]
    fields = group.split("|")
    timestamp: str | None = None
    if len(fields) % 2 == 1 and len(fields) > 1:  # odd field count ⇒ leading timestamp
        timestamp, fields = fields[0], fields[1:]
    if not fields or len(fields) % 2 != 0 or any(f == "" for f in fields):
        raise UltralightParseError(f"malformed measure group {group!r}")
    measures: dict[str, Any] = {}
    for key, raw in zip(fields[0::2], fields[1::2], strict=True):
        measures[key] = cast_value(raw)
    if timestamp:
        measures[TIMESTAMP_ATTRIBUTE] = timestamp
    return measures


def parse_measures(payload: str) -> list[dict[str, Any]]:
    """``t|15|h|30#t|16`` → one dict per ``#`` group; an odd field count means the first is a TimeInstant.

    Unlike the UL agent, a group containing ``@`` is still read as a measure (the agent would take
    ``email|a@b.c`` for a command).
    """
    if not isinstance(payload, str) or not payload.strip():
        raise UltralightParseError("empty UltraLight 2.0 payload")
    payload = payload.strip("\r\n")
    return [_parse_group(g) for g in payload.split("#")]


@dataclass(frozen=True, slots=True)
class UlCommand:
    """``dev@cmd|value`` (``value`` set) or ``dev@cmd|p1=1|p2=2`` (``params`` set)."""

    device_id: str
    command: str
    value: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def _split_target(head: str, payload: str) -> tuple[str, str]:
    if "@" not in head:
        raise UltralightParseError(f"missing '@' in command {payload!r}")
    device_id, command = head.split("@")[:2]
    if not device_id or not command:
        raise UltralightParseError(f"missing device or command name in {payload!r}")
    return device_id, command


def parse_command(payload: str) -> UlCommand:
    """Parse a command message as a device receives it."""
    if not isinstance(payload, str) or not payload:
        raise UltralightParseError("empty command payload")
    fields = payload.split("|")
    device_id, command = _split_target(fields[0], payload)
    data = fields[1:]
    if len(data) == 1 and "=" not in data[0]:
        return UlCommand(device_id, command, value=data[0])
    params: dict[str, str] = {}
    for item in data:
        parts = item.split("=")
        if len(parts) != 2:
            raise UltralightParseError(f"malformed command parameter {item!r}")
        params[parts[0]] = parts[1]
    return UlCommand(device_id, command, params=params)


@dataclass(frozen=True, slots=True)
class UlCommandResult:
    """``dev@cmd|result`` sent back by the device (result JSON-cast like measures)."""

    device_id: str
    command: str
    result: Any


def parse_command_result(payload: str) -> UlCommandResult:
    """Parse a command result; as the agent, only the first field after the target is the result."""
    if not isinstance(payload, str) or not payload.strip():
        raise UltralightParseError("empty command result payload")
    fields = payload.strip("\r\n").split("|")
    device_id, command = _split_target(fields[0], payload)
    result = cast_value(fields[1]) if len(fields) > 1 else None
    return UlCommandResult(device_id, command, result)


def _text(value: Any) -> str:
    """Command values are concatenated into the message as JavaScript would (``true``, ``1.5``, ``a,b``)."""
    if isinstance(value, dict):
        return js_json_dumps(value) or ""
    return to_js_string(value)


def format_command(device_id: str, command: str, value: Any = None) -> str:
    """Build ``dev@cmd|value``; a dict value becomes ``dev@cmd|k1=v1|k2=v2``.

    ``value`` is the command's (already expression-evaluated) value; ``None`` gives ``dev@cmd|`` like
    the agent's empty command strings.
    """
    head = f"{device_id}@{command}"
    if isinstance(value, Mapping):
        return head + "".join(f"|{k}={_text(v)}" for k, v in value.items())
    return f"{head}|{'' if value is None else _text(value)}"


def serialize_command_payload(payload: Any, payload_type: str | None = None) -> str | bytes:
    """Apply a command's ``payloadType`` (``binaryfromstring``/``binaryfromhex``/``binaryfromjson``/``json``)."""
    kind = (payload_type or "").lower()
    if kind == "binaryfromstring":
        return _text(payload).encode("utf-8")
    if kind == "binaryfromhex":
        text = _text(payload)
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise UltralightParseError(f"invalid hex command payload {text!r}") from exc
    if kind == "binaryfromjson":
        return (js_json_dumps(payload) or "null").encode("utf-8")
    if kind == "json":
        return js_json_dumps(payload) or "null"
    return payload if isinstance(payload, str | bytes) else _text(payload)


def format_poll_response(commands: Iterable[str], separator: str = "#") -> str:
    """Pending commands for ``GET ...&getCmd=1``: joined by ``#`` as the UL manual says.

    (The UL agent's code joins with ``|``, which a device cannot split unambiguously; pass
    ``separator="|"`` to mimic it.)
    """
    return separator.join(commands)


@dataclass(frozen=True, slots=True)
class UlConfigurationRequest:
    """``configuration|f1|f2`` from ``.../configuration/commands`` (type ``configuration``/``subscription``)."""

    type: str
    attributes: list[str]


def parse_configuration_request(payload: str) -> UlConfigurationRequest:
    if not isinstance(payload, str) or not payload.strip():
        raise UltralightParseError("empty configuration request")
    fields = payload.strip("\r\n").split("|")
    kind = fields[0]
    if kind not in ("configuration", "subscription"):
        raise UltralightParseError(f"unknown configuration request type {kind!r}")
    return UlConfigurationRequest(kind, [f for f in fields[1:] if f])


def format_configuration(device_id: str, values: Mapping[str, Any], dt: str | None = None) -> str:
    """``dev@configuration|k=v|...|dt=20160125T092703Z`` for ``.../configuration/values``."""
    items = dict(values)
    if dt is not None:
        items["dt"] = dt
    return f"{device_id}@configuration" + "".join(f"|{k}={_text(v)}" for k, v in items.items())


def format_measures(measures: Mapping[str, Any], timestamp: str | None = None) -> str:
    """Encode one measure group (for tests and simulators): ``[ts|]k|v|k|v``."""
    parts = [] if timestamp is None else [timestamp]
    for k, v in measures.items():
        parts += [k, v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))]
    return "|".join(parts)
