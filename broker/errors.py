"""NGSI-LD problem details: one small hierarchy that handlers raise and one middleware renders.

Every error maps to an ETSI GS CIM 009 error type URI and an HTTP status (clause 5.5.2 / 6.3.2).
"""

from __future__ import annotations

from typing import Any

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiLdError(Exception):
    """Base of every error the API reports as ``application/problem+json``."""

    type_name = "InternalError"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or (title or self.title)
        if title:
            self.title = title
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return ERROR_BASE + self.type_name

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type_uri, "title": self.title, "status": self.status,
                                "detail": self.detail}
        body.update(self.extra)
        return body


class InvalidRequest(NgsiLdError):
    type_name, status, title = "InvalidRequest", 400, "Invalid request"


class BadRequestData(NgsiLdError):
    type_name, status, title = "BadRequestData", 400, "Bad request data"


class AlreadyExists(NgsiLdError):
    type_name, status, title = "AlreadyExists", 409, "Already exists"


class OperationNotSupported(NgsiLdError):
    type_name, status, title = "OperationNotSupported", 422, "Operation not supported"


class ResourceNotFound(NgsiLdError):
    type_name, status, title = "ResourceNotFound", 404, "Resource not found"


class NonexistentTenant(NgsiLdError):
    type_name, status, title = "NonexistentTenant", 404, "Nonexistent tenant"


class TooComplexQuery(NgsiLdError):
    type_name, status, title = "TooComplexQuery", 403, "Too complex query"


class TooManyResults(NgsiLdError):
    type_name, status, title = "TooManyResults", 403, "Too many results"


class LdContextNotAvailable(NgsiLdError):
    type_name, status, title = "LdContextNotAvailable", 503, "@context not available"


class UnsupportedMediaType(NgsiLdError):
    # ETSI has no dedicated type for 415/406; brokers use InvalidRequest / NotAcceptable URIs.
    type_name, status, title = "UnsupportedMediaType", 415, "Unsupported media type"


class NotAcceptable(NgsiLdError):
    type_name, status, title = "NotAcceptable", 406, "Not acceptable"


class PayloadTooLarge(NgsiLdError):
    type_name, status, title = "PayloadTooLarge", 413, "Request body too large"


class MethodNotAllowed(NgsiLdError):
    type_name, status, title = "MethodNotAllowed", 405, "Method not allowed"


class Conflict(NgsiLdError):
    """Optimistic-concurrency conflict that survived every retry."""

    type_name, status, title = "Conflict", 409, "Concurrent modification"


class InternalError(NgsiLdError):
    pass
