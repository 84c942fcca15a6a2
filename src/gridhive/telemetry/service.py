"""Telemetry ingest (interval and counter), retention, and the utility's reads.

Ingest is the hot path: a fleet of 100,000 batteries posts 100 batches of 1,000 items every
5 minutes. A batch costs the same few statements whatever its size - look up its devices,
upsert its intervals, update its devices' latest state (and for counters, read and write the
previous readings) - and no ORM object is built per item.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.service import Principal
from gridhive.config import TelemetrySettings, get_settings
from gridhive.devices.models import DeviceType
from gridhive.errors import Unprocessable
from gridhive.kit.time import ensure_utc, isoformat_z
from gridhive.programs import service as program_service
from gridhive.programs.errors import ProgramNotFound
from gridhive.programs.models import Program
from gridhive.telemetry import repository
from gridhive.telemetry.errors import BatchTooLarge
from gridhive.telemetry.repository import INTERVAL_COLUMNS, AnyRow, IngestDevice, ReadScope
from gridhive.telemetry.schemas import (
    MAX_ITEMS,
    CounterBatchIn,
    CounterTelemetryIn,
    ItemColumns,
    TelemetryBatchIn,
    TelemetryHistoricalQuery,
    TelemetryItemIn,
    TelemetryLatestQuery,
    TelemetryReadQuery,
)

# A device that has not reported for this long is offline in reads and capacity.
OFFLINE_AFTER = timedelta(minutes=15)
# Device clocks drift; an interval starting further ahead than this is refused.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Counter readings further apart than this restart the count instead of making one interval.
MAX_COUNTER_GAP = timedelta(hours=24)

Item = TypeVar("Item", TelemetryItemIn, CounterTelemetryIn)
_ITEM = TypeAdapter(TelemetryItemIn)
# The item's fields stored as they are (`device_id` becomes `device_pk`).
INTERVAL_ITEM_FIELDS = tuple(c for c in INTERVAL_COLUMNS if c != "device_pk")
# Stands for a device found among the caller's live batteries (its pk is not looked at).
_LIVE_BATTERY = IngestDevice(uuid.UUID(int=0), DeviceType.BATTERY, deleted=False)
_COUNTER = TypeAdapter(CounterTelemetryIn)


def is_online(reported: bool | None, last_seen_at: datetime | None, now: datetime) -> bool:
    """Online = not reported offline, and heard from within the last 15 minutes."""
    return reported is not False and last_seen_at is not None and now - last_seen_at < OFFLINE_AFTER


# Per-item results ------------------------------------------------------------------------------


# The answer of most items: one shared object, so that the router can encode it once.
STORED = {"status": "OK", "message": "stored"}


class _Batch:
    """One answer per submitted item, in request order."""

    def __init__(self, size: int) -> None:
        self.answers: list[dict[str, str]] = [STORED] * size

    def fail(self, index: int, message: str) -> None:
        self.answers[index] = {"status": "FAILED", "message": message}

    def ok(self, index: int, message: str) -> None:
        self.answers[index] = {"status": "OK", "message": message}

    def parse(self, raw: Sequence[Any], adapter: TypeAdapter[Item]) -> list[tuple[int, Item]]:
        """Validate item by item: a bad item is FAILED with pydantic's message naming the field."""
        parsed: list[tuple[int, Item]] = []
        for index, value in enumerate(raw):
            try:
                parsed.append((index, adapter.validate_python(value)))
            except ValidationError as exc:
                self.fail(index, _describe(exc))
        return parsed

    def resolve(
        self,
        parsed: Sequence[tuple[int, Item]],
        devices: dict[str, IngestDevice],
        latest_allowed: datetime,
        time_field: str,
    ) -> list[tuple[int, Item, uuid.UUID]]:
        """Items of the caller's live batteries, not from the future; the rest FAILED."""
        accepted = []
        for index, item in parsed:
            device = devices.get(item.device_id)
            when = getattr(item, time_field)
            refusal = _refusal(item.device_id, device, (time_field, when), latest_allowed)
            if refusal is not None:
                self.fail(index, refusal)
            else:
                assert device is not None
                accepted.append((index, item, device.pk))
        return accepted


def _refusal(
    device_id: str,
    device: IngestDevice | None,
    time: tuple[str, datetime],
    latest_allowed: datetime,
) -> str | None:
    """Why an item cannot be stored, or None; `time` is its time field's name and value."""
    if device is None:
        return f"unknown device '{device_id}'"
    if device.deleted:
        return f"device '{device_id}' was deleted"
    if device.type != DeviceType.BATTERY:
        return f"device '{device_id}' is a {device.type}, not a battery"
    if time[1] > latest_allowed:
        return f"{time[0]}: {isoformat_z(time[1])} is in the future"
    return None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _check_size(items: Sequence[Any]) -> None:
    if len(items) > MAX_ITEMS:
        raise BatchTooLarge.field(
            "telemetry", f"{len(items)} items; a batch holds at most {MAX_ITEMS}"
        )


async def _devices(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    parsed: Sequence[tuple[int, TelemetryItemIn | CounterTelemetryIn]],
) -> dict[str, IngestDevice]:
    ids = {item.device_id for _, item in parsed}
    return await repository.devices_by_ids(session, tenant_id, ids) if ids else {}


# Interval telemetry ----------------------------------------------------------------------------


async def ingest_battery(
    session: AsyncSession,
    principal: Principal,
    body: TelemetryBatchIn | ItemColumns,
    now: datetime,
) -> list[dict[str, str]]:
    """Store each valid item of the batch; answer every item in request order.

    A batch of valid items arrives as columns (`item_columns`) and stays columns to the
    database: the common case runs no Python code per item. Other batches are validated item by
    item first, then take the same path.
    """
    if isinstance(body, ItemColumns):
        _check_size(body.positions)
        batch = _Batch(body.size)
        items = body
    else:
        raw = body.raw_items()
        _check_size(raw)
        batch = _Batch(len(raw))
        parsed = batch.parse(raw, _ITEM)
        items = ItemColumns.of_items([i for _, i in parsed], [n for n, _ in parsed], len(raw))
    rows, pks = await _resolve_columns(
        session, principal.org_id, batch, items, now + FUTURE_TOLERANCE
    )
    rows = _last_of_each(batch, items, rows, pks)
    intervals = _interval_columns(items, rows, pks)
    await repository.upsert_interval_columns(session, intervals)
    await repository.update_latest_state_columns(session, *_latest_state_columns(intervals))
    return batch.answers


async def _resolve_columns(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    batch: _Batch,
    items: ItemColumns,
    latest_allowed: datetime,
) -> tuple[list[int], list[uuid.UUID | None]]:
    """The rows of the caller's live batteries, not from the future, and every row's device pk
    (None when it has none); the other rows are FAILED."""
    ids = items.values["device_id"]
    starts = items.values["start_time"]
    live = await repository.live_battery_pks(session, tenant_id, set(ids)) if ids else {}
    pks = list(map(live.get, ids))
    if None not in pks and (not starts or max(starts) <= latest_allowed):
        return list(range(len(ids))), pks
    # Rare: say why each refused item was refused.
    unknown = {device_id for device_id, pk in zip(ids, pks, strict=True) if pk is None}
    devices = await repository.devices_by_ids(session, tenant_id, unknown) if unknown else {}
    accepted = []
    for row, (device_id, pk, start) in enumerate(zip(ids, pks, starts, strict=True)):
        device = devices.get(device_id) if pk is None else _LIVE_BATTERY
        refusal = _refusal(device_id, device, ("start_time", start), latest_allowed)
        if refusal is None:
            accepted.append(row)
        else:
            batch.fail(items.positions[row], refusal)
    return accepted, pks


def _last_of_each(
    batch: _Batch, items: ItemColumns, rows: list[int], pks: Sequence[uuid.UUID | None]
) -> list[int]:
    """A later item for the same device and start replaces an earlier one of the batch."""
    ids = items.values["device_id"]
    if len(rows) == len(ids) and len(set(ids)) == len(ids):  # one item per device
        return rows
    starts, positions = items.values["start_time"], items.positions
    kept: dict[tuple[uuid.UUID | None, datetime], int] = {}
    for row in rows:
        key = (pks[row], starts[row])
        earlier = kept.get(key)
        if earlier is not None:
            message = f"replaced by item {positions[row]} (same device_id and start_time)"
            batch.ok(positions[earlier], message)
        kept[key] = row
    return list(kept.values())


def _interval_columns(
    items: ItemColumns, rows: list[int], pks: Sequence[uuid.UUID | None]
) -> dict[str, Sequence[Any]]:
    """The rows' columns as `telemetry_intervals` has them: `device_pk` for `device_id`."""
    columns = {name: items.values[name] for name in INTERVAL_ITEM_FIELDS}
    columns["device_pk"] = pks
    return columns if len(rows) == len(pks) else _pick(columns, rows)


def _pick(columns: dict[str, Sequence[Any]], rows: Sequence[int]) -> dict[str, Sequence[Any]]:
    return {name: [column[row] for row in rows] for name, column in columns.items()}


def _latest_state_columns(
    intervals: dict[str, Sequence[Any]],
) -> tuple[Sequence[uuid.UUID], Sequence[float | None], list[bool], Sequence[datetime]]:
    """Each device's newest interval as its latest state, seen at the interval's end:
    (pks, states of charge, online flags, seen at), one entry per device."""
    durations = intervals["duration_s"]
    spans = {duration: timedelta(seconds=duration) for duration in set(durations)}
    states = {
        "pk": intervals["device_pk"],
        "soc": intervals["battery_last_state_of_charge_percentage"],
        "online": intervals["last_is_online"],
        "seen": [s + spans[d] for s, d in zip(intervals["start_time"], durations, strict=True)],
    }
    if len(set(states["pk"])) < len(states["pk"]):  # several intervals of a device
        states = _pick(states, _newest_of_each(states["pk"], states["seen"]))
    onlines = [online is not False for online in states["online"]]
    return states["pk"], states["soc"], onlines, states["seen"]


def _newest_of_each(pks: Sequence[uuid.UUID], seens: Sequence[datetime]) -> list[int]:
    """The row of each device seen last (the first of equals)."""
    newest: dict[uuid.UUID, int] = {}
    for row, (pk, seen) in enumerate(zip(pks, seens, strict=True)):
        known = newest.get(pk)
        if known is None or seen > seens[known]:
            newest[pk] = row
    return list(newest.values())


# Counter telemetry -----------------------------------------------------------------------------

_COUNTERS = (
    "battery_lifetime_energy_charge_wh",
    "battery_lifetime_energy_discharge_wh",
    "solar_lifetime_energy_wh",
    "home_lifetime_energy_wh",
    "grid_lifetime_import_wh",
    "grid_lifetime_export_wh",
)


@dataclass(frozen=True, slots=True)
class _Reading:
    timestamp: datetime
    values: dict[str, float | None]

    @classmethod
    def of(cls, source: AnyRow | CounterTelemetryIn) -> _Reading:
        return cls(source.timestamp, {c: getattr(source, c) for c in _COUNTERS})


async def ingest_counters(
    session: AsyncSession, principal: Principal, body: CounterBatchIn, now: datetime
) -> list[dict[str, str]]:
    """Turn lifetime counters into intervals by difference with each device's previous reading."""
    _check_size(body.telemetry)
    batch = _Batch(len(body.telemetry))
    parsed = batch.parse(body.telemetry, _COUNTER)
    devices = await _devices(session, principal.org_id, parsed)
    accepted = batch.resolve(parsed, devices, now + FUTURE_TOLERANCE, "timestamp")
    stored = await repository.counters_for_update(session, {pk for _, _, pk in accepted})
    by_device: dict[uuid.UUID, list[tuple[int, CounterTelemetryIn]]] = {}
    for index, item, device_pk in accepted:
        by_device.setdefault(device_pk, []).append((index, item))
    interval_rows: list[dict[str, Any]] = []
    counter_rows, states = [], []
    for device_pk, readings in by_device.items():
        previous = _Reading.of(stored[device_pk]) if device_pk in stored else None
        last = _chain(batch, device_pk, previous, readings, interval_rows)
        if last is not None and last is not previous:
            counter_rows.append({"device_pk": device_pk, **_counter_row(last)})
            states.append(_counter_state(device_pk, readings))
    await repository.upsert_intervals(session, interval_rows)
    await repository.upsert_counters(session, counter_rows)
    await repository.update_latest_state(session, states)
    return batch.answers


def _chain(
    batch: _Batch,
    device_pk: uuid.UUID,
    previous: _Reading | None,
    readings: list[tuple[int, CounterTelemetryIn]],
    out: list[dict[str, Any]],
) -> _Reading | None:
    """Difference each reading (in time order) against the one before; returns the last."""
    for index, item in sorted(readings, key=lambda r: (r[1].timestamp, r[0])):
        if previous is not None and item.timestamp <= previous.timestamp:
            if item.timestamp == previous.timestamp:
                batch.ok(index, "already recorded (same timestamp as the previous reading)")
            else:
                when = isoformat_z(previous.timestamp)
                batch.fail(index, f"timestamp is before the device's last reading ({when})")
            continue
        if previous is None:
            batch.ok(index, "first reading of this device: intervals start from the next one")
        elif item.timestamp - previous.timestamp > MAX_COUNTER_GAP:
            batch.ok(index, "more than 24 h after the previous reading: counting restarts here")
        else:
            out.append(_counter_interval(device_pk, previous, item))
        previous = _Reading.of(item)
    return previous


def _delta(new: float | None, old: float | None) -> float | None:
    """Energy since the previous reading; a counter that went down was reset to zero since."""
    if new is None or old is None:
        return None
    return new - old if new >= old else new


def _counter_interval(
    device_pk: uuid.UUID, previous: _Reading, item: CounterTelemetryIn
) -> dict[str, Any]:
    old = previous.values
    return {
        "device_pk": device_pk,
        "start_time": previous.timestamp,
        "duration_s": (item.timestamp - previous.timestamp).total_seconds(),
        "last_is_online": item.is_online is not False,
        "last_mode": item.mode,
        "battery_last_power_charge_w": item.battery_power_charge_w,
        "battery_last_power_discharge_w": item.battery_power_discharge_w,
        "battery_total_energy_charge_wh": _delta(
            item.battery_lifetime_energy_charge_wh, old["battery_lifetime_energy_charge_wh"]
        ),
        "battery_total_energy_discharge_wh": _delta(
            item.battery_lifetime_energy_discharge_wh, old["battery_lifetime_energy_discharge_wh"]
        ),
        "battery_last_stored_energy_wh": item.battery_stored_energy_wh,
        "battery_last_capacity_energy_wh": item.battery_capacity_energy_wh,
        "battery_last_state_of_charge_percentage": item.battery_state_of_charge_percentage,
        "battery_last_state_of_health_percentage": item.battery_state_of_health_percentage,
        "last_is_grid_online": item.is_grid_online,
        "home_total_energy_wh": _delta(
            item.home_lifetime_energy_wh, old["home_lifetime_energy_wh"]
        ),
        "home_last_power_w": item.home_power_w,
        "solar_total_energy_wh": _delta(
            item.solar_lifetime_energy_wh, old["solar_lifetime_energy_wh"]
        ),
        "solar_last_power_w": item.solar_power_w,
        "oem_raw_data": item.oem_raw_data,
    }


def _counter_row(reading: _Reading) -> dict[str, Any]:
    return {"timestamp": reading.timestamp, **reading.values}


def _counter_state(
    device_pk: uuid.UUID, readings: list[tuple[int, CounterTelemetryIn]]
) -> dict[str, Any]:
    newest = max((item for _, item in readings), key=lambda i: i.timestamp)
    return {
        "b_pk": device_pk,
        "b_soc": newest.battery_state_of_charge_percentage,
        "b_online": newest.is_online is not False,
        "b_seen": newest.timestamp,
    }


# Retention -------------------------------------------------------------------------------------


def prune_cutoff(now: datetime, settings: TelemetrySettings | None = None) -> datetime:
    settings = settings or get_settings().telemetry
    return now - timedelta(days=settings.retention_days)


async def prune_batch(session: AsyncSession, cutoff: datetime, batch_size: int) -> int:
    """Delete one batch of intervals older than `cutoff`; the count deleted."""
    return await repository.prune_batch(session, cutoff, batch_size)


async def prune_step(
    session: AsyncSession, *, now: datetime, settings: TelemetrySettings | None = None
) -> int:
    """Delete ONE batch of intervals older than the retention period; the count deleted.

    The daily job runs it in a unit of work of its own and again until it returns 0, so no
    transaction holds a day's worth of deleted rows (locks, WAL, SQLite's writer lock).
    """
    settings = settings or get_settings().telemetry
    return await prune_batch(session, prune_cutoff(now, settings), settings.prune_batch_size)


async def prune(
    session: AsyncSession, now: datetime, settings: TelemetrySettings | None = None
) -> int:
    """Delete intervals older than the retention period, batch by batch (the periodic job).

    Batches keep each statement's locks and undo small; a caller that wants one transaction
    per batch (the CLI) calls `prune_batch` in its own units of work instead.
    """
    settings = settings or get_settings().telemetry
    cutoff = prune_cutoff(now, settings)
    total = 0
    while True:
        deleted = await prune_batch(session, cutoff, settings.prune_batch_size)
        total += deleted
        if deleted < settings.prune_batch_size:
            return total


# Utility reads ---------------------------------------------------------------------------------


async def program_of_caller(
    session: AsyncSession, principal: Principal, program_id: str
) -> Program:
    """The caller's program; another utility's (or a malformed id) does not exist."""
    try:
        program_uuid = uuid.UUID(program_id)
    except ValueError as exc:
        raise ProgramNotFound(f"No program with id {program_id}") from exc
    return await program_service.get_program_or_raise(
        session, program_uuid, utility_id=principal.org_id
    )


async def read_latest(
    session: AsyncSession, principal: Principal, query: TelemetryLatestQuery, now: datetime
) -> dict[str, Any]:
    """The latest point of each readable device, a page at a time."""
    scope = await _read_scope(session, principal, query)
    after = _decode_cursor(query.cursor, "latest")
    rows = await repository.latest_points(session, scope, query.limit + 1, after)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return {
        "telemetry": [
            utility_point(r, stale=not is_online(True, r.last_seen_at, now)) for r in page
        ],
        "next_cursor": _encode_cursor("latest", page[-1].id, page[-1].device_pk) if more else None,
    }


async def read_historical(
    session: AsyncSession, principal: Principal, query: TelemetryHistoricalQuery
) -> dict[str, Any]:
    """Every interval of each readable device in the window, a page at a time."""
    scope = await _read_scope(session, principal, query)
    after = _decode_cursor(query.cursor, "historical")
    window = (query.start_time, query.end_time)
    rows = await repository.historical_points(session, scope, window, query.limit + 1, after)
    page = rows[: query.limit]
    cursor = None
    if len(rows) > query.limit:
        last = page[-1]
        cursor = _encode_cursor("historical", last.id, last.device_pk, last.start_time)
    return {"telemetry": [utility_point(r, stale=False) for r in page], "next_cursor": cursor}


async def _read_scope(
    session: AsyncSession, principal: Principal, query: TelemetryReadQuery
) -> ReadScope:
    program = await program_of_caller(session, principal, query.program_id)
    return ReadScope(program.id, query.device_ids, query.enrollment_ids)


def _grid(
    home: float | None, solar: float | None, charge: float | None, discharge: float | None
) -> float | None:
    """Grid = home - solar - battery discharge + battery charge; positive = import."""
    if home is None or charge is None or discharge is None:
        return None
    return home - (solar or 0.0) - discharge + charge


def utility_point(row: AnyRow, *, stale: bool) -> dict[str, Any]:
    """A stored interval in the utility's field names (flip-api §13.4)."""
    return {
        "device_id": row.id,
        "start_time": row.start_time,
        "duration_s": row.duration_s,
        "last_is_online": False if stale else row.last_is_online,
        "last_mode": row.last_mode,
        "battery_power_charge_w": row.battery_last_power_charge_w,
        "battery_power_discharge_w": row.battery_last_power_discharge_w,
        "battery_state_of_charge_percentage": row.battery_last_state_of_charge_percentage,
        "battery_last_backup_reserve_percentage": row.reserve_percentage,
        "battery_total_energy_charge_wh": row.battery_total_energy_charge_wh,
        "battery_total_energy_discharge_wh": row.battery_total_energy_discharge_wh,
        "grid_power_w": _grid(
            row.home_last_power_w,
            row.solar_last_power_w,
            row.battery_last_power_charge_w,
            row.battery_last_power_discharge_w,
        ),
        "grid_total_energy_wh": _grid(
            row.home_total_energy_wh,
            row.solar_total_energy_wh,
            row.battery_total_energy_charge_wh,
            row.battery_total_energy_discharge_wh,
        ),
        "home_power_w": row.home_last_power_w,
        "home_total_energy_wh": row.home_total_energy_wh,
        "solar_power_w": row.solar_last_power_w,
        "solar_total_energy_wh": row.solar_total_energy_wh,
    }


def _encode_cursor(kind: str, device_id: str, device_pk: uuid.UUID, *rest: datetime) -> str:
    position = [kind, device_id, device_pk.hex, *(isoformat_z(t) for t in rest)]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, kind: str) -> list[Any] | None:
    """The position after which the page starts; a cursor of another endpoint is a 422."""
    if cursor is None:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(position, list) or not all(isinstance(p, str) for p in position):
            raise ValueError(cursor)
        expected = 4 if kind == "historical" else 3
        if len(position) != expected or position[0] != kind:
            raise ValueError(cursor)
        device_id, device_pk = position[1], uuid.UUID(position[2])
        times = [ensure_utc(datetime.fromisoformat(t)) for t in position[3:]]
    except (ValueError, OverflowError, binascii.Error) as exc:
        raise Unprocessable.field("cursor", "not a cursor returned by this endpoint") from exc
    return [device_id, device_pk, *times]
