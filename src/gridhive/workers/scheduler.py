"""The scheduler loop: claim due jobs with a lease, run each in its own unit of work, record.

A job's handler runs in the unit of work that marks the job done, so a crash keeps both or
neither: the lease runs out and another scheduler runs the job again. A scheduler whose lease
ran out while it worked finds the job no longer its own and rolls its work back. A handler
that raises is rolled back and retried with backoff, then dead (a periodic kind still gets
its next run). A run whose process dies records no failure, so each run is counted as it
begins: a job still open after beginning all its tries (those of the retry schedule) is
marked dead instead of run again; a handler that kills its process would otherwise run
forever, one lease apart.
Tests drive it with `run_once(now)` / `drain(now)`; processes call `run(stop)`, which first
makes sure every periodic kind has its pending row.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridhive.config import Settings
from gridhive.db.session import unit_of_work
from gridhive.kit.time import utc_now
from gridhive.queue import schedule as queue_schedule
from gridhive.queue.models import JobState
from gridhive.queue.schedule import ClaimedJob
from gridhive.workers import metrics, schedule

log = structlog.get_logger(__name__)


def new_scheduler_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:sched-{secrets.token_hex(3)}"


class _LeaseLost(Exception):
    """Another scheduler owns the job now: roll back whatever this one did."""


class Scheduler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        worker_id: str | None = None,
        periodic: list[schedule.Periodic] | None = None,
        handlers: dict[str, schedule.Handler] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.worker_id = worker_id or new_scheduler_id()
        config = settings.scheduler
        self.lease = timedelta(seconds=config.lease_s)
        self.batch_size = config.batch_size
        self.periodic = {
            job.kind: job
            for job in (periodic if periodic is not None else schedule.periodic_jobs(settings))
        }
        self.handlers = handlers if handlers is not None else dict(schedule.ONE_OFF_HANDLERS)
        self.retry_options = queue_schedule.RetryOptions(jitter=config.retry_jitter, rng=rng)
        self.max_runs = queue_schedule.max_runs(self.retry_options)

    # Steps -------------------------------------------------------------------------------------

    async def seed(self, now: datetime | None = None) -> int:
        """Give every periodic kind its pending row (a no-op where one exists)."""
        async with unit_of_work(self.sessionmaker) as session:
            return await schedule.seed(session, list(self.periodic.values()), now=now or utc_now())

    async def claim(self, now: datetime) -> list[ClaimedJob]:
        async with unit_of_work(self.sessionmaker) as session:
            return await queue_schedule.claim(
                session, now=now, limit=self.batch_size, lease_for=self.lease, worker=self.worker_id
            )

    async def process(self, job: ClaimedJob, now: datetime) -> JobState | None:
        """Run one claimed job; its state afterwards (None: another scheduler owns it now)."""
        if job.runs_started >= self.max_runs:
            return await self._give_up(job, now)
        try:
            if not await self._start(job):
                raise _LeaseLost
            async with unit_of_work(self.sessionmaker) as session:
                if not await queue_schedule.complete(
                    session, job.id, worker=self.worker_id, now=now
                ):
                    raise _LeaseLost
                await self._handle(session, job, now)
        except _LeaseLost:
            log.warning("scheduled_job_lease_lost", job_id=str(job.id), kind=job.kind)
            return None
        except Exception as exc:
            log.exception("scheduled_job_failed", job_id=str(job.id), kind=job.kind)
            return await self._record_failure(job, now, f"{type(exc).__name__}: {exc}")
        metrics.SCHEDULED_JOBS_RUN.labels(job.kind, "done").inc()
        return JobState.DONE

    async def _start(self, job: ClaimedJob) -> bool:
        """Count the run as begun (committed now, so that it stays counted if this process
        dies in the handler); False if the lease was lost."""
        async with unit_of_work(self.sessionmaker) as session:
            if not await queue_schedule.start(session, job.id, worker=self.worker_id):
                return False
        if job.runs_started > job.attempts:
            # An earlier run began and neither finished nor recorded a failure.
            metrics.SCHEDULED_JOB_RUNS_ABANDONED.labels(job.kind).inc()
            log.warning(
                "scheduled_job_run_abandoned",
                job_id=str(job.id),
                kind=job.kind,
                runs_started=job.runs_started,
            )
        return True

    async def _give_up(self, job: ClaimedJob, now: datetime) -> JobState | None:
        """Mark dead a job whose every try has begun, instead of running it again."""
        unfinished = job.runs_started - job.attempts
        error = (
            f"gave up after {job.runs_started} runs: {unfinished} never finished (the"
            f" scheduler's process died or outlived its lease), {job.attempts} failed"
        )
        try:
            async with unit_of_work(self.sessionmaker) as session:
                if not await queue_schedule.give_up(
                    session, job, worker=self.worker_id, now=now, error=error
                ):
                    return None
                await self._keep_periodic_running(session, job, now)
        except Exception:
            # The lease runs out and another pass gives up on the job again.
            log.exception("scheduled_job_give_up_failed", job_id=str(job.id), kind=job.kind)
            return None
        log.error(
            "scheduled_job_abandoned",
            job_id=str(job.id),
            kind=job.kind,
            key=job.key,
            runs_started=job.runs_started,
            error=error,
        )
        metrics.SCHEDULED_JOBS_RUN.labels(job.kind, JobState.DEAD.value).inc()
        return JobState.DEAD

    async def _handle(self, session: AsyncSession, job: ClaimedJob, now: datetime) -> None:
        context = schedule.JobContext(job=job, now=now, settings=self.settings)
        periodic = self.periodic.get(job.kind)
        if periodic is not None:
            more = await periodic.handler(session, context)
            await schedule.schedule_next(session, periodic, now=now, more=more)
            return
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise LookupError(f"no handler for scheduled jobs of kind {job.kind!r}")
        await handler(session, context)

    async def _record_failure(self, job: ClaimedJob, now: datetime, error: str) -> JobState | None:
        try:
            async with unit_of_work(self.sessionmaker) as session:
                state = await queue_schedule.retry(
                    session,
                    job,
                    worker=self.worker_id,
                    now=now,
                    error=error,
                    options=self.retry_options,
                )
                if state is JobState.DEAD:
                    await self._keep_periodic_running(session, job, now)
        except Exception:
            # The lease runs out and another pass runs the job again.
            log.exception("scheduled_job_record_failed", job_id=str(job.id), kind=job.kind)
            return None
        if state is not None:
            metrics.SCHEDULED_JOBS_RUN.labels(job.kind, state.value).inc()
        return state

    async def _keep_periodic_running(
        self, session: AsyncSession, job: ClaimedJob, now: datetime
    ) -> None:
        """A periodic kind keeps running even if one of its runs gave up."""
        periodic = self.periodic.get(job.kind)
        if periodic is not None:
            await schedule.schedule_next(session, periodic, now=now)

    # Drivers -----------------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim what is due at `now` (up to the batch size) and run it, one job at a time;
        the number of jobs run. Jobs write in bulk: running them side by side would only
        make them wait for each other's locks (and SQLite has a single writer)."""
        now = now or utc_now()
        claimed = await self.claim(now)
        for job in claimed:
            await self.process(job, now)
        return len(claimed)

    async def drain(self, now: datetime | None = None, *, max_rounds: int = 1_000) -> int:
        """`run_once` until nothing is due at `now`; the number of jobs run."""
        total = 0
        for _ in range(max_rounds):
            done = await self.run_once(now)
            if not done:
                return total
            total += done
        raise RuntimeError(f"the scheduled jobs did not drain in {max_rounds} rounds")

    async def run(self, stop: asyncio.Event) -> None:
        """Seed the periodic rows, then run due jobs until `stop` is set."""
        poll = self.settings.scheduler.poll_interval_s
        log.info("scheduler_started", worker=self.worker_id)
        seeded = False
        while not stop.is_set():
            ran = 0
            try:
                if not seeded:
                    await self.seed()
                    seeded = True
                ran = await self.run_once()
            except Exception:
                log.exception("scheduler_pass_failed")
            if ran == self.batch_size:
                continue  # there may be more due right now
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll)
            except TimeoutError:
                pass
        log.info("scheduler_stopped", worker=self.worker_id)
