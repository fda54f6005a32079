"""One middleware renders every error as ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_exceptions import HTTPException
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..errors import (
    ERROR_BASE,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NgsiLdError,
    PayloadTooLarge,
    ResourceNotFound,
)

log = logging.getLogger("broker.api")

PROBLEM = "application/problem+json"


def problem_response(err: NgsiLdError) -> web.Response:
    headers = {}
    if isinstance(err, MethodNotAllowed) and "allow" in err.extra:
        headers["Allow"] = err.extra.pop("allow")
    return web.Response(body=orjson.dumps(err.to_problem()), status=err.status, content_type=PROBLEM,
                        headers=headers)


def _from_http(exc: HTTPException) -> NgsiLdError:
    if exc.status == 413:
        return PayloadTooLarge(exc.text or "Request body too large")
    if exc.status == 404:
        return ResourceNotFound("No such resource: the URL does not name an NGSI-LD resource")
    if exc.status == 405:
        allow = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return MethodNotAllowed(f"Method not allowed here; allowed: {allow}", allow=allow)
    err = InvalidRequest(exc.text or exc.reason)
    err.status = exc.status
    return err


@web.middleware
async def problem_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except NgsiLdError as err:
        return problem_response(err)
    except HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http(exc))
    except Exception:  # noqa: BLE001 - the last line of defence: log, answer 500, keep serving
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(InternalError("Internal error; see the broker log"))


# Request line (path and query string) and header sizes the HTTP parser accepts. aiohttp's default of
# 8190 bytes is too small for real queries (``id=`` with a few hundred URNs, long ``q`` expressions).
MAX_LINE_BYTES = 65536
MAX_HEADER_BYTES = 16384


class _ProblemRequestHandler(RequestHandler):
    """Answers what aiohttp's HTTP parser rejects (request line or header too long, malformed
    request) as problem+json too: those errors never reach the middleware."""

    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; refuses once a response began
        if status >= 500:
            err: NgsiLdError = InternalError("Internal error; see the broker log")
        elif isinstance(exc, LineTooLong):
            err = InvalidRequest(f"Request line or a header is too long (the limits are {MAX_LINE_BYTES} and "
                                 f"{MAX_HEADER_BYTES} bytes)", title="Request too long")
            err.status = 431 if exc.args and isinstance(exc.args[0], bytes) else 414
        else:
            err = InvalidRequest(f"Malformed HTTP request: {message or exc}")
            err.status = status
        resp = problem_response(err)
        resp.force_close()
        return resp


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = _ProblemRequestHandler
        return handler


class ProblemAppRunner(web.AppRunner):
    """``web.AppRunner`` with the API's request limits, whose protocol-level errors are problem+json."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_LINE_BYTES)
        kwargs.setdefault("max_field_size", MAX_HEADER_BYTES)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ProblemServer
        return server


__all__ = ["ERROR_BASE", "MAX_HEADER_BYTES", "MAX_LINE_BYTES", "ProblemAppRunner", "problem_middleware",
           "problem_response"]
