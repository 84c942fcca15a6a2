"""Signing in to the dashboard with an API key, and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gridhive.auth import service as auth_service
from gridhive.auth.deps import SessionDep
from gridhive.auth.errors import InvalidCredentials
from gridhive.auth.models import OrgKind
from gridhive.dashboard.pages import landing_url, notice, see_other
from gridhive.web.session import (
    DASHBOARD_COOKIE,
    DashboardViewer,
    clear_session_cookie,
    set_session_cookie,
)
from gridhive.web.templating import render

router = APIRouter(prefix="/dashboard")

# Longer than any key we issue; anything longer is not a key and is not looked up.
MAX_KEY_LENGTH = 200


def _safe_next(target: str) -> str:
    """Where to go after signing in: only a dashboard page of this site, never elsewhere."""
    inside = target.startswith("/dashboard/") and not target.startswith("/dashboard/sign-")
    return target if inside and "//" not in target and "\\" not in target else "/dashboard"


@router.get("/sign-in")
async def sign_in_form(
    request: Request, next_url: Annotated[str, Query(alias="next", max_length=2000)] = ""
) -> HTMLResponse:
    context = {"flash": notice(request), "next": _safe_next(next_url)}
    return render(request, "dashboard/sign_in.html", context)


@router.post("/sign-in", response_model=None)
async def sign_in(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2000)] = "",
) -> Response:
    try:
        if len(api_key) > MAX_KEY_LENGTH:
            raise InvalidCredentials("This API key is not valid or has been revoked")
        token, principal = await auth_service.sign_in_with_key(session, api_key)
        if principal.kind not in (OrgKind.UTILITY, OrgKind.OEM):
            raise InvalidCredentials("The dashboard is for utilities and device makers")
    except InvalidCredentials as exc:
        # The key is never echoed back into the page.
        context = {"error": exc.message, "next": _safe_next(next_url)}
        return render(request, "dashboard/sign_in.html", context, status_code=401)
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    set_session_cookie(request, response, DASHBOARD_COOKIE, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep) -> RedirectResponse:
    token = request.cookies.get(DASHBOARD_COOKIE)
    if token:
        await auth_service.end_web_session(session, token)
    response = see_other("/dashboard/sign-in", "signed-out")
    clear_session_cookie(response, DASHBOARD_COOKIE)
    return response


@router.get("")
async def home(viewer: DashboardViewer) -> RedirectResponse:
    """The dashboard opens on the first page of the organisation's kind."""
    return RedirectResponse(landing_url(viewer.kind), status_code=303)
