"""Webhook endpoints and delivery settings, for OEMs and utilities (our addition to Flip)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from gridhive.auth.deps import SessionDep
from gridhive.config import Settings
from gridhive.idempotency.routing import IdempotentRoute
from gridhive.kit.pagination import PageDep
from gridhive.webhooks import endpoints as service
from gridhive.webhooks.deps import TenantPrincipal
from gridhive.webhooks.models import DeliveryState, WebhookEndpoint
from gridhive.webhooks.schemas import (
    DeliveryRead,
    DeliverySettingsRead,
    DeliverySettingsUpdate,
    SecretRotate,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEventType,
)

router = APIRouter(prefix="/v1", tags=["Webhooks"], route_class=IdempotentRoute)

EndpointID = Annotated[uuid.UUID, Path(alias="id", description="Webhook endpoint id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such endpoint (or another organisation's)"}
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _endpoint(
    session: SessionDep, principal: TenantPrincipal, endpoint_id: EndpointID
) -> WebhookEndpoint:
    return await service.get_endpoint_or_raise(
        session, org_id=principal.org_id, endpoint_id=endpoint_id
    )


@router.post("/webhook-endpoints", response_model=WebhookEndpointCreated)
async def create_webhook_endpoint(
    request: Request, body: WebhookEndpointCreate, session: SessionDep, principal: TenantPrincipal
) -> object:
    """Register a URL to receive your organisation's messages, signed per Standard Webhooks.

    The answer carries the signing `secret` (`whsec_...`), shown only here and on rotation.
    Deliveries to one endpoint are made in order; failures are retried for about 8 hours, and
    an endpoint failing for 24 hours is suspended until you enable it again.
    """
    allow_private = _settings(request).webhooks.allow_private
    return await service.create_endpoint(
        session, org_id=principal.org_id, data=body, allow_private=allow_private
    )


@router.get("/webhook-endpoints", response_model=list[WebhookEndpointRead])
async def read_webhook_endpoints(
    session: SessionDep, principal: TenantPrincipal, page: PageDep
) -> object:
    """Your endpoints, oldest first (secrets are not shown)."""
    return await service.search_endpoints(session, org_id=principal.org_id, page=page)


@router.get("/webhook-endpoints/{id}", response_model=WebhookEndpointRead, responses=NOT_FOUND)
async def read_webhook_endpoint(
    session: SessionDep, principal: TenantPrincipal, endpoint_id: EndpointID
) -> object:
    """One endpoint, with its status (`enabled`, `disabled` or `suspended`)."""
    return await _endpoint(session, principal, endpoint_id)


@router.patch("/webhook-endpoints/{id}", response_model=WebhookEndpointRead, responses=NOT_FOUND)
async def update_webhook_endpoint(
    request: Request,
    body: WebhookEndpointUpdate,
    session: SessionDep,
    principal: TenantPrincipal,
    endpoint_id: EndpointID,
) -> object:
    """Change the URL, the event types or the status.

    `status: enabled` re-enables a suspended (or disabled) endpoint: its backlog is delivered
    at once, in order. A disabled endpoint keeps its backlog but receives no new messages.
    """
    endpoint = await _endpoint(session, principal, endpoint_id)
    allow_private = _settings(request).webhooks.allow_private
    return await service.update_endpoint(session, endpoint, body, allow_private=allow_private)


@router.delete(
    "/webhook-endpoints/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_webhook_endpoint(
    session: SessionDep, principal: TenantPrincipal, endpoint_id: EndpointID
) -> None:
    """Remove the endpoint, its undelivered backlog and its delivery log."""
    await service.delete_endpoint(session, await _endpoint(session, principal, endpoint_id))


@router.post(
    "/webhook-endpoints/{id}/rotate-secret",
    response_model=WebhookEndpointCreated,
    responses=NOT_FOUND,
)
async def rotate_webhook_secret(
    session: SessionDep,
    principal: TenantPrincipal,
    endpoint_id: EndpointID,
    body: SecretRotate | None = None,
) -> object:
    """Issue a new signing secret (shown only in this answer).

    For `previous_secret_valid_s` (default 24 h) deliveries carry a signature with each secret,
    so a receiver verifies with either while it switches.
    """
    endpoint = await _endpoint(session, principal, endpoint_id)
    valid = timedelta(seconds=(body or SecretRotate()).previous_secret_valid_s)
    return await service.rotate_secret(session, endpoint, previous_valid=valid)


@router.post("/webhook-endpoints/{id}/test", response_model=DeliveryRead, responses=NOT_FOUND)
async def test_webhook_endpoint(
    session: SessionDep, principal: TenantPrincipal, endpoint_id: EndpointID
) -> object:
    """Queue a signed `webhook.test` message to this endpoint; follow it in the delivery log."""
    endpoint = await _endpoint(session, principal, endpoint_id)
    return await service.send_test(session, endpoint)


@router.get(
    "/webhook-endpoints/{id}/deliveries", response_model=list[DeliveryRead], responses=NOT_FOUND
)
async def read_webhook_deliveries(
    session: SessionDep,
    principal: TenantPrincipal,
    endpoint_id: EndpointID,
    page: PageDep,
    state: Annotated[list[DeliveryState] | None, Query()] = None,
    event_type: Annotated[WebhookEventType | None, Query()] = None,
) -> object:
    """The delivery log, newest first: each message's state, attempts and their outcomes.

    `id` is the `webhook-id` header the receiver saw. `state` may be repeated.
    """
    endpoint = await _endpoint(session, principal, endpoint_id)
    return await service.search_deliveries(
        session, endpoint=endpoint, page=page, states=state or (), event_type=event_type
    )


@router.get("/delivery-settings", response_model=DeliverySettingsRead)
async def read_delivery_settings(session: SessionDep, principal: TenantPrincipal) -> object:
    """How your organisation receives messages: `webhook` (default), `mqtt` or `polling`."""
    return await service.get_delivery_settings(session, principal.org_id)


@router.patch("/delivery-settings", response_model=DeliverySettingsRead)
async def update_delivery_settings(
    request: Request, body: DeliverySettingsUpdate, session: SessionDep, principal: TenantPrincipal
) -> object:
    """Choose the delivery mode for messages from now on.

    `mqtt`: each message is published with QoS 1 to
    `gridhive/<org id>/<object_type>/<device or site id>` (the webhook envelope, with
    `webhook_id`). `polling`: nothing is pushed; poll `GET /v1/commands`.
    """
    mqtt_available = _settings(request).mqtt.url is not None
    return await service.set_delivery_mode(
        session, principal.org_id, body.delivery_mode, mqtt_available=mqtt_available
    )
