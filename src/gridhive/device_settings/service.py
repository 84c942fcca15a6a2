"""Settings requests: made by the homeowner, sent to the OEM, settled by the OEM's report."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.device_settings import repository
from gridhive.device_settings.errors import SettingsOutcomeConflict, SettingsRequestNotFound
from gridhive.device_settings.models import (
    FINAL_STATUSES,
    SettingsRequest,
    SettingsStatus,
)
from gridhive.device_settings.schemas import (
    SettingsOutcome,
    SettingsRequestCreate,
    SettingsRequestRead,
)
from gridhive.devices import service as device_service
from gridhive.devices.models import Device, DeviceType
from gridhive.devices.schemas import DeviceConfiguration, DeviceUpdate
from gridhive.enrollments import service as enrollment_service
from gridhive.enrollments.models import EnrollmentStatus
from gridhive.errors import FieldError, Unprocessable
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.programs.models import Program
from gridhive.webhooks import service as webhook_service

SETTINGS_APPLY = "settings.apply"
OBJECT_TYPE = "settings_request"


@dataclass(frozen=True)
class SettingsFilter:
    statuses: Sequence[SettingsStatus] = field(default_factory=tuple)
    updated_since: datetime | None = None


# Reads ------------------------------------------------------------------------------------------


async def search_device_settings_requests(
    session: AsyncSession, *, device: Device, page: Page
) -> Sequence[SettingsRequest]:
    return await repository.search_for_device(session, device_pk=device.pk, page=page)


async def search_settings_requests(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: SettingsFilter, page: Page
) -> Sequence[SettingsRequest]:
    return await repository.search_for_tenant(
        session,
        tenant_id=tenant_id,
        statuses=filters.statuses,
        updated_since=filters.updated_since,
        page=page,
    )


async def get_settings_request_or_raise(
    session: AsyncSession, *, tenant_id: uuid.UUID, request_id: uuid.UUID
) -> SettingsRequest:
    """Only the device's OEM sees a request; to anyone else it does not exist."""
    found = await repository.get_for_tenant(session, tenant_id=tenant_id, request_id=request_id)
    if found is None:
        raise SettingsRequestNotFound(f"No settings request with id {request_id}")
    return found


# Requesting -------------------------------------------------------------------------------------


async def create_settings_request(
    session: AsyncSession, *, device: Device, data: SettingsRequestCreate
) -> SettingsRequest:
    """Store the request and, in the same transaction, the `settings.apply` message to the
    device's OEM: either both exist after commit or neither does."""
    _check_applicable(device, data)
    if data.backup_reserve_percentage is not None:
        await _check_program_minimum(session, device, data.backup_reserve_percentage)
    now = utc_now()
    settings_request = SettingsRequest(
        tenant_id=device.tenant_id,
        device_pk=device.pk,
        device=device,
        backup_reserve_percentage=data.backup_reserve_percentage,
        mode=data.mode,
        status=SettingsStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(settings_request)
    await session.flush()
    await webhook_service.emit(
        session,
        org_id=device.tenant_id,
        event_type=SETTINGS_APPLY,
        object_type=OBJECT_TYPE,
        subject_id=device.id,
        event_object=settings_request_payload(settings_request),
    )
    return settings_request


def settings_request_payload(settings_request: SettingsRequest) -> dict[str, object]:
    return SettingsRequestRead.model_validate(settings_request).model_dump(mode="json")


def _check_applicable(device: Device, data: SettingsRequestCreate) -> None:
    if data.backup_reserve_percentage is None and data.mode is None:
        message = "send at least one setting: backup_reserve_percentage or mode"
        raise Unprocessable(
            message,
            errors=[
                FieldError(message=message, path="backup_reserve_percentage"),
                FieldError(message=message, path="mode"),
            ],
        )
    if device.type != DeviceType.BATTERY:
        raise Unprocessable.field(
            "deviceId", f"device '{device.id}' is a {device.type}; settings apply to batteries"
        )


async def _check_program_minimum(session: AsyncSession, device: Device, reserve: int) -> None:
    """The reserve may not go below what a program the device is actively enrolled in needs:
    the utility counts on the energy above it."""
    strictest = await _strictest_active_program(session, device)
    if strictest is None or reserve >= strictest.minimum_reserve_percentage:
        return
    raise Unprocessable.field(
        "backup_reserve_percentage",
        f"{reserve}% is below the minimum of {strictest.minimum_reserve_percentage}% set by "
        f"program '{strictest.name}' ({strictest.id}), in which this device is enrolled",
    )


async def _strictest_active_program(session: AsyncSession, device: Device) -> Program | None:
    """Of the ACTIVE enrollments covering the device, the program with the highest minimum."""
    enrollments = await enrollment_service.search_enrollments(session, site=device.site)
    strictest: Program | None = None
    for enrollment in enrollments:
        covers = any(d.device_pk == device.pk for d in enrollment.devices)
        if enrollment.status != EnrollmentStatus.ACTIVE or not covers:
            continue
        program = await program_service.get_program_or_raise(session, enrollment.program_id)
        if strictest is None or (
            program.minimum_reserve_percentage > strictest.minimum_reserve_percentage
        ):
            strictest = program
    return strictest


# The OEM's report -------------------------------------------------------------------------------


async def report_outcome(
    session: AsyncSession, settings_request: SettingsRequest, outcome: SettingsOutcome
) -> SettingsRequest:
    """Settle the request. The same report again changes nothing (the first one stands); a
    different final status after a final one is a conflict. APPLIED also updates the reserve
    stored on the device."""
    status = SettingsStatus(outcome.status)
    if settings_request.status == status:
        return settings_request
    if settings_request.status in FINAL_STATUSES:
        message = (
            f"Settings request {settings_request.id} is already {settings_request.status}; "
            f"it cannot become {status}"
        )
        raise SettingsOutcomeConflict(message, errors=[FieldError(message=message, path="status")])
    now = utc_now()
    settings_request.status = status
    settings_request.message = outcome.message
    settings_request.reported_at = now
    settings_request.updated_at = now
    if status is SettingsStatus.APPLIED:
        await _store_reserve(session, settings_request)
    await session.flush()
    return settings_request


async def _store_reserve(session: AsyncSession, applied: SettingsRequest) -> None:
    """Keep the device's stored reserve in step with what it runs. An OEM may report requests
    out of order: an older one reported late must not undo a newer reserve."""
    reserve = applied.backup_reserve_percentage
    if reserve is None or await repository.newer_applied_reserve_exists(session, applied):
        return
    await device_service.update_device(
        session,
        applied.device,
        DeviceUpdate(configuration=DeviceConfiguration(reserve_percentage=reserve)),
    )
