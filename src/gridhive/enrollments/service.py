"""Enrollments: some of a site's devices joined to a program, with Flip's checks and statuses."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices import service as device_service
from gridhive.devices.models import Device, DeviceType
from gridhive.enrollments import state
from gridhive.enrollments.errors import (
    EnrollmentClosed,
    EnrollmentConflict,
    EnrollmentInvalid,
    EnrollmentNotFound,
)
from gridhive.enrollments.models import (
    OPEN_STATUSES,
    Enrollment,
    EnrollmentDevice,
    EnrollmentStatus,
    EnrollMethod,
)
from gridhive.enrollments.schemas import (
    EnrollmentCreate,
    EnrollmentRead,
    EnrollmentTerms,
    ProgramSpecificAttribute,
)
from gridhive.errors import FieldError
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.programs.models import Program
from gridhive.programs.schemas import DeviceTypeName, EnrollmentFormField, ProgramEligibility
from gridhive.sites.models import Site
from gridhive.webhooks import service as webhook_service

# Reads ------------------------------------------------------------------------------------------


async def search_enrollments(
    session: AsyncSession, *, site: Site, page: Page | None = None
) -> Sequence[Enrollment]:
    """The site's enrollments, newest first (ended ones included: they are its history)."""
    stmt = (
        sa.select(Enrollment)
        .where(Enrollment.site_pk == site.pk)
        .order_by(Enrollment.created_at.desc(), Enrollment.id.desc())
    )
    if page is not None:
        stmt = stmt.offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).all()


async def get_enrollment_or_raise(
    session: AsyncSession, *, site: Site, enrollment_id: uuid.UUID
) -> Enrollment:
    enrollment = await session.scalar(
        sa.select(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.site_pk == site.pk)
    )
    if enrollment is None:
        raise EnrollmentNotFound(f"No enrollment with id {enrollment_id} at site '{site.id}'")
    return enrollment


async def search_open_enrollments(session: AsyncSession, *, site: Site) -> Sequence[Enrollment]:
    """The site's enrollments that still hold their devices, newest first."""
    enrollments = await search_enrollments(session, site=site)
    return [e for e in enrollments if e.status in OPEN_STATUSES]


# Programs offered to a site ---------------------------------------------------------------------


def site_eligibility(
    site: Site,
    device_type: str,
    devices: Sequence[Device] | None,
    *,
    zip_code: str | None = None,
) -> ProgramEligibility:
    """The site's place and the summed ratings of its batteries among `devices`.

    Ratings are summed, as Flip's `total_capacity_wh`/`total_power_w` are: two 5 kWh batteries
    offer the grid 10 kWh. Discharge power is what a demand-response event draws on. With
    `devices=None` the ratings are not judged. A `zip_code` given replaces the site's own.
    """
    batteries = [d for d in devices or () if d.type == DeviceType.BATTERY]
    judged = devices is not None
    return ProgramEligibility(
        device_type=device_type,
        zip_code=zip_code or site.zip_code,
        state_code=site.state_code,
        capacity_wh=sum(d.battery_capacity_wh or 0 for d in batteries) if judged else None,
        power_w=sum(d.battery_power_output_w or 0 for d in batteries) if judged else None,
    )


async def search_site_programs(
    session: AsyncSession,
    *,
    site: Site,
    device_type: DeviceTypeName,
    zip_code: str | None = None,
    page: Page | None = None,
) -> list[Program]:
    """Programs offered to the site for `device_type`, judged on all its live devices."""
    devices = await device_service.search_devices(session, site=site)
    query = site_eligibility(site, device_type, devices, zip_code=zip_code)
    return await program_service.search_offered_programs(session, query, page=page)


async def offered_programs(
    session: AsyncSession, *, site: Site, devices: Sequence[Device]
) -> list[Program]:
    """Programs offered to the site for any type among `devices`, oldest first."""
    found: dict[uuid.UUID, Program] = {}
    for device_type in sorted({device.type.value for device in devices}):
        query = site_eligibility(site, device_type, devices)
        for program in await program_service.search_offered_programs(session, query):
            found[program.id] = program
    return sorted(found.values(), key=lambda p: (p.created_at, p.id))


# Creating ---------------------------------------------------------------------------------------


async def enroll_site(session: AsyncSession, *, site: Site, data: EnrollmentCreate) -> Enrollment:
    """The Mobile App API's Create Enrollment: an unknown program is a 404."""
    program = await program_service.get_program_or_raise(session, data.program_id)
    return await create_enrollment(session, site=site, program=program, data=data)


async def create_enrollment(
    session: AsyncSession,
    *,
    site: Site,
    program: Program,
    data: EnrollmentCreate,
    path_prefix: str = "",
) -> Enrollment:
    """Check everything Flip checks, then enroll and tell the OEM and the utility.

    Bad input is one 422 naming every field at fault (`path_prefix` places the fields inside a
    larger body); a clash with another enrollment is a 409.
    """
    devices, errors = await _resolve_devices(session, site, program, data.device_ids, path_prefix)
    errors += _offer_errors(site, program, devices, path_prefix)
    errors += _method_errors(program, data.enroll_method, path_prefix)
    errors += _terms_errors(program, data, path_prefix)
    answers, answer_errors = _check_answers(program, data, path_prefix)
    errors += answer_errors
    if errors:
        raise EnrollmentInvalid.from_errors(errors)
    await _check_conflicts(session, site, program, devices, data.device_ids, path_prefix)
    enrollment = _new_enrollment(site, program, devices, data, answers)
    session.add(enrollment)
    await session.flush()
    await record_enrollment_change(session, enrollment, "enrollment.created")
    return enrollment


async def _resolve_devices(
    session: AsyncSession, site: Site, program: Program, device_ids: Sequence[str], prefix: str
) -> tuple[list[Device], list[FieldError]]:
    """The site's live devices named in `device_ids`, and an error for each one that is not."""
    found = await device_service.get_devices_by_ids(session, site=site, device_ids=device_ids)
    devices: list[Device] = []
    errors: list[FieldError] = []
    for index, device_id in enumerate(device_ids):
        device = found.get(device_id)
        if device_id in device_ids[:index]:
            problem: str | None = f"device '{device_id}' is listed twice"
        elif device is None:
            problem = f"no device '{device_id}' at site '{site.id}'"
        elif device.type not in program.eligible_device_types:
            allowed = ", ".join(program.eligible_device_types)
            problem = f"device '{device_id}' is a {device.type}; this program takes {allowed}"
        else:
            problem = None
            devices.append(device)
        if problem:
            errors.append(FieldError(message=problem, path=f"{prefix}device_ids.{index}"))
    return devices, errors


def _offer_errors(
    site: Site, program: Program, devices: Sequence[Device], prefix: str
) -> list[FieldError]:
    """Whether the program is offered here, judged on the devices being enrolled.

    When no named device is usable (each has its own error) only the place is judged.
    """
    types = {d.type.value for d in devices} or set(program.eligible_device_types)
    for device_type in sorted(types):
        query = site_eligibility(site, device_type, devices or None)
        problem = program_service.offer_problem(program, query)
        if problem:
            message = f"program {program.id} is not offered to site '{site.id}': {problem}"
            return [FieldError(message=message, path=f"{prefix}program_id")]
    return []


def _method_errors(program: Program, method: str, prefix: str) -> list[FieldError]:
    if method == EnrollMethod.AUTO_ENROLL and not program.can_auto_enroll:
        message = "this program does not allow automatic enrollment; use USER_ACTION"
        return [FieldError(message=message, path=f"{prefix}enroll_method")]
    return []


def _terms_errors(program: Program, terms: EnrollmentTerms, prefix: str) -> list[FieldError]:
    """A program with terms and conditions needs the homeowner's agreement to its version."""
    version = program.terms_and_conditions_version
    if version is None:
        return []
    errors = []
    if terms.has_agreed_to_terms_and_conditions is not True:
        errors.append(
            FieldError(
                message="must be true: the homeowner has to agree to the terms and conditions",
                path=f"{prefix}has_agreed_to_terms_and_conditions",
            )
        )
    if terms.terms_and_conditions_version != version:
        errors.append(
            FieldError(
                message=f"must be the program's current version '{version}'",
                path=f"{prefix}terms_and_conditions_version",
            )
        )
    return errors


def _check_answers(
    program: Program, terms: EnrollmentTerms, prefix: str
) -> tuple[list[dict[str, str]], list[FieldError]]:
    """Answers to the program's enrollment form, normalised for storage, and their problems."""
    form = {f.name: f for f in map(EnrollmentFormField.model_validate, program.enrollment_form)}
    path = f"{prefix}program_specific_attributes"
    answers = terms.program_specific_attributes or []
    stored: list[dict[str, str]] = []
    errors = _missing_answers(form, answers, path)
    for index, answer in enumerate(answers):
        field = form.get(answer.name)
        if field is None:
            known = ", ".join(form) or "none"
            message = f"'{answer.name}' is not a field of this program's form (fields: {known})"
            errors.append(FieldError(message=message, path=f"{path}.{index}.name"))
        elif any(a.name == answer.name for a in answers[:index]):
            message = f"'{answer.name}' is answered twice"
            errors.append(FieldError(message=message, path=f"{path}.{index}.name"))
        else:
            try:
                value = _parse_answer(field, answer.value)
            except ValueError as exc:
                errors.append(FieldError(message=str(exc), path=f"{path}.{index}.value"))
                continue
            if value is not None:
                stored.append({"name": field.name, "type": field.type, "value": value})
    return stored, errors


def _missing_answers(
    form: dict[str, EnrollmentFormField], answers: Sequence[ProgramSpecificAttribute], path: str
) -> list[FieldError]:
    answered = {a.name for a in answers if a.value}
    return [
        FieldError(message=f"the required field '{f.name}' ({f.label}) is not answered", path=path)
        for f in form.values()
        if f.required and f.name not in answered
    ]


def _parse_answer(field: EnrollmentFormField, text: str) -> str | None:
    """The value to store (None for a blank answer); ValueError says what the field expects."""
    if not text:
        return None  # a blank required answer is reported as not answered
    if field.type == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"the value of '{field.name}' must be 'true' or 'false'")
        return text.lower()
    if field.type == "number" and not _is_number(text):
        raise ValueError(f"the value of '{field.name}' must be a number")
    return text


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


async def _check_conflicts(
    session: AsyncSession,
    site: Site,
    program: Program,
    devices: Sequence[Device],
    device_ids: Sequence[str],
    prefix: str,
) -> None:
    """409 when the site is already in (or was rejected from) the program, or a device is
    held by an open enrollment in another program."""
    await _check_program_history(session, site, program)
    await _check_devices_free(session, program, devices, device_ids, prefix)


async def _check_program_history(session: AsyncSession, site: Site, program: Program) -> None:
    earlier = (
        await session.execute(
            sa.select(Enrollment.id, Enrollment.status).where(
                Enrollment.site_pk == site.pk,
                Enrollment.program_id == program.id,
                Enrollment.status.in_([*OPEN_STATUSES, EnrollmentStatus.REJECTED]),
            )
        )
    ).all()
    for enrollment_id, status in earlier:
        if status != EnrollmentStatus.REJECTED:
            raise EnrollmentConflict(
                f"Site '{site.id}' already has an open enrollment in program {program.id}: "
                f"{enrollment_id} ({status})"
            )
    if earlier:
        raise EnrollmentConflict(
            f"The utility rejected site '{site.id}' for program {program.id} "
            f"(enrollment {earlier[0][0]}); re-applying is not possible"
        )


async def _check_devices_free(
    session: AsyncSession,
    program: Program,
    devices: Sequence[Device],
    device_ids: Sequence[str],
    prefix: str,
) -> None:
    held = await session.execute(
        sa.select(EnrollmentDevice.device_id, Enrollment.program_id)
        .join(Enrollment, Enrollment.id == EnrollmentDevice.enrollment_id)
        .where(
            EnrollmentDevice.device_pk.in_([d.pk for d in devices]),
            Enrollment.status.in_(OPEN_STATUSES),
            Enrollment.program_id != program.id,
        )
    )
    errors = [
        FieldError(
            message=f"device '{device_id}' is already enrolled in program {other_program}",
            path=f"{prefix}device_ids.{list(device_ids).index(device_id)}",
        )
        for device_id, other_program in held
    ]
    if errors:
        raise EnrollmentConflict(
            f"Cannot enroll: {errors[0].message}; unenroll it there first", errors=errors
        )


def _new_enrollment(
    site: Site,
    program: Program,
    devices: Sequence[Device],
    data: EnrollmentCreate,
    answers: list[dict[str, str]],
) -> Enrollment:
    method = EnrollMethod(data.enroll_method)
    status, reason = _initial_status(program, method)
    return Enrollment(
        tenant_id=site.tenant_id,
        site=site,
        site_pk=site.pk,
        program_id=program.id,
        enroll_method=method,
        status=status,
        status_reason=reason,
        enrolled_at=utc_now() if status == EnrollmentStatus.ACTIVE else None,
        program_specific_attributes=answers,
        has_agreed_to_terms_and_conditions=data.has_agreed_to_terms_and_conditions,
        terms_and_conditions_version=data.terms_and_conditions_version,
        devices=[
            EnrollmentDevice(device_pk=device.pk, device_id=device.id, position=position)
            for position, device in enumerate(devices)
        ],
    )


def _initial_status(program: Program, method: EnrollMethod) -> tuple[EnrollmentStatus, str]:
    """Auto-enrollment was agreed beforehand; an app enrollment waits for the utility unless
    the program approves on its own."""
    if method == EnrollMethod.AUTO_ENROLL:
        return EnrollmentStatus.ACTIVE, "Enrolled automatically"
    if program.auto_approve:
        return EnrollmentStatus.ACTIVE, "Enrollment approved by utility"
    return EnrollmentStatus.PENDING, "Waiting for the utility's approval"


# Changing ---------------------------------------------------------------------------------------


async def unenroll(
    session: AsyncSession, enrollment: Enrollment, *, reason: str = "Unenrolled by the homeowner"
) -> Enrollment:
    """Mark the enrollment UNENROLLED; the row stays, as history needs it."""
    if enrollment.status not in OPEN_STATUSES:
        raise EnrollmentClosed(
            f"Enrollment {enrollment.id} is already {enrollment.status}; "
            "only an open enrollment can be unenrolled"
        )
    state.transition(enrollment, EnrollmentStatus.UNENROLLED, reason=reason, now=utc_now())
    await session.flush()
    await record_enrollment_change(session, enrollment, "enrollment.updated")
    return enrollment


async def record_enrollment_change(
    session: AsyncSession, enrollment: Enrollment, event_type: str
) -> None:
    """Write `event_type` (enrollment.created/updated) for the OEM and the program's utility.

    Both get Flip's Enrollment object; the rows commit with the change that caused them.
    """
    program = await program_service.get_program_or_raise(session, enrollment.program_id)
    event_object = EnrollmentRead.model_validate(enrollment).model_dump(mode="json")
    for org_id in (enrollment.tenant_id, program.utility_id):
        await webhook_service.emit(
            session,
            org_id=org_id,
            event_type=event_type,
            object_type="enrollment",
            subject_id=enrollment.site_id,
            event_object=event_object,
        )
