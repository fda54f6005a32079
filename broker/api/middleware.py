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


def _protocol_error(status: int, exc: BaseException | None, message: str | None) -> NgsiLdError:
    if status >= 500:
        return InternalError("Internal error; see the broker log")
    if isinstance(exc, LineTooLong):
        err = InvalidRequest(f"Request line or a header is too long (the limits are {MAX_LINE_BYTES} and "
                             f"{MAX_HEADER_BYTES} bytes)", title="Request too long")
        err.status = 431 if exc.args and isinstance(exc.args[0], bytes) else 414  # a header, else the URL
        return err
    err = InvalidRequest(f"Malformed HTTP request: {message or exc}")
    err.status = status
    return err


class ProblemRequestHandler(RequestHandler):
    """Answers what aiohttp's HTTP parser rejects (request line or header too long, malformed
    request) like the application's own errors: those never reach a middleware, and aiohttp would
    answer them in text/plain. Subclasses change ``error_response`` (the agents' ports)."""

    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; refuses once a response began
        resp = self.error_response(_protocol_error(status, exc, message))
        resp.force_close()
        return resp

    @staticmethod
    def error_response(err: NgsiLdError) -> web.Response:
        return problem_response(err)


class _ProblemServer(web.Server):
    handler_class: type[RequestHandler] = ProblemRequestHandler

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = self.handler_class
        return handler


class ProblemAppRunner(web.AppRunner):
    """``web.AppRunner`` with the request limits above, whose protocol-level errors are answered by
    ``handler_class.error_response`` (problem+json here)."""

    handler_class: type[ProblemRequestHandler] = ProblemRequestHandler

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_LINE_BYTES)
        kwargs.setdefault("max_field_size", MAX_HEADER_BYTES)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ProblemServer
        server.handler_class = self.handler_class  # type: ignore[attr-defined]
        return server


__all__ = ["ERROR_BASE", "MAX_HEADER_BYTES", "MAX_LINE_BYTES", "ProblemAppRunner", "ProblemRequestHandler",
           "problem_middleware", "problem_response"]
