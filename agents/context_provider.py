"""The NGSI-LD calls a remote broker forwards to the agents (north port), as iotagent-node-lib's
``contextServer-NGSI-LD.js`` serves them for the device registrations of ``agents/registrations.py``.

- ``PATCH``/``PUT /ngsi-ld/v1/entities/{id}/attrs[/{attr}]`` and ``PATCH /ngsi-ld/v1/entities/{id}``: every
  command of the device named in the body runs exactly as an in-process command update does
  (``Commands.execute``: ``<cmd>_status`` PENDING written back to the broker, the command sent over MQTT /
  HTTP push or queued for polling, OK/ERROR and ``<cmd>_info`` later). Other attributes are ignored (the
  JSON and UL agents' update handler does nothing with them). 204 once the command was sent or queued.
- ``GET /ngsi-ld/v1/entities/{id}`` (and ``GET /ngsi-ld/v1/entities?id=``): the JSON and UL agents cannot
  ask a device for a lazy attribute, so, like the lib's default query handler, the answer holds each asked
  attribute (default: the device's lazy ones) with an empty value converted by its provisioned type, plus
  the static attributes.
- ``POST /ngsi-ld/v1/entities``, ``DELETE /ngsi-ld/v1/entities/{id}[/attrs/{attr}]``: 501, as the lib.

The device is found by entity id in the tenant of ``NGSILD-Tenant`` (else ``fiware-service``); a request
without either is matched in every tenant when the id is unambiguous. Unknown entity → 404
``DEVICE_NOT_FOUND``. Errors are ``{name, message}`` like every other north route (the lib's NGSI-LD routes
answer ``{error, description}`` with the same codes).
Differences: iotagent-json sets no merge-patch handler, so the lib answers ``PATCH /entities/{id}`` with
501; here it runs the commands like the other updates.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from agents.errors import BadRequest, DeviceNotFound, MethodNotImplemented, UnsupportedContentType
from agents.mapping import convert_attribute
from agents.registry import Provisioned
from agents.state import AGENTS, Agents

log = logging.getLogger("agents.context_provider")

BASE = "/ngsi-ld/v1/entities"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
NGSILD_NULL = "urn:ngsi-ld:null"
_JSON_TYPES = ("application/json", "application/ld+json")


def _tenant(request: web.Request) -> str | None:
    raw = request.headers.get("NGSILD-Tenant") or request.headers.get("fiware-service")
    return raw.strip().lower() if raw and raw.strip() else None


def find_device(agents: Agents, request: web.Request, entity_id: str) -> Provisioned:
    tenant = _tenant(request)
    found = agents.registry.devices_for_entity(entity_id, tenant)
    if len(found) != 1:
        raise DeviceNotFound(entity_id, {"service": tenant} if tenant else {"entity": entity_id})
    return found[0]


async def _json_body(request: web.Request) -> Any:
    if request.content_type not in _JSON_TYPES:
        raise UnsupportedContentType(request.headers.get("Content-Type", ""))
    raw = await request.read()
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None


def _value(fragment: Any) -> Any:
    """The value an attribute fragment carries (normalized, or concise when not an object)."""
    if not isinstance(fragment, dict):
        value = fragment
    else:
        value = next((fragment[k] for k in ("value", "json", "object", "languageMap", "vocab") if k in fragment), "")
    return None if value == NGSILD_NULL else value


def _values(fragment: Any) -> list[Any]:
    """One value per instance: a list of fragments (several datasetIds) runs the command once for each."""
    if isinstance(fragment, list) and fragment and all(isinstance(f, dict) for f in fragment):
        return [_value(f) for f in fragment]
    return [_value(fragment)]


def _named(body: dict[str, Any], name: str) -> Any:
    """The body member for attribute ``name``: compact, or expanded with the default vocabulary."""
    if name in body:
        return body[name]
    return body.get(DEFAULT_VOCAB + name)


def updates_of(dev: Provisioned, body: Any, attr: str | None) -> list[tuple[dict[str, Any], Any]]:
    """(command, value) for every command of the device the request updates, in the device's order."""
    commands = dev.profile.commands
    if attr is not None:
        cmd = next((c for c in commands if c["name"] == attr or DEFAULT_VOCAB + c["name"] == attr), None)
        return [(cmd, v) for v in _values(body)] if cmd is not None else []
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of attributes")
    out = []
    for cmd in commands:
        fragment = _named(body, cmd["name"])
        if fragment is not None or cmd["name"] in body:
            out.extend((cmd, v) for v in _values(fragment))
    return out


async def update(request: web.Request) -> web.Response:
    """PATCH/PUT ``/entities/{id}/attrs[/{attr}]`` and merge-patch ``PATCH /entities/{id}``."""
    agents = request.app[AGENTS]
    body = await _json_body(request)
    dev = find_device(agents, request, request.match_info["id"])
    attr = request.match_info.get("attr")
    runs = updates_of(dev, body, attr)
    if attr is not None and not runs:
        log.debug("forwarded update of %s/%s names no command: ignored", dev.entity_id, attr)
    for cmd, value in runs:
        await agents.commands.execute(dev, cmd, value)
    return web.Response(status=204)


def lazy_entity(dev: Provisioned, attrs: list[str] | None) -> dict[str, Any]:
    """What the lib's default NGSI-LD query handler answers: empty values typed as provisioned."""
    prof = dev.profile
    entity: dict[str, Any] = {"id": prof.entity_id, "type": prof.entity_type}
    names = attrs if attrs else [a["name"] for a in prof.lazy if a.get("name")]
    for name in names:
        provisioned = next((a for a in [*prof.commands, *prof.lazy] if a.get("name") == name), None)
        attr_type = (provisioned or {}).get("type") or "string"
        try:
            converted = convert_attribute(attr_type, "")
        except ValueError:  # geo types have no empty value
            converted = None
        if converted is not None:
            entity[name] = converted
    for static in prof.static_attributes:
        if attrs and static.get("name") not in attrs:
            continue
        try:
            converted = convert_attribute(static.get("type"), static.get("value"), static.get("metadata"))
        except ValueError:
            converted = None
        if converted is not None:
            entity[static["name"]] = converted
    return entity


def _attrs_param(request: web.Request) -> list[str] | None:
    raw = request.query.get("attrs")
    return [a for a in raw.split(",") if a] if raw else None


async def query_entity(request: web.Request) -> web.Response:
    agents = request.app[AGENTS]
    dev = find_device(agents, request, request.match_info["id"])
    return web.json_response(lazy_entity(dev, _attrs_param(request)))


async def query_entities(request: web.Request) -> web.Response:
    """``GET /entities?id=...``: the lib answers an array (empty without ``id``)."""
    agents = request.app[AGENTS]
    ids = [i for i in request.query.get("id", "").split(",") if i]
    return web.json_response([lazy_entity(find_device(agents, request, i), _attrs_param(request)) for i in ids])


async def not_implemented(request: web.Request) -> web.Response:
    raise MethodNotImplemented(request.method, request.path)


def add_routes(app: web.Application) -> None:
    for path in (BASE + "/{id}/attrs", BASE + "/{id}/attrs/{attr}"):
        app.router.add_patch(path, update)
        app.router.add_put(path, update)
    app.router.add_patch(BASE + "/{id}", update)
    app.router.add_get(BASE + "/{id}", query_entity)
    app.router.add_get(BASE, query_entities)
    app.router.add_post(BASE, not_implemented)
    app.router.add_delete(BASE + "/{id}", not_implemented)
    app.router.add_delete(BASE + "/{id}/attrs/{attr}", not_implemented)
