"""Scheduling timed work and the claim / complete / retry steps of running it.

`schedule` is an idempotent insert keyed on (kind, key). A scheduler claims due rows with the
lease of `queue/lease.py` (conditional UPDATE, plus SKIP LOCKED on PostgreSQL), then, in the
unit of work that runs the handler, `complete`s the row first: if another scheduler took the
row over (our lease ran out) nothing matches, and the handler's effects are rolled back with
the rest. A handler that raises is rolled back and `retry` reschedules the row with backoff.

A process that dies in a handler (SIGKILL, out of memory) records nothing: its lease runs out
and another scheduler claims the row again. So each run is counted by `start`, committed
before the handler begins, and a row that has begun as many runs as the retry schedule allows
tries without finishing is `give_up`'s: dead, with the reason in `last_error`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.ids import new_uuid
from gridhive.kit.time import utc_now
from gridhive.queue import lease
from gridhive.queue.backoff import retry_delay
from gridhive.queue.models import JobState, ScheduledJob

# A timed job that fails is usually a bug or an unreachable database: retried for about
# three quarters of an hour (plus jitter), then dead. Periodic jobs run again at their next
# time whatever happened to this one.
JOB_RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]


async def schedule(
    session: AsyncSession,
    kind: str,
    key: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Add a pending job unless (kind, key) exists already; True when this call added it."""
    return await schedule_many(session, [JobSpec(kind, key, due_at, payload or {})]) == 1


async def schedule_many(session: AsyncSession, jobs: Iterable[JobSpec]) -> int:
    """`schedule` for several jobs in one statement; the number actually added."""
    now = utc_now()
    rows = [
        {
            "id": new_uuid(),
            "kind": job.kind,
            "key": job.key,
            "due_at": job.due_at,
            "payload": job.payload,
            "state": JobState.PENDING,
            "attempts": 0,
            "runs_started": 0,
            "created_at": now,
        }
        for job in jobs
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    added = 0
    # A multi-row VALUES binds every value: chunks stay below SQLite's limit of parameters.
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        statement = (
            insert(ScheduledJob)
            .values(rows[start : start + _ROWS_PER_INSERT])
            .on_conflict_do_nothing(index_elements=["kind", "key"])
            .returning(ScheduledJob.id)
        )
        added += len((await session.scalars(statement)).all())
    return added


_ROWS_PER_INSERT = 1_000


async def has_open(session: AsyncSession, kind: str) -> bool:
    """Whether a job of `kind` is waiting or running."""
    found = await session.scalar(
        sa.select(ScheduledJob.id)
        .where(ScheduledJob.kind == kind, ScheduledJob.state.in_(_open_literals()))
        .limit(1)
    )
    return found is not None


# Claim ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A leased job, as its handler sees it."""

    id: uuid.UUID
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int  # failed tries recorded
    runs_started: int = 0  # runs begun before this claim, finished or not


def _open_literals() -> list[sa.ColumnElement[Any]]:
    # Literal values, so that both databases can match the condition to the partial index.
    return [sa.literal_column(f"'{s.value}'") for s in (JobState.PENDING, JobState.RUNNING)]


def claimable(now: datetime) -> sa.ColumnElement[bool]:
    """Due, and waiting or abandoned (leased by a scheduler whose lease ran out)."""
    return sa.and_(
        ScheduledJob.due_at <= now,
        ScheduledJob.state.in_(_open_literals()),
        sa.or_(
            ScheduledJob.state == JobState.PENDING,
            ScheduledJob.lease_until < now,
        ),
    )


async def claim(
    session: AsyncSession, *, now: datetime, limit: int, lease_for: timedelta, worker: str
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs, earliest due first, and load them."""
    candidates = (
        sa.select(ScheduledJob.id)
        .where(claimable(now))
        .order_by(ScheduledJob.due_at, ScheduledJob.id)
        .limit(limit)
    )
    ids = await lease.claim(
        session,
        ScheduledJob,
        candidates,
        claimable=claimable(now),
        leased_state=JobState.RUNNING,
        now=now,
        lease=lease_for,
        worker=worker,
    )
    if not ids:
        return []
    rows = await session.execute(
        sa.select(
            ScheduledJob.id,
            ScheduledJob.kind,
            ScheduledJob.key,
            ScheduledJob.due_at,
            ScheduledJob.payload,
            ScheduledJob.attempts,
            ScheduledJob.runs_started,
        )
        .where(ScheduledJob.id.in_(ids))
        .order_by(ScheduledJob.due_at, ScheduledJob.id)
    )
    return [ClaimedJob(*row) for row in rows]


# Complete and retry --------------------------------------------------------------------------


def _held_by(job_id: uuid.UUID, worker: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        ScheduledJob.id == job_id,
        ScheduledJob.state == JobState.RUNNING,
        ScheduledJob.leased_by == worker,
    )


async def start(session: AsyncSession, job_id: uuid.UUID, *, worker: str) -> bool:
    """Count a run of the job as begun, if `worker` still holds it; False if the lease was lost.

    In a unit of work of its own, committed before the handler's: a run whose process dies
    stays counted. Counted here rather than by the claim, which leases a batch: the jobs of a
    batch after the one that killed the process never began and are not counted.
    """
    result = await session.execute(
        sa.update(ScheduledJob)
        .where(_held_by(job_id, worker))
        .values(runs_started=ScheduledJob.runs_started + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def give_up(
    session: AsyncSession, job: ClaimedJob, *, worker: str, now: datetime, error: str
) -> bool:
    """Mark a job dead without running it again; False if the lease was lost."""
    result = await session.execute(
        sa.update(ScheduledJob)
        .where(_held_by(job.id, worker))
        .values(
            state=JobState.DEAD,
            last_error=error[:1000],
            lease_until=None,
            leased_by=None,
            done_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def complete(session: AsyncSession, job_id: uuid.UUID, *, worker: str, now: datetime) -> bool:
    """Mark the job done if `worker` still holds it; False if the lease was lost.

    Called before the handler in the handler's unit of work: on PostgreSQL the row stays
    locked until that commits, so no other scheduler can claim it meanwhile.
    """
    result = await session.execute(
        sa.update(ScheduledJob)
        .where(_held_by(job_id, worker))
        .values(state=JobState.DONE, done_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True, slots=True)
class RetryOptions:
    schedule: Sequence[timedelta] = JOB_RETRY_SCHEDULE
    jitter: float = 0.1
    rng: Callable[[], float] = random.random


def max_runs(options: RetryOptions) -> int:
    """Tries a job gets in all, whether they fail or never finish: the schedule's waits + 1."""
    return len(options.schedule) + 1


async def retry(
    session: AsyncSession,
    job: ClaimedJob,
    *,
    worker: str,
    now: datetime,
    error: str,
    options: RetryOptions,
) -> JobState | None:
    """Record a failed try: pending again after the backoff, or dead when the schedule is used
    up. None when the lease was lost (another scheduler runs the job now)."""
    failures = job.attempts + 1
    delay = retry_delay(failures, schedule=options.schedule, jitter=options.jitter, rng=options.rng)
    state = JobState.DEAD if delay is None else JobState.PENDING
    result = await session.execute(
        sa.update(ScheduledJob)
        .where(_held_by(job.id, worker))
        .values(
            state=state,
            due_at=now + delay if delay is not None else ScheduledJob.due_at,
            attempts=failures,
            last_error=error[:1000],
            lease_until=None,
            leased_by=None,
            done_at=now if delay is None else None,
        )
        .execution_options(synchronize_session=False)
    )
    return state if getattr(result, "rowcount", 0) else None


# Housekeeping and metrics --------------------------------------------------------------------


async def purge_finished(session: AsyncSession, *, before: datetime) -> int:
    """Delete done and dead jobs that finished before `before`; the count deleted."""
    result = await session.execute(
        sa.delete(ScheduledJob)
        .where(
            ScheduledJob.state.in_([JobState.DONE, JobState.DEAD]),
            ScheduledJob.done_at < before,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def due_stats(session: AsyncSession, now: datetime) -> tuple[int, datetime | None]:
    """(open jobs due at `now`, the earliest due time among them)."""
    row = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.min(ScheduledJob.due_at)).where(
                ScheduledJob.state.in_(_open_literals()), ScheduledJob.due_at <= now
            )
        )
    ).one()
    return int(row[0]), row[1]


async def dead_by_kind(session: AsyncSession) -> list[tuple[str, int]]:
    """Dead jobs not yet purged, counted per kind."""
    rows = await session.execute(
        sa.select(ScheduledJob.kind, sa.func.count())
        # A literal, so that both databases match the condition to the partial index.
        .where(ScheduledJob.state == sa.literal_column(f"'{JobState.DEAD.value}'"))
        .group_by(ScheduledJob.kind)
        .order_by(ScheduledJob.kind)
    )
    return [(kind, int(count)) for kind, count in rows]
