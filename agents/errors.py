"""IoT agent errors with iotagent-node-lib's codes, so clients see the same ``{"name", "message"}`` bodies."""

from __future__ import annotations

import json
from typing import Any


class IotaError(Exception):
    """Base of every IoT agent error; ``code`` is the lib's ``name`` and ``status`` its HTTP status."""

    code: str = "INTERNAL_ERROR"
    status: int = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message()
        super().__init__(self.message)

    def default_message(self) -> str:
        return self.code

    def to_body(self) -> dict[str, str]:
        """The error body every iotagent-node-lib route answers with."""
        return {"name": self.code, "message": self.message}


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


class WrongSyntax(IotaError):
    code, status = "WRONG_SYNTAX", 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"Wrong syntax in request: {detail}")


class MissingHeaders(IotaError):
    code, status = "MISSING_HEADERS", 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"Some headers were missing from the request: {detail}")


class MissingAttributes(IotaError):
    code, status = "MISSING_ATTRIBUTES", 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"The request was not well formed:{detail}")


class DeviceNotFound(IotaError):
    code, status = "DEVICE_NOT_FOUND", 404

    def __init__(self, device_id: str, info: Any = None) -> None:
        super().__init__(f"No device was found with id:{device_id} and {_dump(info or {})}")


class DeviceGroupNotFound(IotaError):
    code, status = "DEVICE_GROUP_NOT_FOUND", 404

    def __init__(self, fields: Any = None) -> None:
        if fields:
            super().__init__(f"Couldn't find device group for fields: {_dump(fields)}")
        else:
            super().__init__("Couldn't find device group")


class GroupNotFound(IotaError):
    code, status = "GROUP_NOT_FOUND", 404

    def __init__(self, service: str, subservice: str, entity_type: str | None = None) -> None:
        msg = f"Group not found for service [{service}] and subservice [{subservice}]"
        if entity_type:
            msg += f" and type [{entity_type}]"
        super().__init__(msg)


class EntityNotFound(IotaError):
    code, status = "ENTITY_NOT_FOUND", 404

    def __init__(self, entity_id: str) -> None:
        super().__init__(f"The entity with the requested id [{entity_id}] was not found.")


class DuplicateDeviceId(IotaError):
    code, status = "DUPLICATE_DEVICE_ID", 409

    def __init__(self, device_id: str) -> None:
        super().__init__(f"A device with the same pair (Service, DeviceId) was found:{device_id}")


class DuplicateGroup(IotaError):
    code, status = "DUPLICATE_GROUP", 409

    def __init__(self, resource: str, apikey: str) -> None:
        super().__init__(f"A device configuration already exists for resource {resource} and API Key {apikey}")


class BadTimestamp(IotaError):
    code, status = "BAD_TIMESTAMP", 400

    def __init__(self, value: Any, entity: str | None = None) -> None:
        suffix = f" for entity [{entity}]" if entity else ""
        super().__init__(f"Invalid ISO8601 timestamp [{value}]{suffix}")


class BadGeocoordinates(IotaError):
    code, status = "BAD_GEOCOORDINATES", 400

    def __init__(self, payload: Any, device: Any = None) -> None:
        super().__init__(f"Invalid rfc7946 coordinates [{_dump(payload)}] in {_dump(device or {})}")


class InvalidExpression(IotaError):
    code, status = "INVALID_EXPRESSION", 400

    def __init__(self, expression: str, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(f"Invalid expression in evaluation [{expression}]")


class WrongExpressionType(IotaError):
    code, status = "WRONG_EXPRESSION_TYPE", 400

    def __init__(self, expr_type: str) -> None:
        super().__init__(f"Invalid type evaluating expression [{expr_type}]")


class MismatchedService(IotaError):
    code, status = "MISMATCHED_SERVICE", 403

    def __init__(self) -> None:
        super().__init__("The declared service didn't match the stored one in the entity")


class AccessForbidden(IotaError):
    code, status = "ACCESS_FORBIDDEN", 403

    def __init__(self, service: str = "", subservice: str = "") -> None:
        super().__init__(f"The access to the CB was rejected for service [{service}] and subservice [{subservice}]")


class CommandNotFound(IotaError):
    code, status = "COMMAND_NOT_FOUND", 400

    def __init__(self, command: str) -> None:
        super().__init__(f"Couldn't update the command because no attribute with name [{command}] was found.")


class TypeNotFound(IotaError):
    code, status = "TYPE_NOT_FOUND", 500

    def __init__(self, device_id: str | None = None) -> None:
        super().__init__(f"Type not found for device [{device_id}]")


class UnsupportedContentType(IotaError):
    code, status = "UNSUPPORTED_CONTENT_TYPE", 400

    def __init__(self, content_type: str) -> None:
        super().__init__(f"Unsupported content type in the context request: {content_type}")


class MethodNotImplemented(IotaError):
    code, status = "METHOD_NOT_IMPLEMENTED", 501

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"IoT Agents do not support the endpoint: {method} {path}")


class EntityGenericError(IotaError):
    code, status = "ENTITY_GENERIC_ERROR", 500

    def __init__(self, entity: str, detail: Any = None, status: int | None = None) -> None:
        if status is not None:
            self.status = status
        super().__init__(f"Error accesing entity data for device: {entity}: {_dump(detail)}")


class BadRequest(IotaError):
    """A forwarded NGSI-LD request whose body is not what the lib's ``updateContextNgsiLD`` template allows."""

    code, status = "BAD_REQUEST", 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"Errors found validating request: {detail}")


class RegistrationError(IotaError):
    """The context broker refused (or could not be asked for) a device's csourceRegistration."""

    code, status = "REGISTRATION_ERROR", 500

    def __init__(self, device_id: str, entity_type: str, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        super().__init__(f"Error registering context provider for device: {device_id} of type: {entity_type}{suffix}")


class UnregistrationError(IotaError):
    code, status = "UNREGISTRATION_ERROR", 500

    def __init__(self, device_id: str, entity_type: str, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        super().__init__(
            f"Error unregistering context provider for device: {device_id} of type: {entity_type}{suffix}")


class PayloadError(IotaError):
    """A southbound payload (UltraLight or IoTA-JSON) that cannot be decoded; the agents log and drop it."""

    code, status = "PARSE_ERROR", 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"Error parsing payload: {detail}")


class UltralightParseError(PayloadError):
    code = "PARSE_ERROR"


class JsonPayloadError(PayloadError):
    code = "PARSE_ERROR"


class MissingConfigParams(IotaError):
    code, status = "MISSING_CONFIG_PARAMS", 400

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Some parameters were missing from the request: {_dump(missing)}")


class MandatoryParamsNotFound(IotaError):
    """HTTP southbound request without ``k`` or ``i`` (iotagent-json's ``MANDATORY_PARAMS_NOT_FOUND_HTTP``)."""

    code, status = "MANDATORY_PARAMS_NOT_FOUND_HTTP", 400

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Mandatory parameters not found: {_dump(missing)}")


class InvalidMeasure(IotaError):
    """The mapped entity was refused by the broker's validation (e.g. a malformed GeoJSON value)."""

    code, status = "WRONG_SYNTAX", 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"The measure could not be mapped to a valid entity: {detail}")


class WriteFailed(IotaError):
    """The context broker (in-process or remote) did not accept the update."""

    code, status = "ENTITY_GENERIC_ERROR", 500

    def __init__(self, detail: str, status: int = 500) -> None:
        self.status = status
        super().__init__(f"Error updating the context broker: {detail}")


class Overloaded(IotaError):
    code, status = "SERVICE_UNAVAILABLE", 503

    def __init__(self) -> None:
        super().__init__("The agent is shutting down")
