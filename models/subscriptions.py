"""Subscriptions as clients write them (ETSI GS CIM 009 clause 5.2.12), with compact names.

These models check the shape of a request; ``broker/services/subscriptions.py`` does the checks
that need an @context or the query parsers, and turns the result into the stored (expanded) form.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

Trigger = Literal["entityCreated", "entityUpdated", "entityDeleted", "attributeCreated", "attributeUpdated",
                  "attributeDeleted"]
DEFAULT_TRIGGERS: tuple[str, ...] = ("attributeCreated", "attributeUpdated")
FORMATS = ("normalized", "concise", "keyValues", "simplified")
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")


# a number as the client wrote it: 5 stays 5 when read back, 0.5 stays 0.5
# an integer past 64 bits (MongoDB stores none) is taken as the float it is closest to
PositiveNumber = Annotated[int, Field(gt=0, lt=2**63)] | Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KeyValuePair(_Strict):
    key: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)


class EntitySelector(_Strict):
    id: str | None = None
    idPattern: str | None = Field(None, min_length=1, max_length=1024)
    type: str = Field(min_length=1, max_length=2048)


class GeoQ(_Strict):
    geometry: str
    coordinates: list[Any] | str
    georel: str
    geoproperty: str | None = None


class Endpoint(_Strict):
    uri: str = Field(min_length=1, max_length=2048)
    accept: Literal["application/json", "application/ld+json", "application/geo+json"] = "application/json"
    timeout: float | None = Field(None, gt=0)
    cooldown: float | None = Field(None, ge=0)
    receiverInfo: list[KeyValuePair] | None = None
    notifierInfo: list[KeyValuePair] | None = None


class NotificationParams(_Strict):
    attributes: list[str] | None = None
    format: Literal["normalized", "concise", "keyValues", "simplified"] = "normalized"
    endpoint: Endpoint
    sysAttrs: StrictBool = False
    showChanges: StrictBool = False
    # projections and linked entities (clauses 4.21, 4.5.23), as in a query
    pick: list[str] | str | None = None
    omit: list[str] | str | None = None
    join: Literal["flat", "inline", "@none"] | None = None
    joinLevel: int | None = Field(None, ge=1)
    # read-only status members: accepted (and ignored) so a GET result can be sent back
    status: str | None = None
    timesSent: int | None = None
    timesFailed: int | None = None
    lastNotification: str | None = None
    lastSuccess: str | None = None
    lastFailure: str | None = None

    @field_validator("attributes")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must not be empty")
        return v


class SubscriptionIn(_Strict):
    """A subscription in a create request, or an update merged onto a stored one."""

    id: str | None = None
    type: Literal["Subscription"]
    subscriptionName: str | None = Field(None, max_length=1024)
    description: str | None = Field(None, max_length=4096)
    entities: list[EntitySelector] | None = None
    watchedAttributes: list[str] | None = None
    notificationTrigger: list[Trigger] | None = None
    timeInterval: PositiveNumber | None = None
    q: str | None = Field(None, min_length=1)
    geoQ: GeoQ | None = None
    scopeQ: str | None = Field(None, min_length=1)
    csf: str | None = None
    isActive: StrictBool = True
    notification: NotificationParams
    expiresAt: str | None = None
    throttling: PositiveNumber | None = None
    lang: str | None = Field(None, min_length=1)
    jsonldContext: str | None = None
    datasetId: list[str] | None = None
    # read-only members a client may send back from a GET
    status: str | None = None
    createdAt: str | None = None
    modifiedAt: str | None = None
    context: Any = Field(None, alias="@context")

    @field_validator("entities", "watchedAttributes", "notificationTrigger", "datasetId")
    @classmethod
    def _non_empty(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None and not v:
            raise ValueError("must not be empty")
        return v
