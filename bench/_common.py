"""Bench plumbing: fresh databases, bulk seeding, and phase timers wrapped around functions.

Seeding writes rows with Core executemany: it prepares the data and is not what is measured.
Phase timers patch module attributes for the duration of a run and restore them afterwards,
so the service carries no timing code of its own.
"""

from __future__ import annotations

import functools
import gc
import inspect
import json
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import Organization, OrgKind
from gridhive.commands.models import Command
from gridhive.db.base import UTCDateTime
from gridhive.db.bulk import insert_rows, uuid7_hex_stream
from gridhive.db.engine import create_engine, is_sqlite
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker
from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment, EnrollmentDevice
from gridhive.events.models import SiteEvent
from gridhive.events.persistence import COMMAND_COLUMNS, SITE_EVENT_COLUMNS
from gridhive.programs import service as program_service
from gridhive.programs.schemas import ProgramCreate
from gridhive.sites.models import Site
from gridhive.webhooks import endpoints
from gridhive.webhooks.models import Delivery, OutboundMessage
from gridhive.webhooks.schemas import WebhookEndpointCreate
from gridhive.webhooks.service import DELIVERY_COLUMNS, MESSAGE_COLUMNS

SEED_CHUNK = 10_000


# Databases -----------------------------------------------------------------------------------


def sqlite_url() -> str:
    path = Path(tempfile.mkdtemp(prefix="gridhive-bench-")) / "bench.db"
    return f"sqlite+aiosqlite:///{path}"


def remove_sqlite_database(url: str) -> None:
    """Delete the directory `sqlite_url` made (a 100,000-device run leaves some 3 GB)."""
    path = make_url(url).database
    if path and Path(path).parent.name.startswith("gridhive-bench-"):
        shutil.rmtree(Path(path).parent, ignore_errors=True)


async def fresh_engine(url: str) -> AsyncEngine:
    """An engine on an empty, migrated database (PostgreSQL: created if missing, schema reset)."""
    if not is_sqlite(url):
        await _create_postgres_database(url)
    engine = create_engine(url)
    if not is_sqlite(url):
        async with engine.begin() as connection:
            await connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(sa.text("CREATE SCHEMA public"))
    await upgrade_with_engine(engine)
    return engine


async def _create_postgres_database(url: str) -> None:
    parsed = make_url(url)
    name = parsed.database
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def server_version(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return f"SQLite {await connection.scalar(sa.text('SELECT sqlite_version()'))}"
        version = await connection.scalar(sa.text("SHOW server_version"))
        return f"PostgreSQL {version}"


# Seeding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    program_id: uuid.UUID
    utility_headers: dict[str, str]
    devices: int


async def seed_fleet(session: AsyncSession, devices: int) -> Fleet:
    """A utility, an OEM, an auto-approving program and `devices` enrolled homes of one battery.

    Capacities and ratings vary, two devices in three report a state of charge (some full),
    and one in ten is offline: the planner takes every branch it takes in production.
    """
    utility = await auth_service.create_organization(session, kind=OrgKind.UTILITY, name="Util")
    _, key = await auth_service.create_api_key(session, org_id=utility.id)
    oem = await auth_service.create_organization(session, kind=OrgKind.OEM, name="Volt")
    program = await program_service.create_program(
        session,
        utility_id=utility.id,
        data=ProgramCreate.model_validate({"name": "Bench Peak", "auto_approve": True}),
    )
    await session.commit()
    now = datetime.now(UTC)
    for start in range(0, devices, SEED_CHUNK):
        stop = min(devices, start + SEED_CHUNK)
        rows = [_home(i, oem.id, program.id, now) for i in range(start, stop)]
        for table, index in (
            (Site.__table__, 0),
            (Device.__table__, 1),
            (Enrollment.__table__, 2),
            (EnrollmentDevice.__table__, 3),
        ):
            await session.execute(sa.insert(table), [row[index] for row in rows])
    await session.commit()
    if session.get_bind().dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load; without statistics the planner guesses
        # one row per table and sorts the targets on disk.
        await session.execute(sa.text("ANALYZE"))
        await session.commit()
    return Fleet(program.id, {"Authorization": f"Bearer {key}"}, devices)


async def register_oem_webhook(
    session: AsyncSession, url: str, event_types: list[str] | None = None
) -> None:
    """A webhook endpoint of the seeded fleet's OEM, in the caller's transaction."""
    oem = await session.scalar(sa.select(Organization).where(Organization.kind == OrgKind.OEM))
    assert oem is not None
    await endpoints.create_endpoint(
        session,
        org_id=oem.id,
        data=WebhookEndpointCreate(url=url, event_types=event_types),
        allow_private=True,
    )


def _home(
    i: int, oem_id: uuid.UUID, program_id: uuid.UUID, now: datetime
) -> tuple[dict[str, Any], ...]:
    site_pk, device_pk, enrollment_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stamps = {"created_at": now, "updated_at": now}
    site = {"pk": site_pk, "tenant_id": oem_id, "id": f"home-{i:06d}", **stamps}
    device = {
        "pk": device_pk,
        "tenant_id": oem_id,
        "site_pk": site_pk,
        "id": f"bat-{i:06d}",
        "type": "BATTERY",
        "manufacturer_name": "Volt",
        "product_name": "PowerCell",
        "serial_number": f"SN-{i:06d}",
        "battery_capacity_wh": (5, 10, 13, 15, 20)[i % 5] * 1000 + 500 * (i % 3),
        "battery_power_input_w": (3000, 3800, 5000, 7600, 11500)[i % 5],
        "battery_power_output_w": (3000, 5000, 5000, 7600, 11500)[(i + 2) % 5],
        "extra_attributes": {},
        "reserve_percentage": (10, 20, 30)[i % 3],
        "state_of_charge_pct": None if i % 3 == 0 else float((i * 7) % 101),
        "is_online": False if i % 10 == 0 else True,
        **stamps,
    }
    enrollment = {
        "id": enrollment_id,
        "tenant_id": oem_id,
        "site_pk": site_pk,
        "program_id": program_id,
        "enroll_method": "USER_ACTION",
        "status": "ACTIVE",
        "enrolled_at": now,
        "program_specific_attributes": [],
        **stamps,
    }
    member = {"enrollment_id": enrollment_id, "device_pk": device_pk, "device_id": device["id"]}
    return site, device, enrollment, member


# Phase timers --------------------------------------------------------------------------------


class PhaseTimer:
    """Exclusive wall time per phase: a phase nested in another is not counted twice."""

    def __init__(self) -> None:
        self.totals: defaultdict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # per open phase: [start, time spent in children]
        self._patches: list[tuple[object, str, object]] = []

    def reset(self) -> None:
        self.totals.clear()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = [time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            elapsed = time.perf_counter() - frame[0]
            self.totals[name] += elapsed - frame[1]
            if self._stack:
                self._stack[-1][1] += elapsed

    def wrap(self, owner: object, attr: str, name: str) -> bool:
        """Time every call of `owner.attr` as phase `name`; False when there is no such attr."""
        original = getattr(owner, attr, None)
        if original is None:
            return False
        self._patches.append((owner, attr, original))
        setattr(owner, attr, self._timed(original, name))
        return True

    def _timed(self, function: Any, name: str) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                with self.phase(name):
                    return await function(*args, **kwargs)

            return timed_async

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return function(*args, **kwargs)

        return timed

    def restore(self) -> None:
        for owner, attr, original in reversed(self._patches):
            setattr(owner, attr, original)
        self._patches.clear()


class GcClock:
    """Time spent in the cyclic garbage collector (inside whichever phase it struck)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full_collections = 0
        self._started = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        if info["generation"] == 2:
            self.full_collections += 1


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


# The database's own share -------------------------------------------------------------------


async def database_floor(engine: AsyncEngine, event_id: uuid.UUID, since: datetime) -> float:
    """Seconds to store again, through the service's own bulk path (`insert_rows`: COPY or
    executemany) and commit, the site events, commands and outbox rows one dispatch stored,
    with the rows already built: what is left when resolving, planning and building rows take
    no time at all. Copies get new ids, and their commands are CANCELED so that later runs do
    not supersede them.
    """
    new_event = uuid.uuid4()
    old = sa.bindparam("old", event_id, type_=sa.Uuid())
    async with engine.connect() as connection:
        # sa.text without column types: values come back as the driver gives them.
        site_events = await _raw(
            connection, "SELECT * FROM site_events WHERE event_id = :old", old, SITE_EVENT_COLUMNS
        )
        commands = await _raw(
            connection, "SELECT * FROM commands WHERE event_id = :old", old, COMMAND_COLUMNS
        )
        messages = await _raw(
            connection,
            "SELECT * FROM outbound_messages WHERE created_at >= :since",
            sa.bindparam("since", since, type_=UTCDateTime()),
            MESSAGE_COLUMNS,
        )
        deliveries = await _raw(
            connection,
            "SELECT * FROM deliveries WHERE created_at >= :since",
            sa.bindparam("since", since, type_=UTCDateTime()),
            DELIVERY_COLUMNS,
        )
    new_site_events = _renamed(
        site_events, SITE_EVENT_COLUMNS, pk=uuid7_hex_stream(), event_id=new_event.hex
    )
    site_pk = {old[0]: new[0] for old, new in zip(site_events, new_site_events, strict=True)}
    site_events = new_site_events
    commands = _renamed(
        commands,
        COMMAND_COLUMNS,
        id=uuid7_hex_stream(),
        event_id=new_event.hex,
        site_event_pk=site_pk,
        status="CANCELED",
    )
    new_messages = _renamed(
        messages, MESSAGE_COLUMNS, id=uuid7_hex_stream(), event_id=new_event.hex
    )
    message_id = {old[0]: new[0] for old, new in zip(messages, new_messages, strict=True)}
    messages = new_messages
    deliveries = _renamed(
        deliveries, DELIVERY_COLUMNS, id=uuid7_hex_stream(), message_id=message_id
    )
    async with make_sessionmaker(engine)() as session:
        started = time.perf_counter()
        await session.execute(
            sa.text(
                "INSERT INTO events (id, program_id, utility_id, target_type, target_ids,"
                " actions, starts_at, ends_at, duration_s, plan, created_at, updated_at)"
                " SELECT :new, program_id, utility_id, target_type, target_ids, actions,"
                " starts_at, ends_at, duration_s, plan, created_at, updated_at"
                " FROM events WHERE id = :old"
            ).bindparams(old, sa.bindparam("new", new_event, type_=sa.Uuid()))
        )
        await insert_rows(session, SiteEvent, SITE_EVENT_COLUMNS, site_events)
        await insert_rows(session, Command, COMMAND_COLUMNS, commands)
        await insert_rows(session, OutboundMessage, MESSAGE_COLUMNS, messages)
        await insert_rows(session, Delivery, DELIVERY_COLUMNS, deliveries)
        await session.commit()
        return time.perf_counter() - started


def _renamed(
    rows: list[tuple[Any, ...]], columns: Sequence[str], **new: Any
) -> list[tuple[Any, ...]]:
    """`rows` with the named columns replaced: by the next value of an iterator, by the value
    a dict maps the old one to, or by a constant."""
    positions = [(columns.index(name), value) for name, value in new.items()]
    renamed = []
    for row in rows:
        values = list(row)
        for position, value in positions:
            if isinstance(value, Iterator):
                values[position] = next(value)
            elif isinstance(value, dict):
                values[position] = value[values[position]]
            else:
                values[position] = value
        renamed.append(tuple(values))
    return renamed


async def _raw(
    connection: AsyncConnection,
    sql: str,
    parameter: sa.BindParameter[Any],
    columns: Sequence[str],
) -> list[tuple[Any, ...]]:
    """Rows as the driver returns them, in `columns` order; JSON as text (asyncpg decodes it)."""
    names = ", ".join(columns)
    result = await connection.execute(sa.text(sql.replace("*", names, 1)).bindparams(parameter))
    return [tuple(_json(v) if isinstance(v, dict | list) else v for v in row) for row in result]


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))  # as the service writes it
