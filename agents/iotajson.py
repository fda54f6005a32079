"""IoTA-JSON payload codec (measures, single attributes, commands, command results, configuration).

Mirrors iotagent-json's ``commonBindings.parseMessage`` / HTTP binding: a JSON object is one measure group,
an array of objects is a multimeasure, a single-attribute payload is any JSON value and a non-JSON body is
kept as its hex string. Malformed payloads raise :class:`JsonPayloadError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from agents.errors import JsonPayloadError
from agents.jexl import js_json_dumps, js_json_loads

TIMESTAMP_ATTRIBUTE = "TimeInstant"


def _decode(payload: bytes | bytearray | str) -> str:
    if isinstance(payload, str):
        return payload
    try:
        return bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonPayloadError("payload is not UTF-8 JSON") from exc


# orjson turns integers beyond 64 bits into floats where JSON.parse/json keep them exact: those take the slow path
_LONG_DIGITS = re.compile(rb"\d{19}")


def _loads(payload: bytes | bytearray | str | Any) -> Any:
    if not isinstance(payload, bytes | bytearray | str):
        return payload  # already decoded by the transport (e.g. an HTTP JSON body)
    if isinstance(payload, bytes) and not _LONG_DIGITS.search(payload):
        # every measure comes through here: orjson is ~10x json. It refuses what JSON.parse refuses
        # (NaN, invalid UTF-8, BOM) and also 1e400 and lone surrogates, which json accepts: on any
        # refusal the exact path below decides.
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass
    text = _decode(payload)
    if not text.strip():
        raise JsonPayloadError("empty payload")
    try:
        return js_json_loads(text, parse_float=_finite)
    except ValueError as exc:
        raise JsonPayloadError(f"invalid JSON: {exc}") from None


def _finite(text: str) -> float:
    """A measure like 1e999 (Infinity to JSON.parse, null once the lib serializes it) is refused: no store
    holds an infinite number."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:32]}")
    return value


def parse_measures(payload: bytes | bytearray | str | Any, timestamp: str | None = None) -> list[dict[str, Any]]:
    """Measure groups from ``.../attrs`` (MQTT/AMQP) or ``POST /iot/json``.

    An object is one group, a non-empty array of objects is a multimeasure (one group each, in order).
    ``timestamp`` (HTTP ``?t=``) is stored as ``TimeInstant`` in every group, as the HTTP binding does.
    """
    data = _loads(payload)
    groups: list[Any] = data if isinstance(data, list) else [data]
    if not groups:
        raise JsonPayloadError("empty measure array")
    out: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        if not isinstance(group, dict):
            where = f" at index {i}" if isinstance(data, list) else ""
            raise JsonPayloadError(f"measures must be JSON objects, got {type(group).__name__}{where}")
        measures = dict(group)
        if timestamp:
            measures[TIMESTAMP_ATTRIBUTE] = timestamp
        out.append(measures)
    return out


def parse_single_attribute(payload: bytes | bytearray | str, content_type: str | None = None) -> Any:
    """Value of ``.../attrs/{attr}``: JSON when it parses, else the payload's hex string.

    With ``content_type="application/octet-stream"`` (HTTP), the raw bytes are always hex-encoded, as the
    HTTP binding does; ``text/plain`` bodies are kept as text.
    """
    raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/octet-stream":
        return raw.hex()
    if ctype == "text/plain":
        return raw.decode("utf-8", errors="replace")
    try:
        value = js_json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return raw.hex()
    return value


def attribute_measure(attribute: str, value: Any) -> dict[str, Any]:
    """A single-attribute value as a measure group for the mapping."""
    if not attribute:
        raise JsonPayloadError("missing attribute name")
    return {attribute: value}


def parse_command_results(payload: bytes | bytearray | str | Any) -> dict[str, Any]:
    """``{"ping": "result", ...}`` from ``.../cmdexe`` or ``POST /iot/json/commands``: command → result."""
    data = _loads(payload)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict) or not data:
        raise JsonPayloadError("command result must be a non-empty JSON object")
    return dict(data)


@dataclass(frozen=True, slots=True)
class JsonCommand:
    """A command message as the device receives it on ``/{apikey}/{id}/cmd``."""

    command: str
    value: Any


def format_command(command: str, value: Any) -> str:
    """``{"ping": {"data": "22"}}`` — the command value wrapped under its name."""
    return js_json_dumps({command: value}) or "{}"


def parse_command(payload: bytes | bytearray | str | Any) -> list[JsonCommand]:
    """Parse ``{"cmd": value, ...}`` (device side, and poll responses)."""
    data = _loads(payload)
    if not isinstance(data, dict) or not data:
        raise JsonPayloadError("command payload must be a non-empty JSON object")
    return [JsonCommand(k, v) for k, v in data.items()]


def format_poll_response(commands: Mapping[str, Any]) -> str:
    """``GET /iot/json?...&getCmd=1`` answer: every pending command in one object."""
    return js_json_dumps(dict(commands)) or "{}"


@dataclass(frozen=True, slots=True)
class JsonConfigurationRequest:
    """``{"type": "configuration"|"subscription", "fields": [...]}``."""

    type: str
    fields: list[str]


def parse_configuration_request(payload: bytes | bytearray | str | Any) -> JsonConfigurationRequest:
    data = _loads(payload)
    if not isinstance(data, dict):
        raise JsonPayloadError("configuration request must be a JSON object")
    kind = data.get("type")
    fields = data.get("fields")
    if kind not in ("configuration", "subscription"):
        raise JsonPayloadError(f"unknown configuration request type {kind!r}")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise JsonPayloadError("configuration request 'fields' must be a list of attribute names")
    return JsonConfigurationRequest(kind, list(fields))


def format_configuration(values: Mapping[str, Any], dt: str | None = None) -> str:
    """``{"sleepTime": "200", ..., "dt": "20160125T092703Z"}`` for ``.../configuration/values``."""
    body = dict(values)
    if dt is not None:
        body["dt"] = dt
    return js_json_dumps(body) or "{}"
