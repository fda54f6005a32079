"""HTTP southbound (port 7896): IoTA-JSON on ``/iot/json`` and UltraLight 2.0 on ``/iot/d``.

``k`` (apikey) and ``i`` (device id) are mandatory, ``t`` sets ``TimeInstant``, ``getCmd=1`` returns the
device's pending (polling) commands in the answer. Any other path is served when a config group uses it as
its ``resource`` (UltraLight when the request carries ``d=`` or a ``text/plain`` body, else JSON).
The answer is sent only after the measures were written.
"""

from __future__ import annotations

import logging

from aiohttp import web

from agents import iotajson, ultralight
from agents.errors import IotaError, MandatoryParamsNotFound, PayloadError, UltralightParseError
from agents.ingest import await_future
from agents.provisioning import iota_errors
from agents.registry import Provisioned
from agents.southbound import JSON, UL
from agents.state import AGENTS, Agents

log = logging.getLogger("agents.http")

TRANSPORT = "http"
JSON_RESOURCE = "/iot/json"
UL_RESOURCE = "/iot/d"


def _params(request: web.Request) -> tuple[str, str]:
    k, i = request.query.get("k"), request.query.get("i")
    missing = [n for n, v in (("k", k), ("i", i)) if not v]
    if missing:
        raise MandatoryParamsNotFound(missing)
    assert k is not None and i is not None
    return k, i


def _is_ul(request: web.Request, resource: str) -> bool:
    if resource == UL_RESOURCE:
        return True
    if resource == JSON_RESOURCE:
        return False
    return "d" in request.query or request.content_type == "text/plain"


async def _answer(agents: Agents, dev: Provisioned | None, request: web.Request, ul: bool) -> web.Response:
    if request.query.get("getCmd") not in ("1", "true") or dev is None:
        return web.Response(status=200, text="")
    pending = await agents.commands.take_polled(dev)
    if ul:
        lines = [ultralight.format_command(dev.device_id, n, None if v == "" else v) for n, v in pending.items()]
        return web.Response(text=ultralight.format_poll_response(lines), content_type="text/plain")
    if not pending:
        return web.Response(status=200, text="")
    return web.Response(text=iotajson.format_poll_response(pending), content_type="application/json")


async def _reject_payload(agents: Agents, exc: PayloadError, measures: int = 1) -> None:
    agents.south.reject(TRANSPORT, exc, measures, "HTTP payload")
    raise exc


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise UltralightParseError("the payload is not UTF-8 text") from None


async def measures(request: web.Request) -> web.Response:
    """``GET|POST <resource>?k=&i=`` (UL ``d=`` or body; JSON body)."""
    agents = request.app[AGENTS]
    resource = request.path.rstrip("/") or "/"
    k, i = _params(request)
    ul = _is_ul(request, resource)
    t = request.query.get("t")
    body = await request.read() if request.method == "POST" else b""
    if request.method == "GET" and "d" not in request.query:
        # a poll without measures: the device must exist, nothing is written
        dev = await agents.south.device(TRANSPORT, UL if ul else JSON, k, i, resource)
        return await _answer(agents, dev, request, ul)
    try:
        if ul:
            payload = request.query.get("d") if request.method == "GET" else _utf8(body)
            groups = ultralight.parse_measures(payload or "")
            if t:
                for g in groups:
                    g["TimeInstant"] = t
        else:
            groups = iotajson.parse_measures(body, t)  # bytes: invalid UTF-8 is its PARSE_ERROR
    except PayloadError as exc:
        agents.metrics.received[TRANSPORT] += 1
        await _reject_payload(agents, exc)
        raise
    future = await agents.south.measures(TRANSPORT, UL if ul else JSON, k, i, groups, resource)
    await await_future(future)
    if request.query.get("getCmd") not in ("1", "true"):
        return web.Response(status=200, text="")
    dev = await agents.south.device(TRANSPORT, UL if ul else JSON, k, i, resource)
    return await _answer(agents, dev, request, ul)


async def single_attribute(request: web.Request, attr: str) -> web.Response:
    """``POST <resource>/attrs/{attr}?k=&i=``: the body is the value of one attribute."""
    agents = request.app[AGENTS]
    resource = request.path.split("/attrs/")[0]
    k, i = _params(request)
    try:
        value = iotajson.parse_single_attribute(await request.read(), request.content_type)
        groups = [iotajson.attribute_measure(attr, value)]
    except PayloadError as exc:
        agents.metrics.received[TRANSPORT] += 1
        await _reject_payload(agents, exc)
        raise
    if request.query.get("t"):
        groups[0]["TimeInstant"] = request.query["t"]
    await await_future(await agents.south.measures(TRANSPORT, JSON, k, i, groups, resource))
    return web.Response(status=200, text="")


async def command_results(request: web.Request) -> web.Response:
    """``POST <resource>/commands?k=&i=`` with ``{"cmd": result}`` (or UL ``dev@cmd|result``)."""
    agents = request.app[AGENTS]
    resource = request.path.rsplit("/commands", 1)[0]
    k, i = _params(request)
    body = await request.read()
    try:
        if _is_ul(request, resource):
            res = ultralight.parse_command_result(_utf8(body))
            results = {res.command: res.result}
        else:
            results = iotajson.parse_command_results(body)
    except PayloadError as exc:
        agents.metrics.received[TRANSPORT] += 1
        await _reject_payload(agents, exc)
        raise
    await await_future(await agents.south.command_results(TRANSPORT, k, i, results, resource))
    return web.Response(status=200, text="")


async def dispatch(request: web.Request) -> web.Response:
    """Route by path: known resources, and any resource a config group declared."""
    try:
        return await _route(request)
    except MandatoryParamsNotFound as exc:
        agents = request.app[AGENTS]
        agents.metrics.received[TRANSPORT] += 1
        agents.south.reject(TRANSPORT, exc, 1, "HTTP request")
        raise


async def _route(request: web.Request) -> web.Response:
    path = request.path.rstrip("/")
    if "/attrs/" in path and request.method == "POST":
        return await single_attribute(request, path.rsplit("/attrs/", 1)[1])
    if path.endswith("/commands") and request.method == "POST":
        return await command_results(request)
    if request.method in ("GET", "POST"):
        if path in (JSON_RESOURCE, UL_RESOURCE) or _declared(request.app[AGENTS], path):
            return await measures(request)
        raise web.HTTPNotFound()
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])


def _declared(agents: Agents, path: str) -> bool:
    return any(g.get("resource") == path for groups in agents.registry.cache.groups_by_apikey.values()
               for g in groups)


def create_south_app(agents: Agents) -> web.Application:
    app = web.Application(middlewares=[iota_errors], client_max_size=agents.settings.max_body_bytes)
    app[AGENTS] = agents
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


__all__ = ["create_south_app", "IotaError"]
