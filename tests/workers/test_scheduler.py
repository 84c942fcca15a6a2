"""The durable scheduler on a committed database: crashes, lost leases, retries, two schedulers
and the periodic rows, with the clock moved by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from gridhive.app import create_app
from gridhive.config import SchedulerSettings, Settings
from gridhive.db.engine import is_sqlite
from gridhive.db.session import unit_of_work
from gridhive.events import ticks
from gridhive.kit.time import frozen_time, isoformat_z, utc_now
from gridhive.queue import schedule as queue_schedule
from gridhive.queue.models import JobState, ScheduledJob
from gridhive.webhooks.models import OutboundMessage
from gridhive.workers import metrics, schedule
from gridhive.workers.scheduler import Scheduler
from tests.factories import (
    create_device,
    create_enrollment,
    create_event_at,
    create_program,
    create_site,
)
from tests.workers import helpers
from tests.workers.conftest import CommittedDb, worker_settings
from tests.workers.test_app import samples

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=300)


def make_scheduler(db: CommittedDb, name: str, **options: Any) -> Scheduler:
    settings = Settings(
        database_url=db.url,
        log_json=False,
        scheduler=SchedulerSettings(retry_jitter=0, lease_s=int(LEASE.total_seconds())),
    )
    return Scheduler(db.sessionmaker, settings, worker_id=name, **options)


class Crash(BaseException):
    """The process dies: nothing after this point runs, not even the failure's record."""


async def jobs(db: CommittedDb) -> list[ScheduledJob]:
    async with db.sessionmaker() as session:
        rows = await session.scalars(sa.select(ScheduledJob).order_by(ScheduledJob.due_at))
        return list(rows)


async def started_messages(db: CommittedDb) -> int:
    async with db.sessionmaker() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.event_type == "command.started")
        )
        return int(count or 0)


async def event_starting_at(db: CommittedDb, at: datetime) -> None:
    """An event of two batteries starting at `at`, with its start tick scheduled."""
    utility = await helpers.tenant(db, "Acme Power", kind="utility")
    oem = await helpers.tenant(db)
    async with db.sessionmaker() as session:
        program = await create_program(session, utility, auto_approve=True)
        site = await create_site(session, oem, "home-1")
        batteries = [await create_device(session, site, d) for d in ("b-1", "b-2")]
        await create_enrollment(session, site, program, batteries)
        with frozen_time(at - timedelta(hours=1)):
            event = await create_event_at(
                session,
                program,
                batteries,
                starts_in=timedelta(hours=1),
                duration=timedelta(hours=1),
            )
        key = f"{event.id}@{isoformat_z(at)}"
        payload = {"event_id": str(event.id), "at": isoformat_z(at)}
        await queue_schedule.schedule(session, ticks.KIND, key, at, payload)
        await session.commit()


class TestOnceInEffect:
    async def test_a_crash_after_the_handler_runs_the_tick_again_and_it_emits_once(
        self, committed: CommittedDb, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await event_starting_at(committed, T0)
        first = make_scheduler(committed, "first")
        real_handle = Scheduler._handle

        async def handle_then_die(self: Scheduler, *args: Any) -> None:
            await real_handle(self, *args)
            raise Crash

        monkeypatch.setattr(first, "_handle", handle_then_die.__get__(first))
        with pytest.raises(Crash):
            await first.run_once(T0)
        assert await started_messages(committed) == 0  # rolled back with the process
        [job] = await jobs(committed)
        assert (job.state, job.leased_by) == (JobState.RUNNING, "first")

        second = make_scheduler(committed, "second")
        assert await second.run_once(T0 + LEASE - timedelta(seconds=1)) == 0  # still leased
        assert await second.run_once(T0 + LEASE + timedelta(seconds=1)) == 1

        assert await started_messages(committed) == 2
        [job] = await jobs(committed)
        assert job.state is JobState.DONE
        assert await second.drain(T0 + timedelta(days=1)) == 0
        assert await started_messages(committed) == 2

    async def test_a_scheduler_whose_lease_ran_out_changes_nothing(
        self, committed: CommittedDb
    ) -> None:
        await event_starting_at(committed, T0)
        slow = make_scheduler(committed, "slow")
        [claimed] = await slow.claim(T0)
        other = make_scheduler(committed, "other")
        assert await other.run_once(T0 + LEASE + timedelta(seconds=1)) == 1

        assert await slow.process(claimed, T0 + LEASE + timedelta(seconds=2)) is None

        assert await started_messages(committed) == 2


class TestFailures:
    async def test_a_failing_handler_is_retried_with_backoff_then_dead(
        self, committed: CommittedDb
    ) -> None:
        calls: list[datetime] = []

        async def broken(session: Any, context: schedule.JobContext) -> None:
            calls.append(context.now)
            raise RuntimeError("the handler is broken")

        scheduler = make_scheduler(committed, "s", handlers={"test.broken": broken})
        async with unit_of_work(committed.sessionmaker) as session:
            await queue_schedule.schedule(session, "test.broken", "one", T0)

        now = T0
        for wait in queue_schedule.JOB_RETRY_SCHEDULE:
            assert await scheduler.run_once(now) == 1
            [job] = await jobs(committed)
            assert (job.state, job.due_at) == (JobState.PENDING, now + wait)
            assert job.last_error == "RuntimeError: the handler is broken"
            assert await scheduler.run_once(now + wait - timedelta(seconds=1)) == 0
            now += wait
        assert await scheduler.run_once(now) == 1

        [job] = await jobs(committed)
        assert job.state is JobState.DEAD
        assert job.attempts == len(queue_schedule.JOB_RETRY_SCHEDULE) + 1
        assert len(calls) == job.attempts
        assert await scheduler.drain(now + timedelta(days=1)) == 0


class TestProcessesThatDie:
    """A handler that kills its process records no failure: the runs are counted as they
    begin, and a job that began every one of its tries without finishing ends dead."""

    async def test_a_job_killing_its_process_every_run_ends_dead_after_its_tries(
        self, committed: CommittedDb
    ) -> None:
        calls: list[datetime] = []

        async def kills_its_process(session: Any, context: schedule.JobContext) -> None:
            calls.append(context.now)
            raise Crash

        handlers = {"test.fatal": kills_its_process}
        async with unit_of_work(committed.sessionmaker) as session:
            await queue_schedule.schedule(session, "test.fatal", "one", T0)
        tries = len(queue_schedule.JOB_RETRY_SCHEDULE) + 1
        abandoned_before = abandoned_runs("test.fatal")

        now = await crash_every_run(committed, handlers, T0, tries)

        [job] = await jobs(committed)
        assert (job.state, job.runs_started, job.attempts) == (JobState.RUNNING, tries, 0)
        survivor = make_scheduler(committed, "survivor", handlers=handlers)
        assert await survivor.run_once(now) == 1

        assert len(calls) == tries, "not run again after its last try"
        [job] = await jobs(committed)
        assert (job.state, job.done_at, job.leased_by) == (JobState.DEAD, now, None)
        assert job.last_error == (
            f"gave up after {tries} runs: {tries} never finished (the scheduler's process"
            " died or outlived its lease), 0 failed"
        )
        assert await survivor.drain(now + timedelta(days=1)) == 0
        # Every run after the first found its predecessor abandoned.
        assert abandoned_runs("test.fatal") - abandoned_before == tries - 1
        found = samples(bytes((await metrics.render(committed.sessionmaker)).body).decode())
        assert found[("gridhive_scheduled_jobs_dead", (("kind", "test.fatal"),))] == 1

    async def test_failures_and_deaths_share_the_tries(self, committed: CommittedDb) -> None:
        outcomes = [RuntimeError("broken"), Crash(), RuntimeError("broken")]
        calls: list[datetime] = []

        async def flaky(session: Any, context: schedule.JobContext) -> None:
            calls.append(context.now)
            raise outcomes.pop(0) if outcomes else Crash()

        async with unit_of_work(committed.sessionmaker) as session:
            await queue_schedule.schedule(session, "test.flaky", "one", T0)
        scheduler = make_scheduler(committed, "s", handlers={"test.flaky": flaky})
        now = T0
        for _ in range(len(queue_schedule.JOB_RETRY_SCHEDULE) + 1):
            try:
                await scheduler.run_once(now)
            except Crash:
                scheduler = make_scheduler(
                    committed, f"s-{len(calls)}", handlers=scheduler.handlers
                )
            now += LEASE + timedelta(hours=1)  # past any lease and any backoff

        assert await scheduler.run_once(now) == 1
        [job] = await jobs(committed)
        assert len(calls) == len(queue_schedule.JOB_RETRY_SCHEDULE) + 1
        assert (job.state, job.attempts) == (JobState.DEAD, 2)
        assert job.last_error is not None
        assert "6 runs: 4 never finished" in job.last_error

    async def test_the_jobs_claimed_with_it_are_not_counted_and_run_afterwards(
        self, committed: CommittedDb
    ) -> None:
        ran: list[str] = []

        async def kills_its_process(session: Any, context: schedule.JobContext) -> None:
            raise Crash

        async def works(session: Any, context: schedule.JobContext) -> None:
            ran.append(context.job.key)

        handlers = {"test.fatal": kills_its_process, "test.fine": works}
        async with unit_of_work(committed.sessionmaker) as session:
            await queue_schedule.schedule(session, "test.fatal", "first", T0)
            await queue_schedule.schedule(session, "test.fine", "second", T0 + timedelta(seconds=1))
        tries = len(queue_schedule.JOB_RETRY_SCHEDULE) + 1

        # Each pass claims both and dies in the first: the second never begins.
        now = await crash_every_run(committed, handlers, T0 + timedelta(seconds=1), tries)
        fine = next(j for j in await jobs(committed) if j.kind == "test.fine")
        assert (fine.state, fine.runs_started) == (JobState.RUNNING, 0)

        assert await make_scheduler(committed, "survivor", handlers=handlers).run_once(now) == 2

        states = {j.kind: j.state for j in await jobs(committed)}
        assert states == {"test.fatal": JobState.DEAD, "test.fine": JobState.DONE}
        assert ran == ["second"]

    async def test_a_periodic_kind_keeps_its_next_run(self, committed: CommittedDb) -> None:
        async def kills_its_process(session: Any, context: schedule.JobContext) -> bool:
            raise Crash

        hourly = schedule.Periodic("test.hourly", timedelta(hours=1), kills_its_process)
        async with unit_of_work(committed.sessionmaker) as session:
            await schedule.seed(session, [hourly], now=T0 - timedelta(minutes=1))
        tries = len(queue_schedule.JOB_RETRY_SCHEDULE) + 1
        now = T0
        for run in range(tries):
            with pytest.raises(Crash):
                await make_scheduler(committed, f"s-{run}", periodic=[hourly]).run_once(now)
            now += LEASE + timedelta(seconds=1)

        assert await make_scheduler(committed, "survivor", periodic=[hourly]).run_once(now) == 1

        rows = await jobs(committed)
        assert [(r.state, r.due_at) for r in rows] == [
            (JobState.DEAD, T0),
            (JobState.PENDING, hourly.next_due(now)),
        ]


async def crash_every_run(
    db: CommittedDb, handlers: dict[str, schedule.Handler], now: datetime, runs: int
) -> datetime:
    """`runs` schedulers in turn, each dying in a handler; the time the last lease ran out."""
    for run in range(runs):
        with pytest.raises(Crash):
            await make_scheduler(db, f"s-{run}", handlers=handlers).run_once(now)
        now += LEASE + timedelta(seconds=1)
    return now


def abandoned_runs(kind: str) -> float:
    value = REGISTRY.get_sample_value("gridhive_scheduled_job_runs_abandoned_total", {"kind": kind})
    return value or 0.0


class TestTwoSchedulers:
    async def test_on_postgresql_they_claim_disjoint_jobs(self, committed: CommittedDb) -> None:
        if is_sqlite(committed.url):
            pytest.skip("concurrent claims need PostgreSQL (SQLite has a single writer)")
        async with unit_of_work(committed.sessionmaker) as session:
            await queue_schedule.schedule_many(
                session,
                [queue_schedule.JobSpec("test.noop", f"job-{i}", T0, {}) for i in range(40)],
            )
        first = make_scheduler(committed, "first")
        second = make_scheduler(committed, "second")
        first.batch_size = second.batch_size = 25

        a, b = await asyncio.gather(first.claim(T0), second.claim(T0))

        ids_a, ids_b = {j.id for j in a}, {j.id for j in b}
        assert not ids_a & ids_b
        # Rows one scheduler picked but the other leased first are left for its next pass
        # (when the two claims race exactly, one of them may come back empty).
        rest = {j.id for j in await first.claim(T0)} | {j.id for j in await second.claim(T0)}
        assert not rest & (ids_a | ids_b)
        assert len(ids_a) + len(ids_b) + len(rest) == 40


class TestPeriodicJobs:
    async def test_each_periodic_kind_has_exactly_one_row_after_two_starts(
        self, committed: CommittedDb
    ) -> None:
        first = make_scheduler(committed, "first")
        second = make_scheduler(committed, "second")
        kinds = set(first.periodic)
        assert {"commands.ack_sweep", "telemetry.publish", "telemetry.prune"} <= kinds

        await first.seed(T0 + timedelta(seconds=10))
        await second.seed(T0 + timedelta(seconds=70))  # a minute later: another grid slot

        rows = await jobs(committed)
        assert sorted(r.kind for r in rows) == sorted(kinds)
        assert {r.state for r in rows} == {JobState.PENDING}
        sweep = next(r for r in rows if r.kind == "commands.ack_sweep")
        assert sweep.due_at == T0 + timedelta(minutes=1)

    async def test_a_run_schedules_the_next_one_in_its_unit_of_work(
        self, committed: CommittedDb
    ) -> None:
        scheduler = make_scheduler(committed, "s")
        await scheduler.seed(T0)
        assert await scheduler.drain(T0 + timedelta(minutes=1)) == 1  # the ack sweep

        rows = await jobs(committed)
        sweeps = [r for r in rows if r.kind == "commands.ack_sweep"]
        assert [(r.state, r.due_at) for r in sweeps] == [
            (JobState.DONE, T0 + timedelta(minutes=1)),
            (JobState.PENDING, T0 + timedelta(minutes=2)),
        ]
        # Late by ten minutes (the process was down): one run, then back on the grid.
        await scheduler.drain(T0 + timedelta(minutes=12, seconds=5))
        sweeps = [r for r in await jobs(committed) if r.kind == "commands.ack_sweep"]
        assert [r.state for r in sweeps] == [JobState.DONE, JobState.DONE, JobState.PENDING]
        open_rows = [r for r in await jobs(committed) if r.state is JobState.PENDING]
        assert sorted((r.kind, r.due_at) for r in open_rows if r.kind == "commands.ack_sweep") == [
            ("commands.ack_sweep", T0 + timedelta(minutes=13))
        ]
        assert len(open_rows) == len(scheduler.periodic)
        assert all(r.attempts == 0 for r in await jobs(committed)), "no run failed"

    async def test_left_over_work_runs_again_a_second_later_then_back_on_the_grid(
        self, committed: CommittedDb
    ) -> None:
        batches = [True, True, False]  # two full batches, then the rest

        async def prune_like(session: Any, context: schedule.JobContext) -> bool:
            return batches.pop(0)

        daily = schedule.Periodic("test.daily", timedelta(days=1), prune_like)
        scheduler = make_scheduler(committed, "s", periodic=[daily])
        await scheduler.seed(T0 - timedelta(hours=1))
        midnight = datetime(2026, 7, 2, tzinfo=UTC)

        assert await scheduler.drain(midnight) == 1
        assert await scheduler.drain(midnight + timedelta(seconds=1)) == 1
        assert await scheduler.drain(midnight + timedelta(seconds=2)) == 1

        assert batches == []
        [waiting] = [r for r in await jobs(committed) if r.state is JobState.PENDING]
        assert waiting.due_at == midnight + timedelta(days=1)

    async def test_gridhive_serve_seeds_them_when_it_starts(self, committed: CommittedDb) -> None:
        settings = worker_settings(committed.url, in_process=True, poll_interval_s=0.05)
        app = create_app(settings)

        async with app.router.lifespan_context(app):
            for _ in range(100):  # the scheduler task seeds on its first pass
                if len(await jobs(committed)) >= 3:
                    break
                await asyncio.sleep(0.05)

        kinds = {r.kind for r in await jobs(committed)}
        assert {"commands.ack_sweep", "telemetry.publish", "telemetry.prune"} <= kinds


class TestMetrics:
    async def test_metrics_show_the_due_jobs_and_the_oldest_wait(
        self, committed: CommittedDb
    ) -> None:
        long_ago = utc_now() - timedelta(minutes=10)
        async with unit_of_work(committed.sessionmaker) as session:
            await queue_schedule.schedule(session, "test.noop", "late", long_ago)
            await queue_schedule.schedule(session, "test.noop", "due", utc_now())
            await queue_schedule.schedule(session, "test.noop", "later", utc_now() + LEASE)

        response = await metrics.render(committed.sessionmaker)

        found = samples(bytes(response.body).decode())
        assert found[("gridhive_scheduled_jobs_due", ())] == 2
        assert found[("gridhive_scheduled_jobs_oldest_due_age_seconds", ())] >= 600
