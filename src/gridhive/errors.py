"""Errors that carry their HTTP status and code; one handler renders Flip's error body."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; `path` is dotted (e.g. `actions.0.starts_at`)."""

    message: str
    path: str


class GridhiveError(Exception):
    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        errors: list[FieldError] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if code is not None:
            self.code = code


class BadRequest(GridhiveError):
    status_code = 400
    code = "BAD_REQUEST"


class Unauthorized(GridhiveError):
    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(GridhiveError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(GridhiveError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(GridhiveError):
    status_code = 409
    code = "CONFLICT"


class InvalidState(GridhiveError):
    """The object exists but is in a state where the operation makes no sense."""

    status_code = 409
    code = "INVALID_STATE"


class PayloadTooLarge(GridhiveError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class Unprocessable(GridhiveError):
    """Well-formed input that breaks a business rule; name the field in `errors`."""

    status_code = 422
    code = "VALIDATION_ERROR"

    @classmethod
    def field(cls, path: str, message: str) -> Unprocessable:
        return cls(message, errors=[FieldError(message=message, path=path)])
