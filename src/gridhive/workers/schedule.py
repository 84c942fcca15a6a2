"""What the scheduler runs: handlers of timed jobs and the table of periodic jobs.

A one-off job (`event.tick`) is scheduled by domain code with a due time. A periodic job is
a row too: when it runs, the same unit of work schedules its next run (key = kind + due
time, on a grid of its interval counted from the epoch), so there is always exactly one
pending row per periodic kind, and two schedulers starting at once add the same row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import deadlines
from gridhive.config import Settings
from gridhive.events import ticks
from gridhive.kit.time import isoformat_z
from gridhive.queue import schedule as queue_schedule
from gridhive.queue.schedule import ClaimedJob
from gridhive.telemetry import published
from gridhive.telemetry import service as telemetry_service

log = structlog.get_logger(__name__)

TELEMETRY_PUBLISH = "telemetry.publish"
TELEMETRY_PRUNE = "telemetry.prune"
JOBS_PURGE = "scheduler.purge"


@dataclass(frozen=True, slots=True)
class JobContext:
    job: ClaimedJob
    now: datetime  # when the job runs (its due time or later)
    settings: Settings


# A one-off job's handler.
Handler = Callable[[AsyncSession, JobContext], Awaitable[None]]
# A periodic job's handler: True when work is left over (run again at once, in a new unit of
# work, instead of waiting for the next interval).
PeriodicHandler = Callable[[AsyncSession, JobContext], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Periodic:
    kind: str
    interval: timedelta
    handler: PeriodicHandler

    def next_due(self, after: datetime) -> datetime:
        """The first time on this job's grid strictly after `after`."""
        step = self.interval.total_seconds()
        slots = int((after - _EPOCH).total_seconds() // step) + 1
        return _EPOCH + timedelta(seconds=slots * step)

    def job(self, due_at: datetime) -> queue_schedule.JobSpec:
        return queue_schedule.JobSpec(self.kind, f"{self.kind}@{isoformat_z(due_at)}", due_at, {})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Handlers ------------------------------------------------------------------------------------


async def _event_tick(session: AsyncSession, context: JobContext) -> None:
    await ticks.run_tick(session, context.job.payload, now=context.now)


async def _ack_sweep(session: AsyncSession, context: JobContext) -> bool:
    config = context.settings.scheduler
    sent = await deadlines.sweep(
        session,
        now=context.now,
        deadline=timedelta(seconds=config.ack_deadline_s),
        max_resends=config.max_resends,
    )
    if sent:
        log.info("commands_resent", count=sent)
    return False


async def _telemetry_publish(session: AsyncSession, context: JobContext) -> bool:
    interval = timedelta(seconds=context.settings.scheduler.telemetry_publish_interval_s)
    # The window ends at the job's due time, a grid point: each window is published once
    # whichever scheduler runs it and however late.
    await published.publish(session, now=context.job.due_at, interval=interval)
    return False


async def _telemetry_prune(session: AsyncSession, context: JobContext) -> bool:
    # One batch per unit of work: a day's deletions never sit in one transaction.
    settings = context.settings.telemetry
    deleted = await telemetry_service.prune_step(session, now=context.now, settings=settings)
    return deleted >= settings.prune_batch_size


async def _purge_jobs(session: AsyncSession, context: JobContext) -> bool:
    keep = timedelta(days=context.settings.scheduler.job_retention_days)
    await queue_schedule.purge_finished(session, before=context.now - keep)
    # A window's publication key only guards against publishing it twice while its job can
    # still run again; past the jobs' retention nothing can.
    await published.forget_before(session, before=context.now - keep)
    return False


ONE_OFF_HANDLERS: dict[str, Handler] = {ticks.KIND: _event_tick}


def periodic_jobs(settings: Settings) -> list[Periodic]:
    """The periodic table."""
    config = settings.scheduler
    return [
        Periodic(deadlines.KIND, timedelta(seconds=config.ack_sweep_interval_s), _ack_sweep),
        Periodic(
            TELEMETRY_PUBLISH,
            timedelta(seconds=config.telemetry_publish_interval_s),
            _telemetry_publish,
        ),
        Periodic(TELEMETRY_PRUNE, timedelta(seconds=config.prune_interval_s), _telemetry_prune),
        Periodic(JOBS_PURGE, timedelta(seconds=config.prune_interval_s), _purge_jobs),
    ]


async def seed(session: AsyncSession, periodic: list[Periodic], *, now: datetime) -> int:
    """Schedule the next run of each periodic kind that has none; the number added."""
    added = 0
    for job in periodic:
        if not await queue_schedule.has_open(session, job.kind):
            added += await queue_schedule.schedule_many(session, [job.job(job.next_due(now))])
    return added


async def schedule_next(
    session: AsyncSession, job: Periodic, *, now: datetime, more: bool = False
) -> None:
    """After a run (in its unit of work): the next one, unless another is already open."""
    if await queue_schedule.has_open(session, job.kind):
        return
    # Left-over work runs again a second later: a breath between batches lets other writers
    # in (SQLite has one writer), and the key differs from this run's.
    due_at = now + timedelta(seconds=1) if more else job.next_due(now)
    await queue_schedule.schedule_many(session, [job.job(due_at)])
