"""Webhook endpoints, their delivery log, delivery settings, and the envelope on the wire."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator

from gridhive.integrations.webhook import url_problem
from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime
from gridhive.webhooks.models import Channel, DeliveryMode, DeliveryState, EndpointStatus

WebhookEventType = Literal[
    "event.created",
    "event.updated",
    "event.canceled",
    "command.created",
    "command.started",
    "command.ended",
    "command.canceled",
    "command.updated",
    "enrollment.created",
    "enrollment.updated",
    "settings.apply",
    "telemetry.published",
]
EVENT_TYPES: tuple[str, ...] = get_args(WebhookEventType)

Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="http(s) URL that receives POSTs",
        examples=["https://oem.example.com/gridhive/webhooks"],
    ),
]
EventTypes = Annotated[
    list[WebhookEventType],
    Field(
        min_length=1,
        description="Event types to receive; absent or null: every type (also future ones)",
    ),
]


def _check_url(value: str | None) -> str | None:
    if value is not None and (problem := url_problem(value)):
        raise ValueError(problem)
    return value


class WebhookEndpointCreate(InputSchema):
    url: Url
    event_types: EventTypes | None = None

    _url = field_validator("url")(_check_url)


class WebhookEndpointUpdate(InputSchema):
    """Only the fields sent change; `event_types: null` subscribes to every type."""

    url: Url | None = None
    event_types: EventTypes | None = None
    status: Literal["enabled", "disabled"] | None = Field(
        default=None,
        description="`enabled` also re-enables a suspended endpoint: its backlog is delivered "
        "in order",
    )

    _url = field_validator("url")(_check_url)


class WebhookEndpointRead(Schema):
    id: uuid.UUID
    url: str
    event_types: list[str] | None
    status: EndpointStatus
    failing_since: UTCDatetime | None = Field(description="Start of the current run of failures")
    suspended_at: UTCDatetime | None
    previous_secret_expires_at: UTCDatetime | None = Field(
        description="Until then, deliveries are also signed with the secret before the rotation"
    )
    created_at: UTCDatetime
    updated_at: UTCDatetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(description="Signing secret `whsec_...`; shown only now")


class SecretRotate(InputSchema):
    previous_secret_valid_s: int = Field(
        default=86400,
        ge=0,
        le=7 * 86400,
        description="How long the old secret keeps signing too (0: stop at once)",
    )


class DeliveryAttemptRead(Schema):
    attempt: int
    started_at: UTCDatetime
    status_code: int | None
    error: str | None
    latency_ms: int


class DeliveryRead(Schema):
    id: uuid.UUID = Field(description="The `webhook-id`: the same on every retry")
    message_id: uuid.UUID
    endpoint_id: uuid.UUID | None
    channel: Channel
    event_type: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: UTCDatetime | None
    created_at: UTCDatetime
    delivered_at: UTCDatetime | None
    attempt_log: list[DeliveryAttemptRead]


class DeliverySettingsRead(Schema):
    delivery_mode: DeliveryMode
    mqtt_topic_prefix: str = Field(
        description="With `mqtt`: messages go to `<prefix><object_type>/<device or site id>`"
    )


class DeliverySettingsUpdate(InputSchema):
    delivery_mode: DeliveryMode = Field(
        description="`webhook` (to your endpoints), `mqtt` (to the broker) or `polling` (none)"
    )


def envelope(event_type: str, event_object: dict[str, Any], timestamp: str) -> dict[str, Any]:
    """Flip's webhook body: `{event_type, event_object: {..., object_type}, timestamp}`."""
    return {"event_type": event_type, "event_object": event_object, "timestamp": timestamp}
