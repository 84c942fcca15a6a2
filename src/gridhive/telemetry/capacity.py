"""Program capacity: what the fleet could discharge now or at a later time (our addition).

The approximation (also in the response's schema description): each battery's state of
charge stays where it was last reported, except that DISCHARGE commands already planned
between now and `at` take their setpoint x overlap out of it. Planned charging is not counted
(it may be canceled or cut short), so a future figure errs low rather than high. Online-ness
is judged now: a device silent for 15 minutes is offline and contributes nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.errors import Unprocessable
from gridhive.programs.models import Program
from gridhive.telemetry import repository
from gridhive.telemetry.repository import AnyRow
from gridhive.telemetry.service import is_online

# `at` a little in the past is "now" sent by a client whose clock is behind.
PAST_TOLERANCE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class DeviceCapacity:
    state: str  # "available" | "offline" | "unknown"
    usable_wh: float = 0.0
    rated_w: float = 0.0

    @property
    def one_hour_w(self) -> float:
        """The power the battery can hold for a full hour."""
        return min(self.rated_w, self.usable_wh)


def device_capacity(
    row: AnyRow, program: Program, planned_wh: float, now: datetime
) -> DeviceCapacity:
    """usable = capacity x (SOC - max(reserve, program minimum)) / 100 - planned discharge."""
    if not is_online(row.is_online, row.last_seen_at, now):
        return DeviceCapacity("offline")
    capacity, rated = row.battery_capacity_wh, row.battery_power_output_w
    if row.state_of_charge_pct is None or capacity is None or rated is None:
        return DeviceCapacity("unknown")
    floor = max(row.reserve_percentage, program.minimum_reserve_percentage)
    usable = max(0.0, capacity * (row.state_of_charge_pct - floor) / 100 - planned_wh)
    return DeviceCapacity("available", usable, float(rated) if usable > 0 else 0.0)


def _figures(capacities: Iterable[DeviceCapacity]) -> dict[str, Any]:
    items = list(capacities)
    return {
        "devices": len(items),
        "available_devices": sum(1 for c in items if c.state == "available"),
        "offline_devices": sum(1 for c in items if c.state == "offline"),
        "unknown_state_devices": sum(1 for c in items if c.state == "unknown"),
        "discharge_kw": round(sum(c.one_hour_w for c in items) / 1000, 3),
        "discharge_kwh": round(sum(c.usable_wh for c in items) / 1000, 3),
        "rated_discharge_kw": round(sum(c.rated_w for c in items) / 1000, 3),
    }


async def program_capacity(
    session: AsyncSession, program: Program, at: datetime | None, now: datetime
) -> dict[str, Any]:
    """Totals and per-group figures of the program's ACTIVE batteries at `at` (default now)."""
    at = at or now
    if at < now - PAST_TOLERANCE:
        raise Unprocessable.field("at", "must not be in the past")
    at = max(at, now)
    planned = await _planned_wh(session, program.id, now, at)
    devices = await repository.capacity_devices(session, program.id)
    by_site: dict[uuid.UUID, list[DeviceCapacity]] = defaultdict(list)
    for row in devices:
        by_site[row.site_pk].append(device_capacity(row, program, planned[row.pk], now))
    groups = await repository.program_groups(session, program.id)
    return {
        "program_id": program.id,
        "at": at,
        "computed_at": now,
        "totals": _figures(c for site in by_site.values() for c in site),
        "groups": _group_figures(groups, by_site),
    }


def _group_figures(
    groups: Sequence[AnyRow], by_site: dict[uuid.UUID, list[DeviceCapacity]]
) -> list[dict[str, Any]]:
    members: dict[tuple[str, str], list[DeviceCapacity]] = {}
    for group_id, name, site_pk in groups:
        sites = members.setdefault((group_id, name), [])
        if site_pk is not None:
            sites.extend(by_site.get(site_pk, ()))
    return [
        {"group_id": group_id, "name": name, **_figures(capacities)}
        for (group_id, name), capacities in members.items()
    ]


async def _planned_wh(
    session: AsyncSession, program_id: uuid.UUID, now: datetime, at: datetime
) -> dict[uuid.UUID, float]:
    """Energy each device is already committed to discharge between now and `at`."""
    planned: dict[uuid.UUID, float] = defaultdict(float)
    if at <= now:
        return planned
    for device_pk, setpoint_w, starts_at, ends_at in await repository.planned_discharges(
        session, program_id, now, at
    ):
        seconds = (min(ends_at or at, at) - max(starts_at, now)).total_seconds()
        planned[device_pk] += (setpoint_w or 0) * max(0.0, seconds) / 3600
    return planned
