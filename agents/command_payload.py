"""What a command sends to its device: the payload (``expression``, ``payloadType``) and, for HTTP push, the
URL and headers (``endpoint`` and ``headers`` as JEXL, ``contentType``). Pure functions, no I/O.

Reproduces iotagent-json's ``commandHandler.generateCommandExecution`` / ``HTTPBinding.executeCommand`` and
iotagent-ul's ``ulParser.createCommandPayload``:

- The JEXL context is the device's ``id``, ``type``, ``service``, ``subservice``, ``entity_name``, its static
  attributes by name (numeric and boolean strings cast, as the lib's ``extractContext``) and the command's
  value under the command's name.
- IoTA-JSON: with an ``expression`` its result *is* the payload (``{set: id + '_' + reset}``), otherwise
  ``{"<cmd>": value}``; then ``payloadType`` serializes it: ``json`` (default, ``JSON.stringify``), ``text``
  (a string as is, no quotes), ``binaryfromstring`` (bytes of ``String(payload)``), ``binaryfromhex``
  (hex digits → bytes; an array → one byte per element), ``binaryfromjson`` (bytes of the JSON).
- UltraLight: the expression result replaces the value in ``<dev>@<cmd>|<value>``; ``payloadType`` then
  applies to that line.
- Polling queues the value (the expression's result when there is one), as the lib's ``addCmd``.

Deliberate differences: where the lib swallows a failing expression and sends the expression's *source
text* as the payload (and does the same for any falsy result such as ``0``), a failing or ``null``
expression here raises :class:`InvalidExpression` and the command ends as ``ERROR`` with that message; a
valid falsy result is sent. UltraLight expressions see the command value (the UL agent's context omits it).
A header whose expression is ``null`` is left out (the lib sends ``null``); one that fails is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agents import ultralight
from agents.errors import InvalidExpression, WrongSyntax
from agents.jexl import (
    compile_expression,
    is_number,
    js_json_dumps,
    js_parse_float,
    js_parse_int,
    to_js_string,
    to_number,
)

if TYPE_CHECKING:
    from agents.registry import Provisioned

PAYLOAD_TYPES = ("binaryfromstring", "binaryfromhex", "binaryfromjson", "text", "json")
JSON_CONTENT_TYPE = "application/json"
UL_CONTENT_TYPE = "text/plain"


def is_ultralight(dev: Provisioned) -> bool:
    """UltraLight when the device says so (protocol) or its group serves ``/iot/d``."""
    protocol = str(dev.setting("protocol") or "").lower()
    if "ul" in protocol.replace("ultralight", "ul").split("-") or "ultralight" in protocol or protocol == "ul":
        return True
    resource = (dev.group or {}).get("resource") or dev.doc.get("resource")
    return resource == "/iot/d"


def context_value(value: Any) -> Any:
    """A value as the lib's ``jexlParser.extractContext`` puts it in the context (``"22"`` → 22, ``"true"`` →
    true, anything that is not numeric kept)."""
    number = to_number(value) if not isinstance(value, dict) else float("nan")
    if number != number:  # isNaN(value): kept as is
        return value
    as_float = js_parse_float(value)
    if as_float is not None and isinstance(as_float, float):
        return as_float
    as_int = js_parse_int(value)
    if as_int is not None:
        return as_int
    if to_js_string(value) in ("true", "false"):
        return to_js_string(value) == "true"
    return value


def expression_context(dev: Provisioned, command: str | None = None, value: Any = None) -> dict[str, Any]:
    """The JEXL context of a command (and of the device's endpoint and headers)."""
    prof = dev.profile
    ctx: dict[str, Any] = {"id": dev.device_id, "type": prof.entity_type, "service": dev.tenant,
                           "subservice": prof.subservice, "entity_name": prof.entity_name or prof.entity_id}
    for attr in prof.static_attributes:
        cast = context_value(attr.get("value"))
        if attr.get("name"):
            ctx[attr["name"]] = cast
        if attr.get("object_id"):
            ctx[attr["object_id"]] = cast
    if command is not None:
        ctx[command] = context_value(value)
    return ctx


def evaluate(expression: str, ctx: Mapping[str, Any]) -> Any:
    """The expression's value; a syntax or evaluation error, or a ``null`` result, is InvalidExpression."""
    expr = compile_expression(expression)
    result = expr.evaluate({k: v for k, v in ctx.items() if v is not None})
    if result is None:
        raise InvalidExpression(expression, "the expression evaluates to null (a variable it uses is missing?)")
    return result


def expression_error(exc: InvalidExpression) -> str:
    """The message of an expression failure, with its detail (what ``<cmd>_info`` shows)."""
    return f"{exc.message}: {exc.detail}" if exc.detail else exc.message


def command_value(dev: Provisioned, cmd: Mapping[str, Any], value: Any) -> Any:
    """The value a command carries: its ``expression``'s result, else the value of the update."""
    expression = cmd.get("expression")
    if not expression:
        return value
    return evaluate(expression, expression_context(dev, cmd["name"], value))


def _hex_bytes(payload: Any) -> bytes:
    """``Buffer.from(payload, 'hex')``: pairs of hex digits (a trailing odd digit is dropped, as in Node);
    an array gives one byte per element. Anything else is refused instead of sending an empty message."""
    if isinstance(payload, list):
        out = bytearray()
        for item in payload:
            n = to_number(item)
            out.append(int(n) & 0xFF if n == n and abs(n) != float("inf") else 0)
        return bytes(out)
    if not isinstance(payload, str) or not re.fullmatch(r"[0-9A-Fa-f]*", payload):
        raise WrongSyntax(f"payloadType binaryfromhex needs a string of hex digits, got {js_json_dumps(payload)}")
    return bytes.fromhex(payload[: len(payload) // 2 * 2])


def _text(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict) or (not is_number(payload) and not isinstance(payload, bool | list)):
        return js_json_dumps(payload) or ""
    return to_js_string(payload)


def serialize(payload: Any, payload_type: str | None) -> str | bytes:
    """IoTA-JSON's ``serializedPayloadCommand``."""
    kind = (payload_type or "json").lower()
    if kind == "binaryfromstring":
        return to_js_string(payload).encode()
    if kind == "binaryfromhex":
        return _hex_bytes(payload)
    if kind == "binaryfromjson":
        return (js_json_dumps(payload) or "null").encode()
    if kind == "text":
        return _text(payload)
    return js_json_dumps(payload) or "null"


def device_payload(dev: Provisioned, cmd: Mapping[str, Any], value: Any) -> str | bytes:
    """The message body of a pushed command (MQTT or HTTP)."""
    name = cmd["name"]
    if is_ultralight(dev):
        result = command_value(dev, cmd, value)
        line = ultralight.format_command(dev.device_id, name, None if result == "" else result)
        return ultralight.serialize_command_payload(line, cmd.get("payloadType"))
    payload = command_value(dev, cmd, value) if cmd.get("expression") else {name: value}
    return serialize(payload, cmd.get("payloadType"))


def endpoint_url(dev: Provisioned, endpoint: str) -> str:
    """A device ``endpoint`` may be a JEXL expression (``'http://h/' + id``); a plain URL is used as is."""
    try:
        result = compile_expression(endpoint).evaluate(expression_context(dev))
    except InvalidExpression:
        return endpoint
    return result if isinstance(result, str) and result else endpoint


def http_headers(dev: Provisioned, cmd: Mapping[str, Any]) -> dict[str, str]:
    """Headers of an HTTP push: fiware headers, ``contentType`` (default by protocol), then the command's
    ``headers``, each value a JEXL expression over the device context (they may override the others)."""
    default_type = UL_CONTENT_TYPE if is_ultralight(dev) else JSON_CONTENT_TYPE
    headers = {"fiware-service": dev.tenant, "fiware-servicepath": dev.profile.subservice,
               "Content-Type": str(cmd.get("contentType") or default_type)}
    extra = cmd.get("headers")
    if not extra:
        return headers
    ctx = expression_context(dev)
    for key, source in extra.items():
        try:
            value = compile_expression(str(source)).evaluate(ctx)
        except InvalidExpression as exc:
            raise InvalidExpression(str(source), f"header {key}: {exc.detail or 'cannot be evaluated'}") from None
        if value is None:
            continue
        if key.lower() == "content-type":
            headers.pop("Content-Type", None)
        headers[key] = to_js_string(value)
    return headers


def check_commands(commands: list[Mapping[str, Any]] | None) -> None:
    """Provisioning-time checks: command expressions and header expressions must parse, ``headers`` must be
    an object of strings, ``payloadType`` one the agents know (400 instead of a command that always fails)."""
    for cmd in commands or []:
        if cmd.get("expression") is not None:
            _parses(str(cmd["expression"]))
        headers = cmd.get("headers")
        if headers is not None:
            if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
                raise WrongSyntax(f"headers of command {cmd.get('name')} must be an object of JEXL strings")
            for source in headers.values():
                _parses(source)
        payload_type = cmd.get("payloadType")
        if payload_type is not None and str(payload_type).lower() not in PAYLOAD_TYPES:
            raise WrongSyntax(f"payloadType of command {cmd.get('name')} must be one of {', '.join(PAYLOAD_TYPES)}")


def _parses(source: str) -> None:
    try:
        compile_expression(source)
    except InvalidExpression as exc:
        exc.message = expression_error(exc)
        raise
