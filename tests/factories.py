"""Plain async factories over the services; each returns what a test needs to act as a user.

Each factory commits, as the owner of its unit of work: in the test session a commit releases a
savepoint, so the data survives a request's rollback and vanishes with the test's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import Organization, OrgKind, TokenKind
from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.devices import service as device_service
from gridhive.devices.models import Device
from gridhive.devices.schemas import DeviceCreate
from gridhive.enrollments import service as enrollment_service
from gridhive.enrollments.models import Enrollment
from gridhive.enrollments.schemas import EnrollmentCreate
from gridhive.events.models import Event, SiteEvent
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.programs import service as program_service
from gridhive.programs.models import Group, Program
from gridhive.programs.schemas import GroupCreate, ProgramCreate
from gridhive.sites import service as site_service
from gridhive.sites.models import Site
from gridhive.sites.schemas import SiteCommission


@dataclass(frozen=True)
class Tenant:
    org: Organization
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_tenant(session: AsyncSession, *, kind: str, name: str) -> Tenant:
    org = await auth_service.create_organization(session, kind=OrgKind(kind), name=name)
    _, key = await auth_service.create_api_key(session, org_id=org.id)
    await session.commit()
    return Tenant(org=org, key=key)


async def create_admin(session: AsyncSession) -> Tenant:
    return await create_tenant(session, kind="operator", name="Operator")


def battery_fields(device_id: str, **overrides: Any) -> dict[str, Any]:
    """A battery as an OEM would send it (DeviceCreateIn)."""
    fields: dict[str, Any] = {
        "id": device_id,
        "manufacturer_name": "Volt",
        "product_name": "PowerCell 13",
        "serial_number": f"SN-{device_id}",
        "type": "BATTERY",
        "attributes": {
            "battery_capacity_wh": 13500,
            "battery_power_input_w": 5000,
            "battery_power_output_w": 5000,
        },
        "configuration": {"reserve_percentage": 20},
        "install_date": "2025-03-01T00:00:00Z",
    }
    fields.update(overrides)
    return fields


async def create_site(
    session: AsyncSession, oem: Tenant, site_id: str = "site-1", **fields: Any
) -> Site:
    data = SiteCommission.model_validate(
        {"id": site_id, "zip_code": "94110", "state_code": "CA", **fields}
    )
    site, _ = await site_service.upsert_site(session, tenant_id=oem.org.id, data=data)
    await session.commit()
    return site


async def create_device(
    session: AsyncSession, site: Site, device_id: str = "battery-1", **overrides: Any
) -> Device:
    data = DeviceCreate.model_validate(battery_fields(device_id, **overrides))
    device = await device_service.create_device(session, site=site, data=data)
    await session.commit()
    return device


async def site_token(session: AsyncSession, oem: Tenant, site: Site) -> dict[str, str]:
    """Headers carrying a fresh site token for `site`."""
    token, _ = await auth_service.issue_token(
        session, kind=TokenKind.SITE, org_id=oem.org.id, site_pk=site.pk, ttl=timedelta(hours=1)
    )
    await session.commit()
    return {"Authorization": f"Bearer {token}"}


async def create_command(
    session: AsyncSession,
    program: Program,
    device: Device,
    *,
    starts_in: timedelta = timedelta(hours=2),
    duration: timedelta = timedelta(hours=1),
    mode: str = "DISCHARGE",
) -> Command:
    """An event of one action for one device, stored as the planner would store it."""
    starts_at = utc_now() + starts_in
    action = {
        "mode": mode,
        "starts_at": isoformat_z(starts_at),
        "duration_s": int(duration.total_seconds()),
    }
    event = Event(
        program_id=program.id,
        utility_id=program.utility_id,
        target_type="DEVICE",
        target_ids=[device.id],
        actions=[action],
        starts_at=starts_at,
        ends_at=starts_at + duration,
        duration_s=int(duration.total_seconds()),
    )
    session.add(event)
    await session.flush()
    site_event = SiteEvent(
        event_id=event.id,
        site_pk=device.site_pk,
        tenant_id=device.tenant_id,
        site_id=device.site.id,
    )
    session.add(site_event)
    await session.flush()
    command = Command(
        event_id=event.id,
        site_event_pk=site_event.pk,
        tenant_id=device.tenant_id,
        device_pk=device.pk,
        device_id=device.id,
        action_index=0,
        starts_at=starts_at,
        ends_at=starts_at + duration,
        duration_s=int(duration.total_seconds()),
        mode=mode,
        power_mode="SETPOINT" if mode in ("CHARGE", "DISCHARGE") else None,
        setpoint_w=5000 if mode in ("CHARGE", "DISCHARGE") else None,
        backup_reserve_percentage=20,
        status=CommandStatus.OK,
        device_status=DeviceStatus.PENDING,
    )
    session.add(command)
    await session.commit()
    return command


async def create_program(session: AsyncSession, utility: Tenant, **overrides: Any) -> Program:
    fields: dict[str, Any] = {"name": "Summer Peak Rewards", "description": "Peak shaving"}
    fields.update(overrides)
    program = await program_service.create_program(
        session, utility_id=utility.org.id, data=ProgramCreate.model_validate(fields)
    )
    await session.commit()
    return program


async def create_enrollment(
    session: AsyncSession,
    site: Site,
    program: Program,
    devices: Sequence[Device],
    **overrides: Any,
) -> Enrollment:
    """An enrollment made as the app makes one (USER_ACTION unless overridden)."""
    # A request since `site` was created may have loaded the site afresh into the session.
    site = await session.get_one(Site, site.pk)
    fields: dict[str, Any] = {
        "device_ids": [device.id for device in devices],
        "program_id": program.id,
        "enroll_method": "USER_ACTION",
        **overrides,
    }
    enrollment = await enrollment_service.create_enrollment(
        session, site=site, program=program, data=EnrollmentCreate.model_validate(fields)
    )
    await session.commit()
    return enrollment


async def create_group(
    session: AsyncSession, program: Program, group_id: str = "zone-a", name: str | None = None
) -> Group:
    """A group of the program, as the utility creates it."""
    data = GroupCreate(id=group_id, name=name or f"Zone {group_id}")
    group = await program_service.create_group(session, program, data)
    await session.commit()
    return group


async def create_event_at(
    session: AsyncSession,
    program: Program,
    devices: Sequence[Device],
    *,
    starts_in: timedelta,
    duration: timedelta,
    setpoint_w: int = 3000,
    mode: str = "DISCHARGE",
) -> Event:
    """An event of one PER_DEVICE action starting `starts_in` from now (negative: in the past),
    stored as the planner stores one: a site event per site, a command per device, and the
    plan's action totals. Freeze the clock for exact times."""
    starts_at = utc_now() + starts_in
    ends_at = starts_at + duration
    seconds = int(duration.total_seconds())
    action = {"mode": mode, "starts_at": isoformat_z(starts_at), "duration_s": seconds}
    event = Event(
        program_id=program.id,
        utility_id=program.utility_id,
        target_type="PROGRAM",
        target_ids=[str(program.id)],
        actions=[{**action, "power_mode": "SETPOINT", "setpoint_w": setpoint_w}],
        starts_at=starts_at,
        ends_at=ends_at,
        duration_s=seconds,
        plan={
            "actions": [
                {
                    **action,
                    "action_index": 0,
                    "ends_at": isoformat_z(ends_at),
                    "requested_w": setpoint_w * len(devices),
                    "expected_w": setpoint_w * len(devices),
                }
            ]
        },
    )
    session.add(event)
    await session.flush()
    site_events: dict[Any, SiteEvent] = {}
    for device in devices:
        if device.site_pk not in site_events:
            site_events[device.site_pk] = SiteEvent(
                event_id=event.id,
                site_pk=device.site_pk,
                tenant_id=device.tenant_id,
                site_id=device.site.id,
            )
            session.add(site_events[device.site_pk])
    await session.flush()
    for device in devices:
        session.add(
            Command(
                event_id=event.id,
                site_event_pk=site_events[device.site_pk].pk,
                tenant_id=device.tenant_id,
                device_pk=device.pk,
                device_id=device.id,
                action_index=0,
                starts_at=starts_at,
                ends_at=ends_at,
                duration_s=seconds,
                mode=mode,
                power_mode="SETPOINT",
                setpoint_w=setpoint_w,
                backup_reserve_percentage=20,
                status=CommandStatus.OK,
                device_status=DeviceStatus.OK,
            )
        )
    await session.commit()
    return event
