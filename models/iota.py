"""Provisioning models of the IoT agents, with iotagent-node-lib 4.x wire names.

Field names and validation follow the lib's JSON-schema templates (``lib/templates/deviceGroup.json``,
``createDevice.json``, ``updateDevice.json``) so existing provisioning scripts keep working. Unknown fields
are kept (``extra="allow"``): clients send agent-specific keys that must round-trip through the store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.errors import WrongSyntax

#: ``object_id``/``name``/``type`` pattern from the lib's templates (no markup or quote characters).
ATTR_NAME_PATTERN = r"^([^<>();'=\"]+)+$"
#: ``entity_type`` on an attribute may contain parentheses.
ATTR_ENTITY_TYPE_PATTERN = r"^([^<>;'=\"]+)+$"

AttrName = Annotated[str, Field(pattern=ATTR_NAME_PATTERN)]
ExplicitAttrs = bool | str | list[Any]


class _IotaModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=False)

    def to_wire(self) -> dict[str, Any]:
        """Dump as the lib answers: wire names, unset fields omitted, extras kept."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


class MqttOptions(_IotaModel):
    """Per-command MQTT publication options (``qos`` is a string ``"0"``..``"2"`` in the template)."""

    qos: int | str | None = None
    retain: bool | None = None

    @field_validator("qos")
    @classmethod
    def _qos(cls, v: int | str | None) -> int | str | None:
        if v is not None and str(v) not in ("0", "1", "2"):
            raise ValueError("qos must be 0, 1 or 2")
        return v


class Attribute(_IotaModel):
    """An entry of ``attributes``, ``lazy``, ``commands`` or ``static_attributes``."""

    object_id: AttrName | None = None
    name: AttrName | None = None
    type: AttrName | None = None
    expression: str | None = None
    skipValue: Any = None
    entity_name: str | None = None
    entity_type: Annotated[str, Field(pattern=ATTR_ENTITY_TYPE_PATTERN)] | None = None
    metadata: dict[str, Any] | None = None
    value: Any = None
    link: dict[str, Any] | None = None
    reverse: list[Any] | None = None
    payloadType: str | None = None
    contentType: str | None = None
    headers: dict[str, Any] | None = None
    mqtt: MqttOptions | None = None

    @model_validator(mode="after")
    def _named(self) -> Attribute:
        if not self.name and not self.object_id:
            raise ValueError("attribute needs a name or an object_id")
        return self

    @property
    def target_name(self) -> str:
        """NGSI attribute name (``name``, else the device-side ``object_id``)."""
        return self.name or self.object_id or ""

    @property
    def source_id(self) -> str:
        """Device-side key (``object_id``, else ``name``)."""
        return self.object_id or self.name or ""


class StaticAttribute(Attribute):
    """Static attributes must name a target attribute and carry its type."""

    @model_validator(mode="after")
    def _static(self) -> StaticAttribute:
        if not self.name:
            raise ValueError("static attribute needs a name")
        return self


class _Provisioned(_IotaModel):
    """Fields shared by config groups and devices."""

    entity_type: str | None = None
    service: str | None = None
    apikey: str | None = None
    timezone: str | None = None
    timestamp: bool | None = None
    endpoint: str | None = None
    transport: str | None = None
    attributes: list[Attribute] | None = None
    lazy: list[Attribute] | None = None
    commands: list[Attribute] | None = None
    static_attributes: list[StaticAttribute] | None = None
    internal_attributes: Any = None
    explicitAttrs: ExplicitAttrs | None = None
    entityNameExp: str | None = None
    ngsiVersion: str | None = None
    payloadType: str | None = None
    autoprovision: bool | None = None
    useCBflowControl: bool | None = None
    storeLastMeasure: bool | None = None
    cmdMode: str | None = None

    @field_validator("transport")
    @classmethod
    def _transport(cls, v: str | None) -> str | None:
        if v is not None and v.upper() not in ("HTTP", "MQTT", "AMQP"):
            raise ValueError("transport must be HTTP, MQTT or AMQP")
        return v


class ConfigGroup(_Provisioned):
    """A config group (``/iot/groups``); identified by ``(resource, apikey)``."""

    apikey: str
    resource: str
    subservice: str | None = None
    description: str | None = None
    cbHost: str | None = None
    trust: str | None = None
    token: str | None = None
    url: str | None = None
    defaultEntityNameConjunction: str | None = None


class Device(_Provisioned):
    """A provisioned device (``/iot/devices``); identified by ``(service, subservice, device_id, apikey)``."""

    device_id: Annotated[str, Field(min_length=1)]
    entity_name: str | None = None
    service_path: str | None = None
    protocol: str | None = None
    polling: bool | None = None
    resource: str | None = None
    lastMeasure: Any = None


class DeviceUpdate(_Provisioned):
    """Partial device update (``PUT /iot/devices/:id``); every field optional, as ``updateDevice.json``."""

    device_id: str | None = None
    entity_name: str | None = None
    protocol: str | None = None
    polling: bool | None = None
    lastMeasure: Any = None


class GroupUpdate(_Provisioned):
    """Partial group update (``PUT /iot/groups``)."""

    resource: str | None = None
    subservice: str | None = None
    description: str | None = None
    cbHost: str | None = None
    trust: str | None = None
    defaultEntityNameConjunction: str | None = None


class GroupsRequest(_IotaModel):
    """``POST /iot/groups`` body; ``services`` is the deprecated ``/iot/services`` key."""

    groups: list[ConfigGroup] | None = None
    services: list[ConfigGroup] | None = None

    @model_validator(mode="after")
    def _some(self) -> GroupsRequest:
        if self.groups is None and self.services is None:
            raise ValueError("groups is required")
        return self

    @property
    def items(self) -> list[ConfigGroup]:
        return self.groups if self.groups is not None else (self.services or [])


class DevicesRequest(_IotaModel):
    """``POST /iot/devices`` body."""

    devices: list[Device]


class DeleteDeviceRef(_IotaModel):
    deviceId: str
    apikey: str | None = None


class DeleteDevicesRequest(_IotaModel):
    """``POST /iot/op/delete`` body."""

    devices: list[DeleteDeviceRef]


M = TypeVar("M", bound=BaseModel)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "FATAL"]


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every failing field, like the lib's JSON-schema messages."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; failures become :class:`WrongSyntax` (400 ``WRONG_SYNTAX``)."""
    if not isinstance(data, dict):
        raise WrongSyntax(f"expected a JSON object for {model.__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise WrongSyntax(describe_validation_error(exc)) from None
