"""Errors on pages are pages: the same status and message as the API's error body, in HTML.

The API's handlers decide status and message for every exception (Flip's error body); for a
request to a page we render that same decision as HTML instead of writing a second mapping.
A page never shows a stack trace: unexpected errors are the API's generic 500 message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from gridhive.errors import GridhiveError
from gridhive.web.templating import render

PAGE_PREFIXES = ("/portal", "/dashboard", "/auth/session_token")
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class SignInRequired(GridhiveError):
    """A dashboard page without a valid session: the browser is sent to the sign-in page."""

    status_code = 401
    code = "SIGN_IN_REQUIRED"


class PortalSessionEnded(GridhiveError):
    """A portal page without a valid portal cookie: the homeowner needs a new link."""

    status_code = 401
    code = "PORTAL_SESSION_ENDED"


def is_page(request: Request) -> bool:
    return request.url.path.startswith(PAGE_PREFIXES)


def install(app: FastAPI) -> None:
    """Wrap every installed exception handler so that page requests get an HTML answer."""
    for exc_class, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(exc_class, _as_page(handler))
    app.add_exception_handler(SignInRequired, _to_sign_in)


def _to_sign_in(request: Request, exc: Exception) -> Response:
    if request.headers.get("HX-Request"):
        # An HTMX call cannot follow a redirect into a whole page: ask for a full reload.
        return Response(status_code=204, headers={"HX-Redirect": "/dashboard/sign-in"})
    # Back to the page that was asked for after signing in (the sign-in page only accepts
    # dashboard paths), e.g. the event link `gridhive demo` prints.
    target = "/dashboard/sign-in"
    if request.method == "GET" and request.url.path != target:
        target += "?" + urlencode({"next": request.url.path})
    return RedirectResponse(target, status_code=303)


def _as_page(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if isinstance(answer, Awaitable) else answer
        if not is_page(request):
            return response
        body = _error_body(response)
        return render(
            request,
            "error.html",
            {"status_code": response.status_code, "message": body.get("message", "Error")},
            status_code=response.status_code,
        )

    return handle


def _error_body(response: Response) -> dict[str, Any]:
    try:
        body = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        return {}
    return body if isinstance(body, dict) else {}
