"""What every dashboard page shares: who may see it, the navigation, redirects and notices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import HTMLResponse, RedirectResponse

from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.auth.service import Principal
from gridhive.errors import Forbidden
from gridhive.web.session import DashboardViewer
from gridhive.web.templating import render

UTILITY_TABS = (
    ("events", "Events", "/dashboard/events"),
    ("programs", "Programs", "/dashboard/programs"),
    ("enrollments", "Enrollments", "/dashboard/enrollments"),
    ("fleet", "Fleet health", "/dashboard/fleet"),
)
OEM_TABS = (
    ("commands", "Commands", "/dashboard/commands"),
    ("webhooks", "Webhooks", "/dashboard/webhooks"),
    ("delivery", "Delivery mode", "/dashboard/delivery"),
    ("keys", "API keys", "/dashboard/keys"),
)
KIND_LABELS = {OrgKind.UTILITY: "Utility", OrgKind.OEM: "Device maker"}

# What a redirect-after-post says on the next page (`?done=<key>`): fixed texts, so a link
# cannot put words of its own on the page.
NOTICES = {
    "event-created": "Event dispatched: every device's command is planned below.",
    "event-canceled": "Event canceled. Device makers are told; devices return to normal.",
    "enrollment-updated": "Enrollment updated.",
    "group-created": "Group created.",
    "group-updated": "Group updated.",
    "group-deleted": "Group deleted; its sites stay enrolled.",
    "endpoint-deleted": "Webhook endpoint deleted.",
    "endpoint-enabled": "Endpoint enabled: its backlog is being delivered in order.",
    "test-sent": "Test message queued: it appears in the log below.",
    "mode-updated": "Delivery mode saved.",
    "key-revoked": "API key revoked.",
    "signed-out": "You are signed out.",
}


class WrongDashboard(Forbidden):
    code = "WRONG_DASHBOARD"


async def _utility_viewer(viewer: DashboardViewer) -> Principal:
    if viewer.kind is not OrgKind.UTILITY:
        raise WrongDashboard("This page is for utilities; you are signed in as a device maker")
    return viewer


async def _oem_viewer(viewer: DashboardViewer) -> Principal:
    if viewer.kind is not OrgKind.OEM:
        raise WrongDashboard("This page is for device makers; you are signed in as a utility")
    return viewer


UtilityViewer = Annotated[Principal, Depends(_utility_viewer)]
OemViewer = Annotated[Principal, Depends(_oem_viewer)]


def landing_url(kind: OrgKind) -> str:
    return "/dashboard/events" if kind is OrgKind.UTILITY else "/dashboard/commands"


def notice(request: Request) -> dict[str, str] | None:
    text = NOTICES.get(request.query_params.get("done", ""))
    return {"kind": "ok", "text": text} if text else None


def see_other(url: str, done: str | None = None) -> RedirectResponse:
    """Redirect after a POST, so that reloading the next page does not post again."""
    return RedirectResponse(f"{url}?done={done}" if done else url, status_code=303)


async def render_page(
    request: Request,
    session: AsyncSession,
    viewer: Principal,
    name: str,
    context: dict[str, Any],
    *,
    tab: str,
    status_code: int = 200,
) -> HTMLResponse:
    """A signed-in page: the organisation's name and kind and its tabs in the navigation."""
    org = await auth_service.get_organization_or_raise(session, viewer.org_id)
    tabs = UTILITY_TABS if viewer.kind is OrgKind.UTILITY else OEM_TABS
    page = {
        "org": org,
        "org_kind": KIND_LABELS.get(viewer.kind, viewer.kind.value),
        "tabs": tabs,
        "tab": tab,
        "flash": notice(request),
    }
    return render(request, name, {**page, **context}, status_code=status_code)
