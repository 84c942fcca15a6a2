"""Device maker pages: commands and their acks, webhook endpoints and their delivery log,
the delivery mode, and API keys."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gridhive.auth import service as auth_service
from gridhive.auth.deps import SessionDep
from gridhive.auth.service import Principal
from gridhive.commands import service as command_service
from gridhive.commands.models import CommandStatus, DeviceStatus
from gridhive.config import Settings
from gridhive.dashboard.forms import parse, service_errors
from gridhive.dashboard.pages import OemViewer, render_page, see_other
from gridhive.errors import GridhiveError
from gridhive.kit.pagination import Page
from gridhive.web.templating import render
from gridhive.webhooks import endpoints as webhook_endpoints
from gridhive.webhooks.models import DeliveryMode, WebhookEndpoint
from gridhive.webhooks.schemas import EVENT_TYPES, WebhookEndpointCreate, WebhookEndpointUpdate

router = APIRouter(prefix="/dashboard")

EndpointId = Annotated[uuid.UUID, Path(description="Webhook endpoint id")]
PageNumber = Annotated[int, Query(ge=1, le=100_000)]
PAGE_SIZE = 25
ALL = Page(limit=1000)
# As the API's default: receivers verify with either secret while they switch.
ROTATION_OVERLAP = timedelta(hours=24)


def _page(number: int) -> Page:
    return Page(skip=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# Commands ------------------------------------------------------------------------------------


@router.get("/commands")
async def commands_page(
    request: Request,
    session: SessionDep,
    viewer: OemViewer,
    status: Annotated[CommandStatus | None, Query()] = None,
    device_status: Annotated[DeviceStatus | None, Query()] = None,
    device_id: Annotated[str, Query(max_length=255)] = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    """The service of `GET /v1/commands`, in update order, with its filters."""
    filters = command_service.CommandFilter(
        statuses=[status] if status else (),
        device_statuses=[device_status] if device_status else (),
        device_id=device_id or None,
    )
    commands = await command_service.search_commands(
        session, tenant_id=viewer.org_id, filters=filters, page=_page(page)
    )
    context = {
        "commands": commands,
        "filters": {"status": status or "", "device_status": device_status or ""},
        "device_id": device_id,
        "statuses": [s.value for s in CommandStatus],
        "device_statuses": [s.value for s in DeviceStatus],
        "page": page,
        "has_more": len(commands) == PAGE_SIZE,
    }
    return await render_page(
        request, session, viewer, "dashboard/commands.html", context, tab="commands"
    )


# Webhook endpoints ---------------------------------------------------------------------------


async def _endpoints_page(
    request: Request,
    session: AsyncSession,
    viewer: Principal,
    *,
    created: WebhookEndpoint | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "endpoints": await webhook_endpoints.search_endpoints(
            session, org_id=viewer.org_id, page=ALL
        ),
        "created": created,
        "event_types": EVENT_TYPES,
        "form": form or {"input": {}, "errors": {}},
    }
    return await render_page(
        request,
        session,
        viewer,
        "dashboard/webhooks.html",
        context,
        tab="webhooks",
        status_code=status_code,
    )


@router.get("/webhooks")
async def webhooks_page(request: Request, session: SessionDep, viewer: OemViewer) -> HTMLResponse:
    return await _endpoints_page(request, session, viewer)


@router.post("/webhooks")
async def create_endpoint(request: Request, session: SessionDep, viewer: OemViewer) -> Response:
    """Register an endpoint; its secret is on this answer only (not kept in any link)."""
    form = await request.form()
    types = [str(t) for t in form.getlist("event_types")]
    values = {"url": str(form.get("url", "")), "event_types": types or None}
    try:
        data = parse(WebhookEndpointCreate, values)
        endpoint = await webhook_endpoints.create_endpoint(
            session,
            org_id=viewer.org_id,
            data=data,
            allow_private=_settings(request).webhooks.allow_private,
        )
    except GridhiveError as exc:
        form_state = {"input": values, "errors": service_errors(exc)}
        return await _endpoints_page(
            request, session, viewer, form=form_state, status_code=exc.status_code
        )
    return await _endpoints_page(request, session, viewer, created=endpoint)


async def _endpoint(
    session: AsyncSession, viewer: Principal, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    return await webhook_endpoints.get_endpoint_or_raise(
        session, org_id=viewer.org_id, endpoint_id=endpoint_id
    )


async def _endpoint_page(
    request: Request,
    session: AsyncSession,
    viewer: Principal,
    endpoint: WebhookEndpoint,
    *,
    page: int = 1,
    secret: str | None = None,
) -> HTMLResponse:
    deliveries = await webhook_endpoints.search_deliveries(
        session, endpoint=endpoint, page=_page(page)
    )
    context = {
        "endpoint": endpoint,
        "secret": secret,
        "deliveries": deliveries,
        "page": page,
        "has_more": len(deliveries) == PAGE_SIZE,
    }
    return await render_page(
        request, session, viewer, "dashboard/webhook.html", context, tab="webhooks"
    )


@router.get("/webhooks/{endpoint_id}")
async def endpoint_page(
    request: Request,
    endpoint_id: EndpointId,
    session: SessionDep,
    viewer: OemViewer,
    page: PageNumber = 1,
) -> HTMLResponse:
    """The endpoint and its delivery log, newest first, with every attempt."""
    endpoint = await _endpoint(session, viewer, endpoint_id)
    return await _endpoint_page(request, session, viewer, endpoint, page=page)


@router.get("/webhooks/{endpoint_id}/log")
async def endpoint_log(
    request: Request,
    endpoint_id: EndpointId,
    session: SessionDep,
    viewer: OemViewer,
    page: PageNumber = 1,
) -> HTMLResponse:
    """The delivery log alone, refreshed in place by HTMX."""
    endpoint = await _endpoint(session, viewer, endpoint_id)
    deliveries = await webhook_endpoints.search_deliveries(
        session, endpoint=endpoint, page=_page(page)
    )
    context = {"endpoint": endpoint, "deliveries": deliveries, "page": page}
    return render(request, "dashboard/_delivery_log.html", context)


@router.post("/webhooks/{endpoint_id}/rotate-secret")
async def rotate_secret(
    request: Request, endpoint_id: EndpointId, session: SessionDep, viewer: OemViewer
) -> HTMLResponse:
    """A new secret, shown on this answer only; the old one signs too for 24 hours."""
    endpoint = await _endpoint(session, viewer, endpoint_id)
    await webhook_endpoints.rotate_secret(session, endpoint, previous_valid=ROTATION_OVERLAP)
    return await _endpoint_page(request, session, viewer, endpoint, secret=endpoint.secret)


@router.post("/webhooks/{endpoint_id}/test")
async def send_test(endpoint_id: EndpointId, session: SessionDep, viewer: OemViewer) -> Response:
    endpoint = await _endpoint(session, viewer, endpoint_id)
    await webhook_endpoints.send_test(session, endpoint)
    return see_other(f"/dashboard/webhooks/{endpoint.id}", "test-sent")


@router.post("/webhooks/{endpoint_id}/enable")
async def enable_endpoint(
    request: Request, endpoint_id: EndpointId, session: SessionDep, viewer: OemViewer
) -> Response:
    """Re-enable a suspended or disabled endpoint: its backlog is delivered, in order."""
    endpoint = await _endpoint(session, viewer, endpoint_id)
    await webhook_endpoints.update_endpoint(
        session,
        endpoint,
        WebhookEndpointUpdate(status="enabled"),
        allow_private=_settings(request).webhooks.allow_private,
    )
    return see_other(f"/dashboard/webhooks/{endpoint.id}", "endpoint-enabled")


@router.post("/webhooks/{endpoint_id}/delete")
async def delete_endpoint(
    endpoint_id: EndpointId, session: SessionDep, viewer: OemViewer
) -> Response:
    endpoint = await _endpoint(session, viewer, endpoint_id)
    await webhook_endpoints.delete_endpoint(session, endpoint)
    return see_other("/dashboard/webhooks", "endpoint-deleted")


# Delivery mode -------------------------------------------------------------------------------


@router.get("/delivery")
async def delivery_page(request: Request, session: SessionDep, viewer: OemViewer) -> HTMLResponse:
    return await _delivery_page(request, session, viewer)


async def _delivery_page(
    request: Request,
    session: AsyncSession,
    viewer: Principal,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "settings": await webhook_endpoints.get_delivery_settings(session, viewer.org_id),
        "modes": [m.value for m in DeliveryMode],
        "mqtt_available": _settings(request).mqtt.url is not None,
        "error": error,
    }
    return await render_page(
        request,
        session,
        viewer,
        "dashboard/delivery.html",
        context,
        tab="delivery",
        status_code=status_code,
    )


@router.post("/delivery")
async def set_delivery_mode(
    request: Request,
    session: SessionDep,
    viewer: OemViewer,
    delivery_mode: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        mode = DeliveryMode(delivery_mode)
    except ValueError:
        error = "Choose webhook, MQTT or polling"
        return await _delivery_page(request, session, viewer, error=error, status_code=422)
    try:
        await webhook_endpoints.set_delivery_mode(
            session, viewer.org_id, mode, mqtt_available=_settings(request).mqtt.url is not None
        )
    except GridhiveError as exc:
        return await _delivery_page(
            request, session, viewer, error=exc.message, status_code=exc.status_code
        )
    return see_other("/dashboard/delivery", "mode-updated")


# API keys ------------------------------------------------------------------------------------


async def _keys_page(
    request: Request, session: AsyncSession, viewer: Principal, *, new_key: str | None = None
) -> HTMLResponse:
    keys = await auth_service.search_api_keys(session, org_id=viewer.org_id)
    context = {
        "keys": keys,
        "prefix": auth_service.key_prefix,
        "new_key": new_key,
        "current_key_id": viewer.api_key_id,
    }
    return await render_page(request, session, viewer, "dashboard/keys.html", context, tab="keys")


@router.get("/keys")
async def keys_page(request: Request, session: SessionDep, viewer: OemViewer) -> HTMLResponse:
    return await _keys_page(request, session, viewer)


@router.post("/keys")
async def create_key(
    request: Request,
    session: SessionDep,
    viewer: OemViewer,
    name: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """A new key, shown in full on this answer only (only its hash is stored)."""
    _, text = await auth_service.create_api_key(
        session, org_id=viewer.org_id, name=name.strip() or None
    )
    return await _keys_page(request, session, viewer, new_key=text)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    key_id: Annotated[uuid.UUID, Path()], session: SessionDep, viewer: OemViewer
) -> RedirectResponse:
    """Revoke a key; revoking the one this session was opened with also signs you out."""
    await auth_service.revoke_api_key(session, key_id, org_id=viewer.org_id)
    return see_other("/dashboard/keys", "key-revoked")
