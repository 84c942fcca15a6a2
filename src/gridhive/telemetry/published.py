"""`telemetry.published`: each program's telemetry over the last few minutes, for its utility.

The scheduler calls `publish` every `interval` (5 minutes by default) in a unit of work. One
grouped query computes the figures of every program and every group at once, whatever the
fleet size; a program's message is sent once per window: `telemetry_publications` holds
(program, window start) and a repeated call for the same `now` finds it and sends nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device, DeviceType
from gridhive.enrollments.models import Enrollment, EnrollmentDevice, EnrollmentStatus
from gridhive.kit.time import isoformat_z
from gridhive.programs.models import Group, Program, SiteGroup
from gridhive.telemetry.models import TelemetryInterval, TelemetryPublication
from gridhive.telemetry.schemas import (
    TelemetryAggregateFigures,
    TelemetryAggregateGroup,
    TelemetryAggregateRead,
)
from gridhive.telemetry.service import OFFLINE_AFTER
from gridhive.webhooks import service as webhook_service

EVENT_TYPE = "telemetry.published"
OBJECT_TYPE = "telemetry_aggregate"

AggregateRow = sa.Row[*tuple[Any, ...]]


async def publish(session: AsyncSession, *, now: datetime, interval: timedelta) -> int:
    """Send each program with an ACTIVE enrollment its figures for [now - interval, now);
    the number of messages sent (0 when this window was already published)."""
    window = (now - interval, now)
    rows = (await session.execute(_aggregates(window, now))).all()
    by_program = _by_program(rows)
    fresh = await _claim(session, list(by_program), window[0], now)
    utilities = await _utilities(session, fresh)
    for program_id in fresh:
        aggregate = _aggregate(program_id, window, now, by_program[program_id])
        await webhook_service.emit(
            session,
            org_id=utilities[program_id],
            event_type=EVENT_TYPE,
            object_type=OBJECT_TYPE,
            subject_id=str(program_id),
            event_object=aggregate.model_dump(mode="json"),
        )
    return len(fresh)


# The grouped query ------------------------------------------------------------------------------


def _aggregates(
    window: tuple[datetime, datetime], now: datetime
) -> sa.CompoundSelect[*tuple[Any, ...]]:
    """Rows (program_id, group_id, group_name, figures...): group_id NULL for the program's
    totals. Devices are the live batteries of ACTIVE enrollments; each device's intervals in
    the window are summed first, so a device counts once however many intervals it sent."""
    enrolled = _enrolled(now).cte("enrolled")
    in_window = _window_sums(window, sa.select(enrolled.c.device_pk)).cte("in_window")
    joined = enrolled.outerjoin(in_window, in_window.c.device_pk == enrolled.c.device_pk)
    window_s = (window[1] - window[0]).total_seconds()
    figures = _figures(enrolled, in_window, window_s)
    totals = (
        sa.select(
            enrolled.c.program_id,
            sa.null().label("group_id"),
            sa.null().label("group_name"),
            *figures,
        )
        .select_from(joined)
        .group_by(enrolled.c.program_id)
    )
    per_group = (
        sa.select(enrolled.c.program_id, Group.id, Group.name, *figures)
        .select_from(joined)
        .join(SiteGroup, SiteGroup.site_pk == enrolled.c.site_pk)
        .join(
            Group,
            sa.and_(Group.pk == SiteGroup.group_pk, Group.program_id == enrolled.c.program_id),
        )
        .group_by(enrolled.c.program_id, Group.id, Group.name)
    )
    return sa.union_all(totals, per_group)


def _enrolled(now: datetime) -> sa.Select[Any]:
    online = sa.and_(Device.is_online.is_(True), Device.last_seen_at > now - OFFLINE_AFTER)
    return (
        sa.select(
            Enrollment.program_id,
            Device.pk.label("device_pk"),
            Device.site_pk,
            Device.state_of_charge_pct.label("soc"),
            Device.battery_capacity_wh.label("capacity_wh"),
            sa.case((online, 1), else_=0).label("online"),
        )
        .distinct()
        .join(EnrollmentDevice, EnrollmentDevice.device_pk == Device.pk)
        .join(Enrollment, Enrollment.id == EnrollmentDevice.enrollment_id)
        .where(
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Device.deleted_at.is_(None),
            Device.type == DeviceType.BATTERY,
        )
    )


def _window_sums(
    window: tuple[datetime, datetime], devices: sa.Select[Any]
) -> sa.Select[*tuple[Any, ...]]:
    t = TelemetryInterval
    return (
        sa.select(
            t.device_pk,
            sa.func.sum(t.battery_last_power_charge_w * t.duration_s).label("charge_ws"),
            sa.func.sum(t.battery_last_power_discharge_w * t.duration_s).label("discharge_ws"),
            sa.func.sum(t.battery_total_energy_charge_wh).label("charge_wh"),
            sa.func.sum(t.battery_total_energy_discharge_wh).label("discharge_wh"),
        )
        .where(t.device_pk.in_(devices), t.start_time >= window[0], t.start_time < window[1])
        .group_by(t.device_pk)
    )


def _figures(enrolled: Any, in_window: Any, window_s: float) -> list[sa.ColumnElement[Any]]:
    stored_wh = enrolled.c.soc * enrolled.c.capacity_wh / 100.0
    zero = sa.literal(0.0)
    return [
        sa.func.count(enrolled.c.device_pk).label("devices_enrolled"),
        sa.func.count(in_window.c.device_pk).label("devices_reporting"),
        sa.func.coalesce(sa.func.sum(enrolled.c.online), 0).label("devices_online"),
        sa.func.avg(enrolled.c.soc).label("soc_mean"),
        sa.func.coalesce(sa.func.sum(stored_wh), zero).label("stored_wh"),
        sa.func.avg(stored_wh).label("stored_wh_mean"),
        sa.func.coalesce(sa.func.sum(enrolled.c.capacity_wh), 0).label("capacity_wh"),
        (sa.func.coalesce(sa.func.sum(in_window.c.charge_ws), zero) / window_s).label("charge_w"),
        (sa.func.coalesce(sa.func.sum(in_window.c.discharge_ws), zero) / window_s).label(
            "discharge_w"
        ),
        sa.func.coalesce(sa.func.sum(in_window.c.charge_wh), zero).label("charge_wh"),
        sa.func.coalesce(sa.func.sum(in_window.c.discharge_wh), zero).label("discharge_wh"),
    ]


# Idempotency and the message ------------------------------------------------------------------


async def _claim(
    session: AsyncSession, program_ids: list[uuid.UUID], window_start: datetime, now: datetime
) -> list[uuid.UUID]:
    """The programs whose window is not yet published, now marked published (in program order,
    so concurrent runs lock in the same order). Rows another run holds wait for its commit."""
    if not program_ids:
        return []
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = cast(sa.Table, TelemetryPublication.__table__)
    stmt = (
        insert(table)
        .values(
            [
                {"program_id": p, "window_start": window_start, "published_at": now}
                for p in sorted(program_ids)
            ]
        )
        .on_conflict_do_nothing(index_elements=["program_id", "window_start"])
        .returning(table.c.program_id)
    )
    claimed = set((await session.scalars(stmt)).all())
    return [p for p in sorted(program_ids) if p in claimed]


async def forget_before(session: AsyncSession, *, before: datetime) -> int:
    """Drop the publication keys of windows that started before `before`; the number dropped."""
    result = await session.execute(
        sa.delete(TelemetryPublication).where(TelemetryPublication.window_start < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _utilities(
    session: AsyncSession, program_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    ids = list(program_ids)
    if not ids:
        return {}
    stmt = sa.select(Program.id, Program.utility_id).where(Program.id.in_(ids))
    return {row.id: row.utility_id for row in await session.execute(stmt)}


def _by_program(rows: Sequence[AggregateRow]) -> dict[uuid.UUID, list[AggregateRow]]:
    grouped: dict[uuid.UUID, list[AggregateRow]] = {}
    for row in rows:
        grouped.setdefault(row.program_id, []).append(row)
    return grouped


def _aggregate(
    program_id: uuid.UUID,
    window: tuple[datetime, datetime],
    now: datetime,
    rows: Sequence[AggregateRow],
) -> TelemetryAggregateRead:
    totals = next(r for r in rows if r.group_id is None)
    groups = sorted((r for r in rows if r.group_id is not None), key=lambda r: r.group_id)
    return TelemetryAggregateRead(
        id=f"{program_id}:{isoformat_z(window[0])}",
        program_id=program_id,
        window_start=window[0],
        window_end=window[1],
        published_at=now,
        totals=TelemetryAggregateFigures(**_figures_of(totals)),
        groups=[
            TelemetryAggregateGroup(**_figures_of(g), group_id=g.group_id, name=g.group_name)
            for g in groups
        ],
    )


def _figures_of(row: AggregateRow) -> dict[str, Any]:
    charge_w, discharge_w = float(row.charge_w), float(row.discharge_w)
    return {
        "devices_enrolled": row.devices_enrolled,
        "devices_reporting": row.devices_reporting,
        "devices_online": int(row.devices_online),
        "state_of_charge_percentage_mean": _rounded(row.soc_mean, 2),
        "stored_energy_kwh": round(float(row.stored_wh) / 1000, 3),
        "stored_energy_kwh_mean": _rounded(row.stored_wh_mean, 3, scale=1000),
        "capacity_kwh": round(float(row.capacity_wh) / 1000, 3),
        "battery_power_charge_w": round(charge_w, 1),
        "battery_power_discharge_w": round(discharge_w, 1),
        "battery_power_net_w": round(discharge_w - charge_w, 1),
        "energy_charged_kwh": round(float(row.charge_wh) / 1000, 3),
        "energy_discharged_kwh": round(float(row.discharge_wh) / 1000, 3),
    }


def _rounded(value: Any, digits: int, *, scale: float = 1) -> float | None:
    return None if value is None else round(float(value) / scale, digits)
