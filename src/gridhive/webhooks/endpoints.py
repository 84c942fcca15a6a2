"""Webhook endpoints, delivery settings and the delivery log: what the router calls.

Kept apart from `service.py` (emit and fan-out, on the hot path of every domain) so that each
file stays about one thing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.errors import Unprocessable
from gridhive.integrations.mqtt import TOPIC_ROOT, topic_level
from gridhive.integrations.webhook import check_url, new_secret
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.webhooks import repository, service
from gridhive.webhooks.errors import WebhookEndpointNotFound
from gridhive.webhooks.models import (
    Channel,
    Delivery,
    DeliveryMode,
    DeliverySettings,
    DeliveryState,
    EndpointStatus,
    WebhookEndpoint,
)
from gridhive.webhooks.schemas import (
    DeliveryAttemptRead,
    DeliveryRead,
    DeliverySettingsRead,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
)


async def _validated_url(url: str, *, allow_private: bool) -> str:
    problem = await check_url(url, allow_private=allow_private)
    if problem:
        raise Unprocessable.field("url", f"Webhook URL {problem}")
    return url


async def create_endpoint(
    session: AsyncSession, *, org_id: uuid.UUID, data: WebhookEndpointCreate, allow_private: bool
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        org_id=org_id,
        url=await _validated_url(data.url, allow_private=allow_private),
        secret=new_secret(),
        event_types=None if data.event_types is None else list(dict.fromkeys(data.event_types)),
        status=EndpointStatus.ENABLED,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def search_endpoints(
    session: AsyncSession, *, org_id: uuid.UUID, page: Page
) -> Sequence[WebhookEndpoint]:
    statement = (
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.org_id == org_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        .offset(page.skip)
        .limit(page.limit)
    )
    return (await session.scalars(statement)).all()


async def get_endpoint_or_raise(
    session: AsyncSession, *, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = await session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.org_id == org_id
        )
    )
    if endpoint is None:
        raise WebhookEndpointNotFound(f"No webhook endpoint with id {endpoint_id}")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    data: WebhookEndpointUpdate,
    *,
    allow_private: bool,
) -> WebhookEndpoint:
    """Change what was sent. Enabling a disabled or suspended endpoint, or giving it a new
    URL, resumes its backlog at once, oldest first (waiting retries become due now)."""
    now = utc_now()
    sent = data.model_fields_set
    if "url" in sent and data.url is not None and data.url != endpoint.url:
        endpoint.url = await _validated_url(data.url, allow_private=allow_private)
        # A new address is a new chance: waiting retries go there now.
        endpoint.failing_since = None
        await repository.release_lane(session, endpoint.id, now=now)
    if "event_types" in sent:
        types = data.event_types
        endpoint.event_types = None if types is None else list(dict.fromkeys(types))
    if data.status == "enabled" and endpoint.status is not EndpointStatus.ENABLED:
        endpoint.status = EndpointStatus.ENABLED
        endpoint.failing_since = None
        endpoint.suspended_at = None
        await repository.release_lane(session, endpoint.id, now=now)
    elif data.status == "disabled":
        endpoint.status = EndpointStatus.DISABLED
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint with its undelivered backlog and delivery log (the messages stay)."""
    # Deliveries name their endpoint without a foreign key (models.Delivery): no cascade.
    await session.execute(sa.delete(Delivery).where(Delivery.endpoint_id == endpoint.id))
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(
    session: AsyncSession, endpoint: WebhookEndpoint, *, previous_valid: timedelta
) -> WebhookEndpoint:
    """A new secret at once; the old one also signs for `previous_valid` so receivers switch
    without dropping messages (Standard Webhooks allows several signatures)."""
    now = utc_now()
    if previous_valid > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + previous_valid
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def send_test(session: AsyncSession, endpoint: WebhookEndpoint) -> DeliveryRead:
    """Queue a signed `webhook.test` message for this endpoint only (behind its backlog)."""
    message = await service.emit(
        session,
        org_id=endpoint.org_id,
        event_type=service.TEST_EVENT_TYPE,
        object_type="webhook_endpoint",
        subject_id=str(endpoint.id),
        event_object={
            "id": str(endpoint.id),
            "url": endpoint.url,
            "message": "A test message from gridhive: your endpoint receives and verifies.",
        },
    )
    await service.enqueue_deliveries(session, [(message.id.hex, endpoint.id.hex, Channel.WEBHOOK)])
    found = await search_deliveries(
        session, endpoint=endpoint, page=Page(skip=0, limit=1), message_id=message.id
    )
    return found[0]


async def search_deliveries(
    session: AsyncSession,
    *,
    endpoint: WebhookEndpoint,
    page: Page,
    states: Collection[DeliveryState] = (),
    event_type: str | None = None,
    message_id: uuid.UUID | None = None,
) -> list[DeliveryRead]:
    rows = await repository.search_deliveries(
        session,
        endpoint_id=endpoint.id,
        page=page,
        states=states,
        event_type=event_type,
        message_id=message_id,
    )
    attempts = await repository.attempts_of(session, [d.id for d, _ in rows])
    return [
        DeliveryRead(
            id=delivery.id,
            message_id=delivery.message_id,
            endpoint_id=delivery.endpoint_id,
            channel=delivery.channel,
            event_type=event_type,
            state=delivery.state,
            attempts=delivery.attempts,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            next_attempt_at=(
                delivery.due_at
                if delivery.state in (DeliveryState.PENDING, DeliveryState.FAILED)
                else None
            ),
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            attempt_log=[DeliveryAttemptRead.model_validate(a) for a in attempts[delivery.id]],
        )
        for delivery, event_type in rows
    ]


# Delivery settings ---------------------------------------------------------------------------


def _settings_read(org_id: uuid.UUID, mode: DeliveryMode) -> DeliverySettingsRead:
    prefix = f"{TOPIC_ROOT}/{topic_level(str(org_id))}/"
    return DeliverySettingsRead(delivery_mode=mode, mqtt_topic_prefix=prefix)


async def get_delivery_settings(session: AsyncSession, org_id: uuid.UUID) -> DeliverySettingsRead:
    row = await session.get(DeliverySettings, org_id)
    return _settings_read(org_id, row.delivery_mode if row else DeliveryMode.WEBHOOK)


async def set_delivery_mode(
    session: AsyncSession, org_id: uuid.UUID, mode: DeliveryMode, *, mqtt_available: bool
) -> DeliverySettingsRead:
    """Messages emitted from now on follow `mode`; deliveries already queued keep theirs."""
    if mode is DeliveryMode.MQTT and not mqtt_available:
        raise Unprocessable.field(
            "delivery_mode",
            "MQTT delivery is not available: this server has no broker (GRIDHIVE_MQTT__URL)",
        )
    row = await session.get(DeliverySettings, org_id)
    if row is None:
        row = DeliverySettings(org_id=org_id, delivery_mode=mode)
        session.add(row)
    else:
        row.delivery_mode = mode
        row.updated_at = utc_now()
    await session.flush()
    return _settings_read(org_id, mode)
