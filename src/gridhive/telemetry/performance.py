"""Event performance: what each device delivered in the event window, net of its baseline.

Measurement (system.md §7). Everything is split into 5-minute slots from the event's start.
A stored interval counts in a slot in proportion to its overlap (energy assumed even across the
interval); only intervals with both battery energies count as measured. Sign: positive =
discharge (power to the home or grid), negative = charge.

- *Measured net discharge* of a device in a slot = Σ (discharge - charge) Wh of its intervals.
- *Baseline* per device, as average net discharge power:
  1. `PREVIOUS_10_NON_EVENT_DAYS`: the same local clock window (program timezone) on each of
     the 10 most recent previous days — looking back up to 45 days — on which the device had
     no command (any event, pre-charges included; canceled commands do not count) and whose
     telemetry covers at least half the window. Each day's average power = its net energy /
     measured hours; the baseline is the mean of the 10. A day's intervals are those starting
     inside its window (summed by the database: fetching every interval of 45 days would not
     scale).
  2. else `HOUR_BEFORE`: the hour before the event's start, leaving out intervals during which
     the device was under a command (typically the event's own pre-charge, which would make
     charging look like the normal state and inflate the result);
  3. else `NONE`: baseline 0.
- *Delivered* in a slot = measured net discharge - baseline x measured time in the slot, so a
  gap in telemetry is neither credited nor charged; coverage reports the gaps.
- *Expected* = setpoint x time of each command still in force (status OK; pre-charges
  excluded), positive for DISCHARGE, negative for CHARGE, nothing for other modes.
- Only the part of the event that has happened is measured: up to now, or the cancellation.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import CommandStatus
from gridhive.events import service as event_service
from gridhive.events.models import Event
from gridhive.programs import service as program_service
from gridhive.telemetry import repository
from gridhive.telemetry.repository import AnyRow

SLOT = timedelta(minutes=5)
BASELINE_DAYS = 10
LOOKBACK_DAYS = 45
MIN_DAY_COVERAGE = 0.5
RESPONDING_SHARE = 0.1  # a device responds when it delivers more than 10% of what was expected
_SIGN = {"DISCHARGE": 1.0, "CHARGE": -1.0}


@dataclass(frozen=True, slots=True)
class Baseline:
    method: str
    watts: float


@dataclass
class DeviceMeasure:
    """One device's slots: expected and measured net energy (Wh), measured seconds."""

    site_id: str
    expected_wh: list[float]
    net_wh: list[float]
    covered_s: list[float]
    baseline: Baseline = Baseline("NONE", 0.0)

    def delivered_wh(self, slot: int) -> float:
        return self.net_wh[slot] - self.baseline.watts * self.covered_s[slot] / 3600


@dataclass
class Measurement:
    slots: list[tuple[datetime, datetime]]
    measured: int  # slots (from the first) that have begun and were not canceled
    measured_hours: float
    devices: dict[uuid.UUID, DeviceMeasure] = field(default_factory=dict)


async def measure(session: AsyncSession, event: Event, now: datetime) -> Measurement:
    """Expected, measured and baseline figures of every device commanded by the event."""
    slots = _slots(event.starts_at, event.ends_at)
    end = min(event.ends_at, event.canceled_at or event.ends_at, now)
    measured = sum(1 for start, _ in slots if start < end)
    result = Measurement(slots, measured, max(0.0, (end - event.starts_at).total_seconds() / 3600))
    for row in await repository.event_commands(session, event.id):
        if row.is_preparatory_action:
            continue
        device = result.devices.get(row.device_pk)
        if device is None:
            device = result.devices[row.device_pk] = _empty(row.site_id, len(slots))
        if row.status == CommandStatus.OK:
            _add_expected(device, row, slots)
    if result.devices:
        await _measure(session, event, result, end)
    return result


async def _measure(session: AsyncSession, event: Event, result: Measurement, end: datetime) -> None:
    """Telemetry into the slots up to `end`, and each device's baseline."""
    program = await program_service.get_program_or_raise(session, event.program_id)
    zone = ZoneInfo(program.timezone)
    devices_of = repository.event_devices(event.id)
    lookback = event.starts_at - timedelta(days=LOOKBACK_DAYS + 1)
    commands = await repository.device_commands(session, devices_of, lookback, event.ends_at)
    since = event.starts_at - 2 * timedelta(hours=1)  # the hour before, and intervals reaching in
    rows = await repository.energy_rows(session, devices_of, since, max(end, event.starts_at))
    for row in rows:
        if row.device_pk in result.devices:
            _prorate(result.devices[row.device_pk], row, result.slots, end)
    busy = _busy(commands)
    hour_before = _hour_before(rows, busy, event.starts_at)
    days = await _previous_days(
        session, event, zone, devices_of, _event_days(busy, zone), len(result.devices)
    )
    for device_pk, device in result.devices.items():
        device.baseline = _choose(days.get(device_pk, []), hour_before.get(device_pk))


def _empty(site_id: str, slots: int) -> DeviceMeasure:
    return DeviceMeasure(site_id, [0.0] * slots, [0.0] * slots, [0.0] * slots)


def _slots(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    count = math.ceil((end - start) / SLOT)
    return [(start + i * SLOT, min(end, start + (i + 1) * SLOT)) for i in range(count)]


def _overlap_s(a: datetime, b: datetime, c: datetime, d: datetime) -> float:
    return max(0.0, (min(b, d) - max(a, c)).total_seconds())


def _add_expected(
    device: DeviceMeasure, command: AnyRow, slots: Sequence[tuple[datetime, datetime]]
) -> None:
    watts = _SIGN.get(command.mode, 0.0) * (command.setpoint_w or 0)
    ends_at = command.ends_at or slots[-1][1]
    for i, (start, end) in enumerate(slots):
        device.expected_wh[i] += watts * _overlap_s(start, end, command.starts_at, ends_at) / 3600


def _prorate(
    device: DeviceMeasure, row: AnyRow, slots: Sequence[tuple[datetime, datetime]], end: datetime
) -> None:
    """Spread one interval's net energy over the measured slots it overlaps."""
    row_end = row.start_time + timedelta(seconds=row.duration_s)
    first = max(0, int((row.start_time - slots[0][0]) / SLOT))
    net = row.battery_total_energy_discharge_wh - row.battery_total_energy_charge_wh
    for i in range(first, len(slots)):
        start, stop = slots[i][0], min(slots[i][1], end)
        if start >= min(row_end, end):
            break
        seconds = _overlap_s(start, stop, row.start_time, row_end)
        device.net_wh[i] += net * seconds / row.duration_s
        device.covered_s[i] += seconds


# Baselines -----------------------------------------------------------------------------------


def _busy(commands: Sequence[AnyRow]) -> dict[uuid.UUID, list[tuple[datetime, datetime]]]:
    spans: dict[uuid.UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    for device_pk, starts_at, ends_at in commands:
        spans[device_pk].append((starts_at, ends_at or starts_at))
    return spans


def _local_dates(start: datetime, end: datetime, zone: ZoneInfo) -> set[date]:
    first = start.astimezone(zone).date()
    last = max(start, end - timedelta(microseconds=1)).astimezone(zone).date()
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def _event_days(
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]], zone: ZoneInfo
) -> dict[uuid.UUID, set[date]]:
    """Local dates on which each device was under any command."""
    return {
        device_pk: set().union(*(_local_dates(s, e, zone) for s, e in spans))
        for device_pk, spans in busy.items()
    }


def _hour_before(
    rows: Sequence[AnyRow],
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]],
    starts_at: datetime,
) -> dict[uuid.UUID, float]:
    """Average net discharge power in the hour before the start, outside any command."""
    since = starts_at - timedelta(hours=1)
    energy: dict[uuid.UUID, float] = defaultdict(float)
    seconds: dict[uuid.UUID, float] = defaultdict(float)
    for row in rows:
        row_end = row.start_time + timedelta(seconds=row.duration_s)
        overlap = _overlap_s(since, starts_at, row.start_time, row_end)
        spans = busy.get(row.device_pk, ())
        if overlap <= 0 or any(s < row_end and e > row.start_time for s, e in spans):
            continue
        net = row.battery_total_energy_discharge_wh - row.battery_total_energy_charge_wh
        energy[row.device_pk] += net * overlap / row.duration_s
        seconds[row.device_pk] += overlap
    return {pk: energy[pk] * 3600 / seconds[pk] for pk in seconds}


def same_clock(moment: datetime, days_back: int, zone: ZoneInfo) -> datetime:
    """`moment` at the same local wall-clock time `days_back` days earlier."""
    local = moment.astimezone(zone).replace(tzinfo=None) - timedelta(days=days_back)
    return local.replace(tzinfo=zone).astimezone(moment.tzinfo)


async def _previous_days(
    session: AsyncSession,
    event: Event,
    zone: ZoneInfo,
    devices_of: Any,
    event_days: dict[uuid.UUID, set[date]],
    device_count: int,
) -> dict[uuid.UUID, list[float]]:
    """Per device, the average power of its most recent qualifying days (newest first)."""
    found: dict[uuid.UUID, list[float]] = defaultdict(list)
    length = event.ends_at - event.starts_at
    for days_back in range(1, LOOKBACK_DAYS + 1):
        start = same_clock(event.starts_at, days_back, zone)
        dates = _local_dates(start, start + length, zone)
        totals = await repository.energy_totals(session, devices_of, start, start + length)
        for device_pk, net_wh, seconds in totals:
            days = found[device_pk]
            if len(days) >= BASELINE_DAYS or dates & event_days.get(device_pk, set()):
                continue
            if seconds >= MIN_DAY_COVERAGE * length.total_seconds():
                days.append(net_wh * 3600 / seconds)
        complete = sum(1 for days in found.values() if len(days) >= BASELINE_DAYS)
        if complete == device_count or (days_back >= BASELINE_DAYS and not found):
            break  # every device has its days, or there is no history to look through
    return found


def _choose(days: list[float], hour_before: float | None) -> Baseline:
    if len(days) >= BASELINE_DAYS:
        return Baseline("PREVIOUS_10_NON_EVENT_DAYS", fmean(days[:BASELINE_DAYS]))
    if hour_before is not None:
        return Baseline("HOUR_BEFORE", hour_before)
    return Baseline("NONE", 0.0)


# Views ---------------------------------------------------------------------------------------


async def event_sites(session: AsyncSession, event: Event, now: datetime) -> list[dict[str, Any]]:
    """Flip's per-site view: the plan's expected figures, and actual ones from telemetry.

    Actual energy = Σ delivered Wh of the site's devices over the measured part of the event;
    actual power = that energy / the measured hours (so it compares with expected power, which
    is expected energy / the event's hours). Null while nothing of the site is measured.
    """
    sites = await event_service.event_sites(session, event)
    result = await measure(session, event, now)
    energy: dict[str, float] = defaultdict(float)
    covered: set[str] = set()
    for device in result.devices.values():
        for i in range(result.measured):
            if device.covered_s[i] > 0:
                covered.add(device.site_id)
                energy[device.site_id] += device.delivered_wh(i)
    for site in sites:
        site_id = str(site["site_id"])
        if site_id in covered and result.measured_hours > 0:
            site["performance_actual_energy_wh"] = round(energy[site_id], 1)
            site["performance_actual_power_w"] = round(energy[site_id] / result.measured_hours, 1)
    return sites


async def event_performance(session: AsyncSession, event: Event, now: datetime) -> dict[str, Any]:
    """Per 5-minute slot requested, expected and delivered kW; totals; baseline methods."""
    result = await measure(session, event, now)
    methods = Counter(d.baseline.method for d in result.devices.values())
    return {
        "event_id": event.id,
        "interval_s": int(SLOT.total_seconds()),
        "intervals": _intervals(event, result),
        "totals": _totals(result),
        "baseline": {
            "method": next(iter(methods)) if len(methods) == 1 else "MIXED",
            "devices_by_method": dict(sorted(methods.items())),
        },
    }


def _intervals(event: Event, result: Measurement) -> list[dict[str, Any]]:
    rows = []
    for i, (start, end) in enumerate(result.slots):
        hours = (end - start).total_seconds() / 3600
        devices = result.devices.values()
        covered = [d for d in devices if d.covered_s[i] > 0]
        delivered = sum(d.delivered_wh(i) for d in covered)
        rows.append(
            {
                "starts_at": start,
                "ends_at": end,
                "requested_kw": _requested_kw(event.plan, start, end),
                "expected_kw": round(sum(d.expected_wh[i] for d in devices) / hours / 1000, 3),
                "delivered_kw": (
                    round(delivered / hours / 1000, 3) if i < result.measured and covered else None
                ),
            }
        )
    return rows


def _requested_kw(plan: dict[str, Any], start: datetime, end: datetime) -> float | None:
    """The utility's request over the slot, from the plan's actions (signed as above)."""
    watt_seconds = 0.0
    for action in plan.get("actions", []):
        begins = datetime.fromisoformat(action["starts_at"].replace("Z", "+00:00"))
        ends = datetime.fromisoformat(action["ends_at"].replace("Z", "+00:00"))
        seconds = _overlap_s(start, end, begins, ends)
        sign = _SIGN.get(action["mode"], 0.0)
        if seconds and sign and action.get("requested_w") is None:
            return None  # FOLLOW_LOAD or no setpoint: nothing was requested in watts
        watt_seconds += sign * (action.get("requested_w") or 0) * seconds
    return round(watt_seconds / (end - start).total_seconds() / 1000, 3)


def _totals(result: Measurement) -> dict[str, Any]:
    expected_slots = covered_slots = responding = judged = 0
    delivered_total, any_coverage = 0.0, False
    for device in result.devices.values():
        measured = range(result.measured)
        delivered = sum(device.delivered_wh(i) for i in measured if device.covered_s[i] > 0)
        expected = sum(device.expected_wh[i] for i in measured)
        delivered_total += delivered
        any_coverage = any_coverage or any(device.covered_s[i] > 0 for i in measured)
        active = [i for i in measured if device.expected_wh[i] != 0]
        expected_slots += len(active)
        covered_slots += sum(1 for i in active if device.covered_s[i] > 0)
        if expected != 0:
            judged += 1
            responding += delivered / expected > RESPONDING_SHARE
    return {
        "expected_kwh": round(sum(sum(d.expected_wh) for d in result.devices.values()) / 1000, 3),
        "delivered_kwh": round(delivered_total / 1000, 3) if any_coverage else None,
        "devices": len(result.devices),
        "devices_responding": responding,
        "share_of_devices_responding": round(responding / judged, 4) if judged else None,
        "data_coverage": round(covered_slots / expected_slots, 4) if expected_slots else None,
    }
