"""Portal pages (HTML, not in the OpenAPI): one homeowner, one site, the Mobile App API's services.

Every form is a plain POST answered with a redirect (or the same page with its errors), so the
portal works without JavaScript inside any app's web view.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from gridhive.auth import service as auth_service
from gridhive.auth.deps import SessionDep
from gridhive.auth.errors import InvalidCredentials
from gridhive.commands import lifecycle
from gridhive.db.session import unit_of_work
from gridhive.enrollments import service as enrollment_service
from gridhive.errors import GridhiveError, Unprocessable
from gridhive.events import service as event_service
from gridhive.events.schemas import ParticipationUpdate
from gridhive.portal import branding, forms, views
from gridhive.web.session import PORTAL_COOKIE, PortalViewer, set_session_cookie
from gridhive.web.templating import render

router = APIRouter(include_in_schema=False)

# Messages after a redirect, chosen by a fixed key: nothing from the URL reaches the page.
DONE = {
    "enrolled": "You are enrolled. We will let you know when the utility has reviewed it.",
    "unenrolled": "You have left the program.",
    "opted_out": "Done: your battery will not take part in this event.",
    "opted_in": "Done: your battery will take part in this event again.",
}
DoneQuery = Annotated[str | None, Query(max_length=20)]


def _brand(request: Request) -> branding.Branding:
    settings = branding.PortalSettings()
    return branding.from_cookie(request.cookies.get(branding.BRAND_COOKIE), settings.asset_base_url)


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    flash = {"kind": "ok", "text": DONE[done]} if done in DONE else None
    context = {"brand": _brand(request), "flash": flash, **context}
    return render(request, f"portal/{name}", context, status_code=status_code)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# Entry ----------------------------------------------------------------------------------------


async def writing_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A unit of work that may write, for the one GET that does.

    The request session of a GET reads only (on SQLite its transaction cannot take the write
    lock later without failing under load), but following the session link uses the link up.
    """
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


WritingSessionDep = Annotated[AsyncSession, Depends(writing_session, scope="function")]


@router.get("/portal/session")
@router.get("/auth/session_token")
async def open_session(
    request: Request, session: WritingSessionDep, token: Annotated[str, Query(max_length=500)] = ""
) -> Response:
    """Use the single-use session link: a portal cookie for its site, then the home page."""
    try:
        portal_token, _ = await auth_service.open_portal(session, token)
    except InvalidCredentials:
        return render(request, "portal/ended.html", {}, status_code=401)
    response = _redirect("/portal")
    set_session_cookie(request, response, PORTAL_COOKIE, portal_token)
    brand = branding.parse_branding(request.query_params, branding.PortalSettings().asset_base_url)
    if brand.accepted:
        set_session_cookie(request, response, branding.BRAND_COOKIE, branding.to_cookie(brand))
    else:
        response.delete_cookie(branding.BRAND_COOKIE, path="/")
    return response


# Home, programs, enrollments --------------------------------------------------------------------


@router.get("/portal")
async def home(
    request: Request, session: SessionDep, viewer: PortalViewer, done: DoneQuery = None
) -> Response:
    site = await views.viewer_site(session, viewer)
    page = await views.home_page(session, site)
    return _page(request, "home.html", {"page": page, "views": views, "tab": "home"}, done=done)


@router.get("/portal/programs/{program_id}")
async def program(
    request: Request, program_id: str, session: SessionDep, viewer: PortalViewer
) -> Response:
    site = await views.viewer_site(session, viewer)
    page = await views.program_page(session, site, program_id)
    form = forms.blank_form(page.program, [d.id for d in page.devices])
    return _program_page(request, page, form)


def _program_page(
    request: Request, page: views.ProgramPage, form: forms.EnrollForm, status_code: int = 200
) -> Response:
    context = {"page": page, "form": form, "views": views, "tab": "home"}
    return _page(request, "program.html", context, status_code=status_code)


@router.post("/portal/programs/{program_id}/enroll")
async def enroll(
    request: Request, program_id: str, session: SessionDep, viewer: PortalViewer
) -> Response:
    """The Mobile App API's Create Enrollment (USER_ACTION); errors come back by their fields."""
    site = await views.viewer_site(session, viewer)
    page = await views.program_page(session, site, program_id)
    filled = forms.read_form(page.program, await request.form())
    try:
        data = forms.validate_body(forms.enrollment_body(page.program, filled))
        await enrollment_service.enroll_site(session, site=site, data=data)
    except forms.BodyInvalid as exc:
        forms.place_errors(filled, exc.errors, "The form could not be read")
        return _program_page(request, page, filled, status_code=422)
    except GridhiveError as exc:
        forms.place_errors(filled, exc.errors, exc.message)
        return _program_page(request, page, filled, status_code=exc.status_code)
    return _redirect("/portal?done=enrolled")


@router.get("/portal/enrollments/{enrollment_id}/unenroll")
async def confirm_unenroll(
    request: Request, enrollment_id: str, session: SessionDep, viewer: PortalViewer
) -> Response:
    site = await views.viewer_site(session, viewer)
    view = await views.enrollment_of_site(session, site, enrollment_id)
    return _page(request, "unenroll.html", {"view": view, "tab": "home"})


@router.post("/portal/enrollments/{enrollment_id}/unenroll")
async def unenroll(enrollment_id: str, session: SessionDep, viewer: PortalViewer) -> Response:
    """The Mobile App API's Delete Enrollment: UNENROLLED, and the program's commands end."""
    site = await views.viewer_site(session, viewer)
    view = await views.enrollment_of_site(session, site, enrollment_id)
    await lifecycle.unenroll(session, view.enrollment)
    return _redirect("/portal?done=unenrolled")


# Events -----------------------------------------------------------------------------------------


@router.get("/portal/events")
async def events(
    request: Request, session: SessionDep, viewer: PortalViewer, done: DoneQuery = None
) -> Response:
    site = await views.viewer_site(session, viewer)
    page = await views.events_page(session, site)
    return _page(request, "events.html", {"page": page, "tab": "events"}, done=done)


@router.post("/portal/events/{event_id}/participation")
async def participation(
    request: Request, event_id: str, session: SessionDep, viewer: PortalViewer
) -> Response:
    """The Mobile App API's Update Event Participation: opt out, or back in before the start."""
    site = await views.viewer_site(session, viewer)
    event, site_event = await views.event_of_site(session, site, event_id)
    choice = (await request.form()).get("is_participating")
    if choice not in ("true", "false"):
        raise Unprocessable("Choose whether your battery takes part in the event")
    update = ParticipationUpdate(is_participating=choice == "true")
    await event_service.set_participation(session, event, site_event, update.is_participating)
    return _redirect(
        f"/portal/events?done={'opted_in' if update.is_participating else 'opted_out'}"
    )
