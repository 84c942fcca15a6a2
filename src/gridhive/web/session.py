"""Cookies of the portal and the dashboard, and the dependencies that read them.

The cookie holds a token of kind PORTAL or DASHBOARD (see `auth.service`): HttpOnly, so scripts
never see it, and SameSite=Lax, so another site cannot make a signed-in browser POST a form
here (the browser does not send Lax cookies on cross-site POSTs).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from gridhive.auth import service as auth_service
from gridhive.auth.deps import SessionDep
from gridhive.auth.errors import InvalidCredentials
from gridhive.auth.models import OrgKind, TokenKind
from gridhive.auth.service import WEB_SESSION_TTL, Principal
from gridhive.web.errors import PortalSessionEnded, SignInRequired

PORTAL_COOKIE = "gridhive_portal"
DASHBOARD_COOKIE = "gridhive_dashboard"


def set_session_cookie(request: Request, response: Response, name: str, token: str) -> None:
    response.set_cookie(
        name,
        token,
        max_age=int(WEB_SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/")


async def _portal_viewer(request: Request, session: SessionDep) -> Principal:
    token = request.cookies.get(PORTAL_COOKIE)
    if not token:
        raise PortalSessionEnded("Open the portal again from your app: this link has ended")
    try:
        return await auth_service.authenticate_web(session, token, TokenKind.PORTAL)
    except InvalidCredentials as exc:
        raise PortalSessionEnded(
            "Your portal session has ended. Open it again from your app."
        ) from exc


async def _dashboard_viewer(request: Request, session: SessionDep) -> Principal:
    token = request.cookies.get(DASHBOARD_COOKIE)
    if not token:
        raise SignInRequired("Sign in with your API key")
    try:
        principal = await auth_service.authenticate_web(session, token, TokenKind.DASHBOARD)
    except InvalidCredentials as exc:
        raise SignInRequired(exc.message) from exc
    if principal.kind not in (OrgKind.UTILITY, OrgKind.OEM):
        raise SignInRequired("The dashboard is for utilities and device makers")
    return principal


# The homeowner behind a portal cookie: `site_pk` is the one site they may see.
PortalViewer = Annotated[Principal, Depends(_portal_viewer)]
# The utility or device maker behind a dashboard cookie.
DashboardViewer = Annotated[Principal, Depends(_dashboard_viewer)]
