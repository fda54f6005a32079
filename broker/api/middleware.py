"""One middleware renders every error as ``application/problem+json``."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from aiohttp.web_exceptions import HTTPException

from ..errors import (
    ERROR_BASE,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NgsiLdError,
    PayloadTooLarge,
    ResourceNotFound,
)
from .reply import Reply

log = logging.getLogger("broker.api")

PROBLEM = "application/problem+json"


def problem_response(err: NgsiLdError) -> Reply:
    headers = {}
    if isinstance(err, MethodNotAllowed) and "allow" in err.extra:
        headers["Allow"] = err.extra.pop("allow")
    return Reply(body=orjson.dumps(err.to_problem()), status=err.status, content_type=PROBLEM,
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


__all__ = ["ERROR_BASE", "MAX_HEADER_BYTES", "MAX_LINE_BYTES", "problem_middleware", "problem_response"]
