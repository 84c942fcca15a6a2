"""Every non-2xx answer carries Flip's error body.

`{code, message, status_code, errors: [{message, path}], detail: [{loc, msg, type}]}`; `detail`
keeps FastAPI's validation list so that Flip clients reading it keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridhive.errors import GridhiveError
from gridhive.idempotency.service import IdempotentReplay

log = structlog.get_logger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    500: "INTERNAL_ERROR",
}


def error_body(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    errors: Sequence[dict[str, str]] = (),
    detail: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "code": code or HTTP_CODES.get(status_code, "ERROR"),
        "message": message,
        "status_code": status_code,
        "errors": list(errors),
        "detail": list(detail),
    }


def error_response(status_code: int, message: str, **kwargs: Any) -> JSONResponse:
    headers = kwargs.pop("headers", None)
    return JSONResponse(error_body(status_code, message, **kwargs), status_code, headers=headers)


def _dotted(loc: Sequence[Any]) -> str:
    # Drop the leading "body"/"query"/"path" so that the path names the field as the client sent it.
    parts = list(loc[1:]) if loc and loc[0] in {"body", "query", "path", "header"} else list(loc)
    return ".".join(str(p) for p in parts) or str(loc[0] if loc else "")


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in exc.errors()
    ]
    errors = [
        {"message": d["msg"], "path": _dotted(e.get("loc", ()))}
        for d, e in zip(detail, exc.errors(), strict=True)
    ]
    first = errors[0] if errors else {"message": "invalid request", "path": ""}
    where = f" at '{first['path']}'" if first["path"] else ""
    message = f"Invalid request{where}: {first['message']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(422, message, errors=errors, detail=detail)


async def _gridhive(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GridhiveError)
    if isinstance(exc, IdempotentReplay):
        return JSONResponse(exc.body, exc.status_code, headers={"Idempotent-Replayed": "true"})
    errors = [{"message": e.message, "path": e.path} for e in exc.errors]
    detail = [{"loc": e.path.split("."), "msg": e.message, "type": exc.code} for e in exc.errors]
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return error_response(
        exc.status_code, exc.message, code=exc.code, errors=errors, detail=detail, headers=headers
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTP_CODES.get(exc.status_code, "")
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route for {request.method} {request.url.path}"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # Races that slip past the services' own checks (two requests creating the same id at once).
    log.warning("integrity_error", path=request.url.path, error=str(exc.__cause__ or exc)[:300])
    return error_response(409, "The request conflicts with the current state; retry it")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return error_response(500, "Internal error; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(GridhiveError, _gridhive)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(Exception, _unexpected)
