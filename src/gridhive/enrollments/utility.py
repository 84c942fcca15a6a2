"""The Utility API's side of enrollments: a program's enrollments, and the utility's decisions.

Kept apart from service.py (the homeowner's and the OEM's side) as commission.py is: same
models, another door, and service.py would otherwise pass the house limit of ~500 lines.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.enrollments import service, state
from gridhive.enrollments.errors import EnrollmentClosed, EnrollmentNotFound
from gridhive.enrollments.models import Enrollment, EnrollmentDevice, EnrollmentStatus
from gridhive.enrollments.schemas import (
    UtilityEnrollmentRead,
    UtilityEnrollmentUpdate,
    UtilitySiteRead,
)
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.programs.models import Group, Program

# Reads ------------------------------------------------------------------------------------------


async def search_program_enrollments(
    session: AsyncSession,
    *,
    utility_id: uuid.UUID,
    program_id: uuid.UUID,
    page: Page,
    statuses: Collection[EnrollmentStatus] = (),
) -> Sequence[Enrollment]:
    """Every enrollment in the caller's program, ended ones included, oldest first; only the
    given statuses when some are given (filtered in the query, so paging stays exact)."""
    await program_service.get_program_or_raise(session, program_id, utility_id=utility_id)
    stmt = sa.select(Enrollment).where(Enrollment.program_id == program_id)
    if statuses:
        stmt = stmt.where(Enrollment.status.in_(statuses))
    stmt = stmt.order_by(Enrollment.created_at, Enrollment.id).offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).all()


async def get_enrollment_for_utility_or_raise(
    session: AsyncSession, *, utility_id: uuid.UUID, enrollment_id: uuid.UUID
) -> Enrollment:
    """An enrollment in one of the utility's programs; any other does not exist for it."""
    enrollment = await session.scalar(
        sa.select(Enrollment)
        .join(Program, Program.id == Enrollment.program_id)
        .where(Enrollment.id == enrollment_id, Program.utility_id == utility_id)
    )
    if enrollment is None:
        raise EnrollmentNotFound(f"No enrollment with id {enrollment_id} in your programs")
    return enrollment


async def utility_enrollments(
    session: AsyncSession, enrollments: Sequence[Enrollment]
) -> list[UtilityEnrollmentRead]:
    """UtilityEnrollment objects with their devices and groups: two more queries for a whole
    page, never one per enrollment (the site comes joined, the device links selectin-loaded).

    Deleted devices are left out: they no longer take part, though their history stays.
    """
    devices = await _live_devices(session, enrollments)
    groups: dict[tuple[uuid.UUID, uuid.UUID], list[Group]] = {}
    for program_id in {e.program_id for e in enrollments}:
        site_pks = [e.site_pk for e in enrollments if e.program_id == program_id]
        by_site = await program_service.groups_of_sites(
            session, program_id=program_id, site_pks=site_pks
        )
        groups.update({(program_id, site_pk): found for site_pk, found in by_site.items()})
    return [_read(e, devices, groups) for e in enrollments]


async def utility_enrollment(
    session: AsyncSession, enrollment: Enrollment
) -> UtilityEnrollmentRead:
    [read] = await utility_enrollments(session, [enrollment])
    return read


async def _live_devices(
    session: AsyncSession, enrollments: Sequence[Enrollment]
) -> dict[uuid.UUID, Device]:
    pks = {link.device_pk for e in enrollments for link in e.devices}
    if not pks:
        return {}
    rows = await session.scalars(
        sa.select(Device).where(Device.pk.in_(pks), Device.deleted_at.is_(None))
    )
    return {device.pk: device for device in rows.unique()}


_ENROLLMENT_FIELDS = tuple(
    name for name in UtilityEnrollmentRead.model_fields if name not in ("site", "devices")
)
_SITE_FIELDS = tuple(name for name in UtilitySiteRead.model_fields if name != "groups")


def _read(
    enrollment: Enrollment,
    devices: dict[uuid.UUID, Device],
    groups: dict[tuple[uuid.UUID, uuid.UUID], list[Group]],
) -> UtilityEnrollmentRead:
    site = enrollment.site
    links: list[EnrollmentDevice] = enrollment.devices
    return UtilityEnrollmentRead.model_validate(
        {
            **{name: getattr(enrollment, name) for name in _ENROLLMENT_FIELDS},
            "site": {
                **{name: getattr(site, name) for name in _SITE_FIELDS},
                "groups": groups.get((enrollment.program_id, site.pk), []),
            },
            "devices": [devices[link.device_pk] for link in links if link.device_pk in devices],
        }
    )


# The utility's decisions --------------------------------------------------------------------------


async def update_enrollment(
    session: AsyncSession, enrollment: Enrollment, data: UtilityEnrollmentUpdate
) -> bool:
    """Apply the utility's PATCH; True when the status changed.

    The same status again changes nothing. A new `status_reason` alone is stored and told to
    both sides as a status change is. A final enrollment takes no change at all (409).
    """
    _refuse_changes_when_final(enrollment, data)
    now = utc_now()
    changed = data.status is not None and state.transition(
        enrollment, data.status, reason=data.status_reason, now=now
    )
    if data.group_ids is not None:
        await program_service.replace_site_groups(
            session,
            program_id=enrollment.program_id,
            site_pk=enrollment.site_pk,
            group_ids=data.group_ids,
        )
        enrollment.updated_at = now
    reason_changed = not changed and data.status_reason not in (None, enrollment.status_reason)
    if reason_changed:
        enrollment.status_reason = data.status_reason
        enrollment.updated_at = now
    await session.flush()
    if changed or reason_changed:
        await service.record_enrollment_change(session, enrollment, "enrollment.updated")
    return changed


def _refuse_changes_when_final(enrollment: Enrollment, data: UtilityEnrollmentUpdate) -> None:
    """Groups and reasons of a final enrollment are frozen too (its status is, in transition)."""
    if enrollment.status not in state.FINAL:
        return
    if data.group_ids is not None or data.status_reason not in (None, enrollment.status_reason):
        raise EnrollmentClosed(
            f"Enrollment {enrollment.id} is already {enrollment.status}, which is final; "
            "it cannot change any more"
        )
