"""The IoT Agent provisioning API (north port, 4041), as iotagent-node-lib 4.x answers it.

Same routes, status codes and ``{"name", "message"}`` error bodies; ``fiware-service`` and
``fiware-servicepath`` are mandatory on every ``/iot/*`` route (``MISSING_HEADERS``), the service is
lower-cased and is the NGSI-LD tenant; ``fiware-servicepath: /*`` lists the whole service.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

from aiohttp import web

from agents import context_provider
from agents.command_payload import check_commands
from agents.errors import IotaError, MissingConfigParams, MissingHeaders, WrongSyntax
from agents.metrics import CONTENT_TYPE
from agents.registry import display_device
from agents.state import AGENTS, Agents
from broker import __version__
from broker.errors import NgsiLdError
from models.iota import (
    DeleteDevicesRequest,
    DevicesRequest,
    DeviceUpdate,
    GroupsRequest,
    GroupUpdate,
    parse_model,
)

log = logging.getLogger("agents.north")

LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "WARN": logging.WARNING,
              "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}
LIB_LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
                   logging.ERROR: "ERROR", logging.CRITICAL: "FATAL"}


@web.middleware
async def iota_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure as the lib's ``{"name", "message"}`` body."""
    try:
        return await handler(request)
    except IotaError as exc:
        return web.json_response(exc.to_body(), status=exc.status)
    except NgsiLdError as exc:  # the store or the entity layer refused a value (e.g. an integer past 64 bits)
        if exc.status >= 500:
            log.exception("%s %s failed", request.method, request.path)
            return web.json_response({"name": "INTERNAL_ERROR", "message": "Internal error in the IoT agent"},
                                     status=500)
        if exc.status == 400:
            return web.json_response({"name": "WRONG_SYNTAX", "message": f"Wrong syntax in request: {exc.detail}"},
                                     status=400)
        return web.json_response({"name": exc.type_name, "message": exc.detail}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        name = "METHOD_NOT_ALLOWED" if exc.status == 405 else "NOT_FOUND" if exc.status == 404 else exc.reason
        return web.json_response({"name": name, "message": f"{request.method} {request.path}: {exc.reason}"},
                                 status=exc.status)
    except Exception:  # noqa: BLE001 - a bug answers like the lib's generic error, and is logged
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"name": "INTERNAL_ERROR", "message": "Internal error in the IoT agent"},
                                 status=500)


def agents_of(request: web.Request) -> Agents:
    return request.app[AGENTS]


_SERVICE = re.compile(r"^[a-z0-9_\-]{1,48}$")


def fiware_headers(request: web.Request) -> tuple[str, str]:
    service = request.headers.get("fiware-service")
    subservice = request.headers.get("fiware-servicepath")
    missing = [h for h, v in (("fiware-service", service), ("fiware-servicepath", subservice)) if v is None]
    if missing:
        raise MissingHeaders(json.dumps(missing))
    assert service is not None and subservice is not None
    if not service.strip():
        raise MissingHeaders('["fiware-service"]')
    service = service.strip().lower()
    if not _SERVICE.match(service):
        # the service is the NGSI-LD tenant (a database name on MongoDB): the API's tenant rule applies
        raise WrongSyntax(f"fiware-service {service[:64]!r} must be 1 to 48 letters, digits, '_' or '-'")
    return service, subservice.strip() or "/"


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the recursion limit
        raise WrongSyntax("the body is not valid JSON") from None


def _page(request: web.Request, items: list[Any]) -> list[Any]:
    try:
        offset = int(request.query.get("offset", 0))
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        raise WrongSyntax("limit and offset must be integers") from None
    if offset < 0 or (limit is not None and limit < 0):
        raise WrongSyntax("limit and offset must not be negative")
    return items[offset:offset + limit if limit is not None else None]


def _group_params(request: web.Request) -> tuple[str, str]:
    resource, apikey = request.query.get("resource"), request.query.get("apikey")
    missing = [n for n, v in (("resource", resource), ("apikey", apikey)) if v is None]
    if missing:
        raise MissingConfigParams(missing)
    assert resource is not None and apikey is not None
    return resource, apikey


# ---------------------------------------------------------------------- config groups
def _groups_key(request: web.Request) -> str:
    return "services" if request.path.startswith("/iot/services") else "groups"


async def create_groups(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    body = await json_body(request)
    if isinstance(body, dict) and _groups_key(request) not in body and ("groups" in body or "services" in body):
        raise WrongSyntax(f"the body must hold '{_groups_key(request)}'")
    req = parse_model(GroupsRequest, body)
    _check_commands(req.items)
    agents = agents_of(request)
    for g in req.items:
        g.resource = g.resource or agents.settings.iota_default_resource
    await agents.registry.create_groups(service, subservice, req.items)
    return web.json_response({}, status=201)


async def list_groups(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    groups = await agents_of(request).registry.list_groups(service, subservice)
    return web.json_response({"count": len(groups), _groups_key(request): _page(request, groups)})


async def update_group(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    resource, apikey = _group_params(request)
    update = parse_model(GroupUpdate, await json_body(request))
    _check_commands([update])
    await agents_of(request).registry.update_group(service, subservice, resource, apikey, update)
    return web.Response(status=204)


async def delete_group(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    resource, apikey = _group_params(request)
    with_devices = request.query.get("device", "").lower() == "true"
    agents = agents_of(request)
    deleted = await agents.registry.delete_group(service, subservice, resource, apikey, with_devices)
    if agents.registrations is not None:
        await agents.registrations.devices_deleted(deleted)
    return web.Response(status=204)


# ---------------------------------------------------------------------- devices
async def create_devices(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    req = parse_model(DevicesRequest, await json_body(request))
    _check_commands(req.devices)
    agents = agents_of(request)
    docs = await agents.registry.create_devices(service, subservice, req.devices)
    await agents.commands.provisioned(docs)
    if agents.registrations is not None:
        await agents.registrations.devices_created(docs)
    return web.json_response({}, status=201)


async def list_devices(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    devices = await agents_of(request).registry.list_devices(service, subservice)
    return web.json_response({"count": len(devices),
                              "devices": [display_device(d) for d in _page(request, devices)]})


async def get_device(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    doc = await agents_of(request).registry.get_device(service, subservice, request.match_info["deviceId"],
                                                       request.query.get("apikey"))
    return web.json_response(display_device(doc))


async def update_device(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    update = parse_model(DeviceUpdate, await json_body(request))
    _check_commands([update])
    agents = agents_of(request)
    device_id, apikey = request.match_info["deviceId"], request.query.get("apikey")
    before = copy.deepcopy(await agents.registry.get_device(service, subservice, device_id, apikey))
    doc = await agents.registry.update_device(service, subservice, device_id, update, apikey)
    await agents.commands.provisioned([doc])
    if agents.registrations is not None:
        await agents.registrations.device_updated(before, doc)
    return web.Response(status=204)


async def delete_device(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    agents = agents_of(request)
    doc = await agents.registry.delete_device(service, subservice, request.match_info["deviceId"],
                                              request.query.get("apikey"))
    if agents.registrations is not None:
        await agents.registrations.devices_deleted([doc])
    return web.Response(status=204)


async def delete_many(request: web.Request) -> web.Response:
    service, subservice = fiware_headers(request)
    req = parse_model(DeleteDevicesRequest, await json_body(request))
    agents = agents_of(request)
    deleted, missing = await agents.registry.delete_devices(service, subservice,
                                                            [(d.deviceId, d.apikey) for d in req.devices])
    if agents.registrations is not None:
        await agents.registrations.devices_deleted(deleted)
    if missing is not None:
        raise missing
    return web.Response(status=204)


def _check_commands(items: list[Any]) -> None:
    """Command expressions, header expressions and payload types are checked before anything is stored."""
    for item in items:
        commands = getattr(item, "commands", None)
        if commands:
            check_commands([c.to_wire() for c in commands])


# ---------------------------------------------------------------------- operations
async def about(request: web.Request) -> web.Response:
    agents = agents_of(request)
    try:
        store_ok = await agents.store.ping()
    except Exception:  # noqa: BLE001 - any failure means "down" in the health report
        store_ok = False
    mqtt = agents.mqtt
    return web.json_response({
        "libVersion": __version__, "port": str(agents.settings.iota_north_port), "baseRoot": "/",
        "version": __version__,
        "connections": {
            "contextBroker": "ok" if not agents.settings.iota_cb_url else agents.settings.iota_cb_url,
            "iotagentManager": "not configured",
            "mongodb": "ok" if store_ok else "error",
            "mqtt": "not configured" if mqtt is None else ("ok" if mqtt.connected else "connecting"),
        },
    })


async def ready(request: web.Request) -> web.Response:
    try:
        ok = await agents_of(request).store.ping()
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=agents_of(request).metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def get_log_level(request: web.Request) -> web.Response:
    level = logging.getLogger("agents").getEffectiveLevel()
    return web.json_response({"level": LIB_LEVEL_NAMES.get(level, logging.getLevelName(level))})


async def put_log_level(request: web.Request) -> web.Response:
    raw = (request.query.get("level") or "").upper()
    if raw not in LOG_LEVELS:
        raise WrongSyntax(f"invalid log level {request.query.get('level')!r}; use DEBUG, INFO, WARNING, "
                          "ERROR or FATAL")
    logging.getLogger("agents").setLevel(LOG_LEVELS[raw])
    return web.json_response({})


def create_north_app(agents: Agents) -> web.Application:
    app = web.Application(middlewares=[iota_errors], client_max_size=agents.settings.max_body_bytes)
    app[AGENTS] = agents
    for base in ("/iot/groups", "/iot/services"):
        app.router.add_post(base, create_groups)
        app.router.add_get(base, list_groups)
        app.router.add_put(base, update_group)
        app.router.add_delete(base, delete_group)
    app.router.add_post("/iot/devices", create_devices)
    app.router.add_get("/iot/devices", list_devices)
    app.router.add_get("/iot/devices/{deviceId}", get_device)
    app.router.add_put("/iot/devices/{deviceId}", update_device)
    app.router.add_delete("/iot/devices/{deviceId}", delete_device)
    app.router.add_post("/iot/op/delete", delete_many)
    app.router.add_get("/iot/about", about)
    app.router.add_get("/version", about)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/admin/log", get_log_level)
    app.router.add_put("/admin/log", put_log_level)
    context_provider.add_routes(app)
    return app
