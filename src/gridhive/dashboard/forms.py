"""Form posts meet the API's own validation: the same schemas and services, errors by field.

A form field is named after the API field it fills, and an error is keyed by the API's path
(`actions.0.setpoint_w`), so the page shows each message next to the input that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gridhive.errors import FieldError, GridhiveError, Unprocessable

SchemaT = TypeVar("SchemaT", bound=BaseModel)

ACTION_ROWS = 3
ACTION_FIELDS = (
    "mode",
    "starts_at",
    "duration_min",
    "power_mode",
    "setpoint_kw",
    "setpoint_mode",
    "backup_reserve_percentage",
    "enable_grid_import",
)
# Form inputs in friendlier units than the API's; their errors are shown at the input.
_UNIT_FIELDS = {"duration_min": "duration_s", "setpoint_kw": "setpoint_w"}


def validation_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors keyed by dotted path, first message per field."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "form"
        errors.setdefault(path, str(error["msg"]).removeprefix("Value error, "))
    return errors


def parse(schema: type[SchemaT], data: Any) -> SchemaT:
    """Validate form data with the API's schema; its errors become the API's 422."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(message=m, path=p) for p, m in validation_errors(exc).items()]
        first = errors[0]
        raise Unprocessable(f"{first.path}: {first.message}", errors=errors) from exc


def service_errors(exc: GridhiveError) -> dict[str, str]:
    """A service's refusal: its field errors by path, or one message for the whole form."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        errors.setdefault(error.path or "form", error.message)
    return errors or {"form": exc.message}


def split_ids(text: str) -> list[str]:
    """Ids typed one per line or separated by commas."""
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def event_body(form: Mapping[str, str]) -> dict[str, Any]:
    """The body of `POST /v1/events` from the create-event form (blank inputs left out, so the
    API's defaults and its "field required" messages apply)."""
    program_id = form.get("program_id", "")
    target_type = form.get("target_type", "")
    target_ids = split_ids(form.get("target_ids", ""))
    if target_type == "PROGRAM" and not target_ids and program_id:
        target_ids = [program_id]  # a PROGRAM target names the program itself
    return {
        "program_id": program_id,
        "target_type": target_type,
        "target_ids": target_ids,
        "actions": [_action(form, i) for i in _filled_rows(form)],
    }


def _filled_rows(form: Mapping[str, str]) -> Iterable[int]:
    # The first action is always sent; later rows only when the operator gave them a start.
    return [i for i in range(ACTION_ROWS) if i == 0 or form.get(f"actions.{i}.starts_at")]


def _action(form: Mapping[str, str], index: int) -> dict[str, Any]:
    action: dict[str, Any] = {}
    for name in ACTION_FIELDS:
        value = form.get(f"actions.{index}.{name}", "").strip()
        if value:
            api_name = _UNIT_FIELDS.get(name, name)
            action[api_name] = _in_api_units(name, value)
    return action


def _in_api_units(name: str, value: str) -> Any:
    """Minutes to seconds and kW to W; a value that is not a number goes through unchanged,
    so the API's own message ("should be a valid integer") names it."""
    factor = {"duration_min": 60, "setpoint_kw": 1000}.get(name)
    if factor is None:
        return value
    try:
        return round(float(value) * factor)
    except (ValueError, OverflowError):
        return value


def form_error_key(path: str) -> str:
    """The input an API error path belongs to (`actions.0.setpoint_w` → `actions.0.setpoint_kw`)."""
    if path.startswith("target_ids."):
        return "target_ids"  # one unknown id among many: shown at the ids' input
    for form_name, api_name in _UNIT_FIELDS.items():
        if path.endswith(f".{api_name}"):
            return path[: -len(api_name)] + form_name
    return path
