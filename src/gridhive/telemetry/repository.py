"""Every telemetry query. Writes are bulk statements over plain dicts; reads return plain rows.

Device sets are passed as subqueries (a program's enrolled devices, an event's devices) rather
than id lists, so a fleet of 100,000 never becomes a 100,000-element IN list.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, cast

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands.models import Command, CommandStatus
from gridhive.devices.models import Device, DeviceType
from gridhive.enrollments.models import Enrollment, EnrollmentDevice, EnrollmentStatus
from gridhive.events.models import SiteEvent
from gridhive.kit.time import ensure_utc
from gridhive.programs.models import Group, SiteGroup
from gridhive.telemetry.models import TelemetryCounter, TelemetryInterval

intervals = cast(sa.Table, TelemetryInterval.__table__)
counters = cast(sa.Table, TelemetryCounter.__table__)
devices = cast(sa.Table, Device.__table__)
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

INTERVAL_COLUMNS = tuple(c.name for c in intervals.columns)
COUNTER_COLUMNS = tuple(c.name for c in counters.columns)
# Enrollments whose devices a utility may read: paused ones still report.
READABLE_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)

# Ingest ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestDevice:
    pk: uuid.UUID
    type: DeviceType
    deleted: bool


async def devices_by_ids(
    session: AsyncSession, tenant_id: uuid.UUID, device_ids: set[str]
) -> dict[str, IngestDevice]:
    """The OEM's devices among `device_ids`; a live device wins over deleted ones of that id.

    Live devices first, through the partial unique index on live (tenant, id); only ids not
    found there are looked up again among deleted devices (a rare path: only to say why).
    """
    dialect = _dialect(session)
    if dialect == "postgresql":
        return await _pg_devices_by_ids(session, tenant_id, device_ids)
    found: dict[str, IngestDevice] = {}
    # Core columns, not ORM attributes: no ORM loading machinery for 1,000 rows.
    c = devices.c
    live = sa.select(c.id, c.pk, c.type).where(
        c.tenant_id == tenant_id, _among(c.id, device_ids, dialect), c.deleted_at.is_(None)
    )
    for device_id, pk, device_type in await session.execute(live):
        found[device_id] = IngestDevice(pk, device_type, deleted=False)
    missing = device_ids - found.keys()
    if missing:
        deleted = sa.select(c.id, c.pk, c.type).where(
            c.tenant_id == tenant_id, _among(c.id, missing, dialect)
        )
        for device_id, pk, device_type in await session.execute(deleted):
            found[device_id] = IngestDevice(pk, device_type, deleted=True)
    return found


async def live_battery_pks(
    session: AsyncSession, tenant_id: uuid.UUID, device_ids: set[str]
) -> dict[str, uuid.UUID]:
    """The pk of each of the OEM's live batteries among `device_ids` (the ingest's common case:
    an id missing here is then explained by `devices_by_ids`)."""
    if _dialect(session) == "postgresql":
        driver = await _driver(session)
        ids = _json_text(list(device_ids))
        return dict(await driver.fetch(_PG_LIVE_BATTERIES, tenant_id, ids))
    c = devices.c
    live = sa.select(c.id, c.pk).where(
        c.tenant_id == tenant_id,
        c.id.in_(device_ids),
        c.deleted_at.is_(None),
        c.type == DeviceType.BATTERY,
    )
    result = await session.execute(live)
    return {row.id: row.pk for row in result}


# The ids go as the text of one JSON array (asyncpg's varchar[] encoder costs ~1 µs per id);
# ARRAY(...) is computed once, so the index on live (tenant, id) still answers `= ANY`.
_PG_LIVE_BATTERIES = """
SELECT id, pk FROM devices
WHERE tenant_id = $1 AND id = ANY(ARRAY(SELECT json_array_elements_text($2::json)))
  AND deleted_at IS NULL AND type = 'BATTERY'
"""


# Live devices first (the partial unique index on live (tenant, id) answers with an index
# condition), then, for ids not found live, their deleted namesakes: a rare path, only to say why.
_PG_LIVE_DEVICES = """
SELECT id, pk, type FROM devices
WHERE tenant_id = $1 AND id = ANY($2::varchar[]) AND deleted_at IS NULL
"""
_PG_DELETED_DEVICES = """
SELECT id, pk, type FROM devices WHERE tenant_id = $1 AND id = ANY($2::varchar[])
"""


# A dict lookup: calling the enum class per row costs more than the query's execution.
_DEVICE_TYPES = {member.value: member for member in DeviceType}


async def _pg_devices_by_ids(
    session: AsyncSession, tenant_id: uuid.UUID, device_ids: set[str]
) -> dict[str, IngestDevice]:
    """`devices_by_ids` straight on asyncpg: through SQLAlchemy, fetching and typing 1,000
    result rows cost more Python than the query cost PostgreSQL."""
    driver = await _driver(session)
    found = {
        device_id: IngestDevice(pk, _DEVICE_TYPES[device_type], deleted=False)
        for device_id, pk, device_type in await driver.fetch(
            _PG_LIVE_DEVICES, tenant_id, list(device_ids)
        )
    }
    missing = device_ids - found.keys()
    if missing:
        for device_id, pk, device_type in await driver.fetch(
            _PG_DELETED_DEVICES, tenant_id, list(missing)
        ):
            found[device_id] = IngestDevice(pk, _DEVICE_TYPES[device_type], deleted=True)
    return found


def _among(column: Any, values: set[str], dialect: str) -> sa.ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `= ANY($1)`: one array parameter instead of one per
    value, and an index condition on (tenant_id, id) (1,000 ids: 24 -> 8 ms per request)."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam("among", list(values), type_=ARRAY(sa.String())))
    return column.in_(values)


_upserts: dict[tuple[str, str], sa.Insert] = {}


def _upsert(dialect: str, table: sa.Table) -> sa.Insert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE every other column, built once."""
    key = (dialect, table.name)
    if key not in _upserts:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        primary = [c.name for c in table.primary_key.columns]
        stmt = stmt.on_conflict_do_update(
            index_elements=primary,
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in primary},
        )
        _upserts[key] = stmt
    return _upserts[key]


async def upsert_intervals(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """`upsert_interval_columns` for rows given as dicts of every column."""
    columns = {name: [row[name] for row in rows] for name in INTERVAL_COLUMNS}
    await upsert_interval_columns(session, columns)


async def upsert_interval_columns(
    session: AsyncSession, columns: Mapping[str, Sequence[Any]]
) -> None:
    """Write intervals given as one sequence per column (one row per (device, start_time)); a
    stored (device, start_time) is replaced.

    PostgreSQL: one `INSERT ... SELECT unnest(...) ... ON CONFLICT DO UPDATE` on asyncpg
    directly: one statement and one round trip, no Python code per row. PostgreSQL sorts the
    rows by (device, start_time) before it inserts them, so that concurrent batches lock in one
    order. SQLite: one executemany of the upsert.
    """
    if not columns["device_pk"]:
        return
    if _dialect(session) == "postgresql":
        driver = await _driver(session)
        await driver.execute(_PG_UPSERT_INTERVALS.sql, *_PG_UPSERT_INTERVALS.arguments(columns))
        return
    values = [columns[name] for name in INTERVAL_COLUMNS]
    rows = [dict(zip(INTERVAL_COLUMNS, row, strict=True)) for row in zip(*values, strict=True)]
    await session.execute(_upsert("sqlite", intervals), rows)


class _ArrayUpsert:
    """`INSERT INTO table SELECT unnest(...), ... ORDER BY key ON CONFLICT (key) DO UPDATE` over
    a table's columns given as arrays, each shaped for what asyncpg encodes cheaply: its array
    encoder costs ~0.7 µs per element (it checks each one against `collections.abc`) but
    checks only the first row of a two-dimensional array. So the float columns travel as the
    rows of one float8[][], unnested by slice; strings and booleans as the text of a JSON
    array each (one call of the C encoder); times as the text of a timestamptz[] (each
    distinct time formatted once: a batch has few); the JSON column as the text of one JSON
    array. Per 1,000 rows: 3-4 ms of the API's CPU instead of 16-20 with one array per column,
    for ~1 ms more of PostgreSQL's.
    """

    def __init__(self, table: sa.Table) -> None:
        self.floats = [c.name for c in table.columns if isinstance(c.type, sa.Float)]
        self.others = [c for c in table.columns if c.name not in self.floats]
        # $1: the float matrix; $2...: the other columns, one each.
        selected = {
            **{name: f"unnest(f[{k}:{k}])" for k, name in enumerate(self.floats, start=1)},
            **{c.name: _unnest_sql(c, n) for n, c in enumerate(self.others, start=2)},
        }
        names = [c.name for c in table.columns]
        key = [c.name for c in table.primary_key.columns]
        updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in key)
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(names)})\n"
            f"SELECT {', '.join(f'{selected[name]} AS {name}' for name in names)}\n"
            f"FROM (SELECT $1::float8[] AS f) AS matrix\n"
            f"ORDER BY {', '.join(key)}\n"
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )

    def arguments(self, columns: Mapping[str, Sequence[Any]]) -> list[Any]:
        # The matrix's rows must be lists: asyncpg reads a tuple as a composite value.
        matrix = [list(columns[name]) for name in self.floats]
        return [matrix, *(_array_argument(c, columns[c.name]) for c in self.others)]


def _sql_type(column: sa.Column[Any]) -> Any:
    kind = column.type
    return kind.impl if isinstance(kind, sa.TypeDecorator) else kind


def _unnest_sql(column: sa.Column[Any], number: int) -> str:
    kind = _sql_type(column)
    if isinstance(kind, sa.JSON):
        # A JSON null element is SQL NULL.
        return f"nullif(json_array_elements(${number}::json)::text, 'null')::json"
    if isinstance(kind, sa.Boolean):
        return f"json_array_elements_text(${number}::json)::boolean"
    if isinstance(kind, sa.String):
        # Not cast to the column's varchar(n), which would truncate: assigned, too long fails.
        return f"json_array_elements_text(${number}::json)"
    if isinstance(kind, sa.DateTime):
        return f"unnest(${number}::text::timestamptz[])"
    if isinstance(kind, sa.Uuid):
        return f"unnest(${number}::uuid[])"
    raise TypeError(f"no array form for {column.name} ({column.type})")


def _array_argument(column: sa.Column[Any], values: Sequence[Any]) -> Any:
    kind = _sql_type(column)
    if isinstance(kind, sa.JSON):
        return json_array(values)
    if isinstance(kind, (sa.Boolean, sa.String)):
        return _json_text(values)
    if isinstance(kind, sa.DateTime):
        return timestamps_text(values)
    return values


def timestamps_text(values: Sequence[datetime]) -> str:
    """A timestamptz[] literal: asyncpg's binary encoder costs ~3 µs per datetime; this formats
    each distinct time once (`ensure_utc` as `UTCDateTime` does) and joins the texts."""
    text = {value: ensure_utc(value).isoformat() for value in set(values)}
    return "{" + ",".join(map(text.__getitem__, values)) + "}"


def json_array(values: Sequence[Any]) -> str:
    """JSON values as the text of one JSON array, encoded in Rust (a quarter of `json.dumps`'s
    cost). NaN and infinities are written as `json.dumps` does, so PostgreSQL refuses them."""
    return pydantic_core.to_json(values, inf_nan_mode="constants").decode()


# Strings as they are (no \u escapes): the text goes to the database in its own encoding.
_json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_PG_UPSERT_INTERVALS = _ArrayUpsert(intervals)


async def upsert_counters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(_upsert(_dialect(session), counters), rows)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


_LATEST_STATE = (
    sa.update(devices)
    .where(
        devices.c.pk == sa.bindparam("b_pk"),
        # A late batch never moves a device's state back in time.
        sa.or_(devices.c.last_seen_at.is_(None), devices.c.last_seen_at <= sa.bindparam("b_seen")),
    )
    .values(
        # An offline report carries no SOC: keep the last known one for the planner.
        state_of_charge_pct=sa.func.coalesce(
            sa.bindparam("b_soc", type_=sa.Double()), devices.c.state_of_charge_pct
        ),
        is_online=sa.bindparam("b_online"),
        last_seen_at=sa.bindparam("b_seen"),
        # Telemetry is not an edit of the device: keep `updated_at` (else onupdate sets it).
        updated_at=devices.c.updated_at,
    )
)


async def update_latest_state(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """`update_latest_state_columns` for rows `{b_pk, b_soc, b_online, b_seen}`."""
    await update_latest_state_columns(
        session,
        [r["b_pk"] for r in rows],
        [r["b_soc"] for r in rows],
        [r["b_online"] for r in rows],
        [r["b_seen"] for r in rows],
    )


async def update_latest_state_columns(
    session: AsyncSession,
    pks: Sequence[uuid.UUID],
    socs: Sequence[float | None],
    onlines: Sequence[bool],
    seens: Sequence[datetime],
) -> None:
    """Each device's (one entry per device) state of charge, online flag and last seen time.

    PostgreSQL: the devices are locked in primary-key order first, so that two batches
    touching the same devices cannot deadlock whatever join order the planner picks for the
    update; then one `UPDATE ... FROM unnest(...)` writes them all (3 instead of 8-9 ms of
    PostgreSQL CPU for 1,000 devices, against an executemany of 1,000 UPDATEs). SQLite, which
    has one writer at a time, keeps an executemany.
    """
    if not pks:
        return
    if _dialect(session) != "postgresql":
        rows = [
            {"b_pk": pk, "b_soc": soc, "b_online": online, "b_seen": seen}
            for pk, soc, online, seen in zip(pks, socs, onlines, seens, strict=True)
        ]
        await session.execute(_LATEST_STATE, rows)
        return
    driver = await _driver(session)
    await driver.execute(_PG_LOCK_DEVICES, pks)
    seen = timestamps_text(seens)
    await driver.execute(_PG_LATEST_STATE, pks, socs, _json_text(onlines), seen)


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection of the session's transaction (begun if it was not yet)."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter begins lazily, on the first statement.
        await connection.exec_driver_sql("SELECT 1")
    return driver


_PG_LOCK_DEVICES = """
SELECT 1 FROM devices WHERE pk = ANY($1::uuid[]) ORDER BY pk FOR NO KEY UPDATE
"""
# The same statement as `_LATEST_STATE`, in asyncpg's parameter style, over arrays (the flags
# as a JSON array and the times as text, as for `_ArrayUpsert`).
_PG_LATEST_STATE = """
UPDATE devices AS d
SET state_of_charge_pct = COALESCE(b.soc, d.state_of_charge_pct),
    is_online = b.online,
    last_seen_at = b.seen
FROM (
    SELECT unnest($1::uuid[]) AS pk, unnest($2::float8[]) AS soc,
        json_array_elements_text($3::json)::boolean AS online,
        unnest($4::text::timestamptz[]) AS seen
) AS b
WHERE d.pk = b.pk AND (d.last_seen_at IS NULL OR d.last_seen_at <= b.seen)
"""


async def counters_for_update(
    session: AsyncSession, device_pks: set[uuid.UUID]
) -> dict[uuid.UUID, AnyRow]:
    """Last counter readings, locked (PostgreSQL) so that two batches cannot both extend one."""
    if not device_pks:
        return {}
    stmt = (
        sa.select(counters)
        .where(counters.c.device_pk.in_(device_pks))
        .order_by(counters.c.device_pk)
        .with_for_update()
    )
    return {row.device_pk: row for row in await session.execute(stmt)}


async def prune_batch(session: AsyncSession, cutoff: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` interval rows that started before `cutoff`."""
    doomed = (
        sa.select(intervals.c.device_pk, intervals.c.start_time)
        .where(intervals.c.start_time < cutoff)
        .limit(batch_size)
    )
    key = sa.tuple_(intervals.c.device_pk, intervals.c.start_time)
    result = await session.execute(sa.delete(intervals).where(key.in_(doomed)))
    return cast(CursorResult[Any], result).rowcount


# Utility reads -----------------------------------------------------------------------------------


def program_devices(
    program_id: uuid.UUID, enrollment_ids: Sequence[uuid.UUID] | None = None
) -> sa.Select[uuid.UUID]:
    """Device pks listed in the program's ACTIVE or PAUSED enrollments."""
    stmt = (
        sa.select(EnrollmentDevice.device_pk)
        .join(Enrollment, Enrollment.id == EnrollmentDevice.enrollment_id)
        .where(Enrollment.program_id == program_id, Enrollment.status.in_(READABLE_STATUSES))
    )
    if enrollment_ids is not None:
        stmt = stmt.where(Enrollment.id.in_(enrollment_ids))
    return stmt


@dataclass(frozen=True)
class ReadScope:
    program_id: uuid.UUID
    device_ids: Sequence[str] | None
    enrollment_ids: Sequence[uuid.UUID] | None


def _points(scope: ReadScope) -> sa.Select[Any]:
    stmt = (
        sa.select(Device.id, Device.reserve_percentage, Device.last_seen_at, intervals)
        .join(intervals, intervals.c.device_pk == Device.pk)
        .where(
            Device.pk.in_(program_devices(scope.program_id, scope.enrollment_ids)),
            Device.deleted_at.is_(None),
        )
    )
    if scope.device_ids is not None:
        stmt = stmt.where(Device.id.in_(set(scope.device_ids)))
    return stmt


def _after(columns: Sequence[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    typed = [sa.literal(v, c.type) for c, v in zip(columns, values, strict=True)]
    return sa.tuple_(*columns) > sa.tuple_(*typed)


async def latest_points(
    session: AsyncSession, scope: ReadScope, limit: int, after: Sequence[Any] | None
) -> Sequence[AnyRow]:
    """The newest interval of each device, ordered by (device id, device pk)."""
    newer = sa.alias(intervals)
    newest = (
        sa.select(sa.func.max(newer.c.start_time))
        .where(newer.c.device_pk == Device.pk)
        .scalar_subquery()
    )
    order = (Device.id, Device.pk)
    stmt = _points(scope).where(intervals.c.start_time == newest)
    if after is not None:
        stmt = stmt.where(_after(order, after))
    return (await session.execute(stmt.order_by(*order).limit(limit))).all()


async def historical_points(
    session: AsyncSession,
    scope: ReadScope,
    window: tuple[datetime, datetime],
    limit: int,
    after: Sequence[Any] | None,
) -> Sequence[AnyRow]:
    """Intervals starting in [start, end), ordered by (device id, device pk, start_time)."""
    order = (Device.id, Device.pk, intervals.c.start_time)
    stmt = _points(scope).where(
        intervals.c.start_time >= window[0], intervals.c.start_time < window[1]
    )
    if after is not None:
        stmt = stmt.where(_after(order, after))
    return (await session.execute(stmt.order_by(*order).limit(limit))).all()


# Performance -------------------------------------------------------------------------------------


def event_devices(event_id: uuid.UUID) -> sa.Select[uuid.UUID]:
    return sa.select(Command.device_pk).where(Command.event_id == event_id).distinct()


async def event_commands(session: AsyncSession, event_id: uuid.UUID) -> Sequence[AnyRow]:
    """Every command of the event with its site id."""
    stmt = (
        sa.select(
            Command.device_pk,
            SiteEvent.site_id,
            Command.mode,
            Command.setpoint_w,
            Command.starts_at,
            Command.ends_at,
            Command.status,
            Command.is_preparatory_action,
        )
        .join(SiteEvent, SiteEvent.pk == Command.site_event_pk)
        .where(Command.event_id == event_id)
    )
    return (await session.execute(stmt)).all()


async def device_commands(
    session: AsyncSession, devices_of: sa.Select[uuid.UUID], since: datetime, until: datetime
) -> Sequence[AnyRow]:
    """(device_pk, starts_at, ends_at) of commands not canceled that overlap [since, until)."""
    stmt = sa.select(Command.device_pk, Command.starts_at, Command.ends_at).where(
        Command.device_pk.in_(devices_of),
        Command.status != CommandStatus.CANCELED,
        Command.starts_at < until,
        sa.or_(Command.ends_at.is_(None), Command.ends_at > since),
    )
    return (await session.execute(stmt)).all()


_MEASURED = sa.and_(
    intervals.c.battery_total_energy_charge_wh.is_not(None),
    intervals.c.battery_total_energy_discharge_wh.is_not(None),
)


async def energy_rows(
    session: AsyncSession, devices_of: sa.Select[uuid.UUID], since: datetime, until: datetime
) -> Sequence[AnyRow]:
    """(device_pk, start_time, duration_s, charge_wh, discharge_wh) starting in [since, until)."""
    stmt = sa.select(
        intervals.c.device_pk,
        intervals.c.start_time,
        intervals.c.duration_s,
        intervals.c.battery_total_energy_charge_wh,
        intervals.c.battery_total_energy_discharge_wh,
    ).where(
        intervals.c.device_pk.in_(devices_of),
        intervals.c.start_time >= since,
        intervals.c.start_time < until,
        _MEASURED,
    )
    return (await session.execute(stmt)).all()


async def energy_totals(
    session: AsyncSession, devices_of: sa.Select[uuid.UUID], since: datetime, until: datetime
) -> Sequence[AnyRow]:
    """Per device: (device_pk, net discharge Wh, seconds measured) of intervals starting in
    [since, until), summed by the database (baseline days would be too many rows to fetch)."""
    net = intervals.c.battery_total_energy_discharge_wh - intervals.c.battery_total_energy_charge_wh
    stmt = (
        sa.select(intervals.c.device_pk, sa.func.sum(net), sa.func.sum(intervals.c.duration_s))
        .where(
            intervals.c.device_pk.in_(devices_of),
            intervals.c.start_time >= since,
            intervals.c.start_time < until,
            _MEASURED,
        )
        .group_by(intervals.c.device_pk)
    )
    return (await session.execute(stmt)).all()


# Capacity ----------------------------------------------------------------------------------------


async def capacity_devices(session: AsyncSession, program_id: uuid.UUID) -> Sequence[AnyRow]:
    """Live batteries of the program's ACTIVE enrollments, with ratings and latest state."""
    enrolled = (
        sa.select(EnrollmentDevice.device_pk)
        .join(Enrollment, Enrollment.id == EnrollmentDevice.enrollment_id)
        .where(Enrollment.program_id == program_id, Enrollment.status == EnrollmentStatus.ACTIVE)
    )
    stmt = sa.select(
        Device.pk,
        Device.site_pk,
        Device.battery_capacity_wh,
        Device.battery_power_output_w,
        Device.reserve_percentage,
        Device.state_of_charge_pct,
        Device.is_online,
        Device.last_seen_at,
    ).where(
        Device.pk.in_(enrolled),
        Device.deleted_at.is_(None),
        Device.type == DeviceType.BATTERY,
    )
    return (await session.execute(stmt)).all()


async def program_groups(session: AsyncSession, program_id: uuid.UUID) -> Sequence[AnyRow]:
    """(group id, name, member site pk or None) for every group of the program."""
    stmt = (
        sa.select(Group.id, Group.name, SiteGroup.site_pk)
        .outerjoin(SiteGroup, SiteGroup.group_pk == Group.pk)
        .where(Group.program_id == program_id)
        .order_by(Group.id)
    )
    return (await session.execute(stmt)).all()


async def planned_discharges(
    session: AsyncSession, program_id: uuid.UUID, since: datetime, until: datetime
) -> Sequence[AnyRow]:
    """(device_pk, setpoint_w, starts_at, ends_at) of DISCHARGE commands in force that overlap
    [since, until), for the program's devices."""
    stmt = sa.select(
        Command.device_pk, Command.setpoint_w, Command.starts_at, Command.ends_at
    ).where(
        Command.device_pk.in_(program_devices(program_id)),
        Command.status == CommandStatus.OK,
        Command.mode == "DISCHARGE",
        Command.starts_at < until,
        sa.or_(Command.ends_at.is_(None), Command.ends_at > since),
    )
    return (await session.execute(stmt)).all()
