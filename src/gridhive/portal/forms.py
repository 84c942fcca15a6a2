"""The enrollment form: built from the program's `enrollment_form`, read into the API's body.

The checks are the API's own (`EnrollmentCreate` and `enrollments.service`); this module only
turns form fields into that body and places each error the checks name next to its field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from gridhive.enrollments.schemas import EnrollmentCreate
from gridhive.errors import FieldError
from gridhive.programs.models import Program
from gridhive.programs.schemas import EnrollmentFormField

INPUT_TYPES = {"string": "text", "number": "text", "boolean": "checkbox"}
# The API's words are for developers; where a homeowner needs other words, these replace them.
HOMEOWNER_WORDS = {
    ("device_ids", "too_short"): "Choose at least one device to enroll",
    ("has_agreed_to_terms_and_conditions", None): (
        'Tick "I agree" to accept the terms and conditions'
    ),
}
GENERAL = "form"  # errors that belong to no one field are shown above the form


@dataclass(frozen=True)
class FormFieldView:
    """One generated input: `key` is its form name and the key of its errors."""

    spec: EnrollmentFormField

    @property
    def key(self) -> str:
        return f"answer_{self.spec.name}"

    @property
    def input_type(self) -> str:
        return INPUT_TYPES[self.spec.type]

    @property
    def inputmode(self) -> str | None:
        return "decimal" if self.spec.type == "number" else None


@dataclass
class EnrollForm:
    """What the form shows: its fields, the user's input, and the errors per field key."""

    fields: list[FormFieldView]
    values: dict[str, str] = field(default_factory=dict)
    device_ids: list[str] = field(default_factory=list)
    agreed: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        """Errors shown by their fields (the summary above the form counts them)."""
        return sum(len(messages) for key, messages in self.errors.items() if key != GENERAL)


def blank_form(program: Program, device_ids: Sequence[str]) -> EnrollForm:
    """A fresh form: every eligible device chosen, nothing answered."""
    return EnrollForm(fields=form_fields(program), device_ids=list(device_ids))


def form_fields(program: Program) -> list[FormFieldView]:
    return [FormFieldView(EnrollmentFormField.model_validate(f)) for f in program.enrollment_form]


def read_form(program: Program, form: FormData) -> EnrollForm:
    """The posted form as the user filled it (only text values; files are ignored)."""
    fields = form_fields(program)
    values = {f.key: _text(form.get(f.key)) for f in fields}
    device_ids = [v for v in form.getlist("device_ids") if isinstance(v, str)]
    return EnrollForm(fields, values, device_ids, agreed=_text(form.get("agree")) == "true")


def enrollment_body(program: Program, filled: EnrollForm) -> dict[str, Any]:
    """The Mobile App API's Create Enrollment body for this form (`USER_ACTION`)."""
    answers = [
        {"name": f.spec.name, "value": _answer(f, filled.values.get(f.key, ""))}
        for f in filled.fields
    ]
    has_terms = program.terms_and_conditions_version is not None
    return {
        "device_ids": filled.device_ids,
        "program_id": str(program.id),
        "enroll_method": "USER_ACTION",
        "has_agreed_to_terms_and_conditions": filled.agreed if has_terms else None,
        "terms_and_conditions_version": program.terms_and_conditions_version,
        "program_specific_attributes": answers,
    }


def validate_body(body: dict[str, Any]) -> EnrollmentCreate:
    """The API's own schema; its errors come back as FieldErrors with dotted paths."""
    try:
        return EnrollmentCreate.model_validate(body)
    except ValidationError as exc:
        raise BodyInvalid(
            [
                FieldError(message=_homeowner_words(error), path=".".join(map(str, error["loc"])))
                for error in exc.errors()
            ]
        ) from None


def _homeowner_words(error: ErrorDetails) -> str:
    if error["type"] == "too_long" and isinstance(error.get("input"), str):
        return f"Too long: at most {error.get('ctx', {}).get('max_length')} characters"
    return HOMEOWNER_WORDS.get((str(error["loc"][0]), error["type"]), error["msg"])


class BodyInvalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("invalid enrollment form")
        self.errors = errors


def place_errors(filled: EnrollForm, errors: Sequence[FieldError], message: str) -> None:
    """Put each error by the field its path names; the rest (or `message`) above the form."""
    for error in errors:
        key = _field_key(filled, error)
        words = HOMEOWNER_WORDS.get((error.path, None), error.message)
        if error.path == "program_specific_attributes" and key != GENERAL:
            words = "Please answer this question"  # next to the question it names
        filled.errors.setdefault(key, []).append(_readable(words))
    if not errors:
        filled.errors.setdefault(GENERAL, []).append(message)


def _field_key(filled: EnrollForm, error: FieldError) -> str:
    path = error.path.split(".")
    head = path[0]
    if head == "device_ids":
        return "devices"
    if head in ("has_agreed_to_terms_and_conditions", "terms_and_conditions_version"):
        return "terms"
    if head == "program_specific_attributes":
        if len(path) > 1 and path[1].isdigit() and int(path[1]) < len(filled.fields):
            return filled.fields[int(path[1])].key
        return _named_field(filled, error) or GENERAL
    return GENERAL


def _named_field(filled: EnrollForm, error: FieldError) -> str | None:
    # "the required field 'account_id' (...) is not answered" names its field.
    named = [f for f in filled.fields if f"'{f.spec.name}'" in error.message]
    return named[0].key if named else None


def _readable(message: str) -> str:
    """The service's words, with the first letter up, as a sentence next to a field."""
    text = message.strip()
    return text[:1].upper() + text[1:] if text else "This value is not valid"


def _answer(form_field: FormFieldView, value: str) -> str:
    # An unticked checkbox sends nothing: for a yes/no question that is a "no".
    if form_field.spec.type == "boolean":
        return "true" if value == "true" else "false"
    return value.strip()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
