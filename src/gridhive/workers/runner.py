"""The delivery loop: claim due rows with a lease, deliver them concurrently, record them.

Every database step is its own short unit of work and no session is open while a message is
on the wire. Tests drive the loop with `run_once(now)` / `drain(now)` and move the clock
instead of sleeping; `run(stop)` is the long-running form used by `gridhive worker` and
`gridhive serve`.

Throughput. A message costs a round trip to the receiver and two small database writes (its
lease, its outcome). Doing those writes one message at a time capped an endpoint at about 15
messages/s, so both are batched: a claim leases every row the free slots can take in one
transaction, and outcomes are recorded together as they finish (one UPDATE for all the
successes with the same status, one bulk insert into the attempt log). While a batch is being
recorded the next requests are already on the wire.

Ordering (`worker.ordering`). With "subject" (the default) a webhook endpoint's queue is split
into lanes, one per device or site (the message's subject): a lane has one message in flight
at a time and sends them in emission order, and different lanes go in parallel, up to
`worker.endpoint_window` requests in flight per endpoint. So a device always sees its
commands in the order they were made, and an event over 100,000 batteries is not delivered
one round trip at a time. With "endpoint" the whole endpoint is one lane: strictly serial.
Either way a later message never overtakes an earlier one of its lane that is waiting for its
retry, and an endpoint in a failing run gets only its oldest message tried (one request per
retry step, not one per lane) until a success reopens every lane.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridhive.config import Settings
from gridhive.db.session import unit_of_work
from gridhive.integrations.mqtt import MqttPublisher
from gridhive.integrations.webhook import HttpxWebhookClient, WebhookClient, make_client
from gridhive.kit.time import utc_now
from gridhive.webhooks import jobs
from gridhive.webhooks.models import Channel, DeliveryState
from gridhive.webhooks.repository import JobRow
from gridhive.workers import metrics
from gridhive.workers.scheduler import Scheduler

log = structlog.get_logger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class DeliveryWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        http_client: WebhookClient | httpx.AsyncClient | None = None,
        mqtt: MqttPublisher | None = None,
        worker_id: str | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        config = settings.worker
        self.concurrency = config.concurrency
        self._owns_http = http_client is None
        if isinstance(http_client, httpx.AsyncClient):  # tests: a scripted receiver
            http_client = HttpxWebhookClient(http_client)
        self.http: WebhookClient = http_client or make_client(
            timeout_s=settings.webhooks.timeout_s,
            allow_private=settings.webhooks.allow_private,
            max_connections=config.concurrency,
        )
        self._owns_mqtt = mqtt is None
        if mqtt is None and settings.mqtt.url:
            mqtt = MqttPublisher(
                settings.mqtt.url,
                client_id=f"gridhive-{self.worker_id}"[:64],
                timeout_s=settings.mqtt.publish_timeout_s,
            )
        self.mqtt = mqtt
        channels = (Channel.WEBHOOK, Channel.MQTT) if mqtt else (Channel.WEBHOOK,)
        self._claim_options = jobs.ClaimOptions(
            limit=config.concurrency,
            window=config.endpoint_window,
            lease=timedelta(seconds=config.lease_s),
            worker=self.worker_id,
            channels=channels,
            ordering=jobs.Ordering(config.ordering),
        )
        self.policy = jobs.RetryPolicy(
            jitter=config.retry_jitter,
            suspend_after=timedelta(seconds=config.suspend_after_s),
            rng=rng,
        )
        self._slots = asyncio.Semaphore(config.concurrency)
        # Claim only when this many slots are free (or nothing is in flight): a claim then
        # leases a batch, not a row at a time.
        self._claim_batch = max(1, config.concurrency // 8)
        self._finished: list[tuple[JobRow, jobs.Outcome]] = []

    # Steps -------------------------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int | None = None) -> list[JobRow]:
        options = self._claim_options
        if limit is not None:
            options = dataclasses.replace(options, limit=limit)
        async with unit_of_work(self.sessionmaker) as session:
            return await jobs.claim(session, now=now, options=options)

    async def deliver(self, job: JobRow, now: datetime | None = None) -> jobs.Outcome:
        """One attempt, with no session open; never raises."""
        started = now or utc_now()
        async with self._slots:
            try:
                return await jobs.deliver(job, now=started, http=self.http, mqtt=self.mqtt)
            except Exception as exc:  # a bug of ours: record it, do not loop on the lease
                log.exception("delivery_crashed", delivery_id=str(job.delivery_id))
                return jobs.Outcome(started, None, f"internal error: {exc!r}"[:500], 0)

    async def record(
        self, results: list[tuple[JobRow, jobs.Outcome]], now: datetime | None = None
    ) -> list[DeliveryState | None]:
        """Record a batch of outcomes in one unit of work; None for rows not recorded."""
        if not results:
            return []
        recorded_at = now or utc_now()
        try:
            async with unit_of_work(self.sessionmaker) as session:
                recorded = await jobs.record_many(
                    session, results, now=recorded_at, worker=self.worker_id, policy=self.policy
                )
        except Exception:
            # The leases run out and another pass delivers the rows again (at-least-once).
            log.exception("delivery_record_failed", rows=len(results))
            return [None] * len(results)
        for (job, outcome), result in zip(results, recorded, strict=True):
            self._observe(job, outcome, result, recorded_at)
        return [result.state for result in recorded]

    async def process(self, job: JobRow, now: datetime | None = None) -> DeliveryState | None:
        """Deliver one claimed row, then record the outcome."""
        outcome = await self.deliver(job, now)
        [state] = await self.record([(job, outcome)], now)
        return state

    def _observe(
        self, job: JobRow, outcome: jobs.Outcome, recorded: jobs.Recorded, at: datetime
    ) -> None:
        channel = job.channel.value
        metrics.ATTEMPTS.labels(channel, "ok" if outcome.ok else "error").inc()
        metrics.ATTEMPT_SECONDS.labels(channel).observe(outcome.latency_ms / 1000)
        if recorded.state is DeliveryState.DELIVERED:
            lag = (at - job.message_created_at).total_seconds()
            metrics.DELIVERY_LAG.labels(channel).observe(max(lag, 0.0))
        if recorded.suspended:
            metrics.SUSPENSIONS.inc()
            log.warning("webhook_endpoint_suspended", endpoint_id=str(job.endpoint_id))
        if not outcome.ok:
            log.info(
                "delivery_failed",
                delivery_id=str(job.delivery_id),
                attempt=job.attempts + 1,
                state=recorded.state.value if recorded.state else None,
                error=outcome.error,
            )

    # Drivers -----------------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim what is due at `now` (up to the concurrency), deliver it all, record it all.

        Returns the number of rows processed.
        """
        claimed = await self.claim(now or utc_now())
        outcomes = await asyncio.gather(*(self.deliver(job, now) for job in claimed))
        await self.record(list(zip(claimed, outcomes, strict=True)), now)
        return len(claimed)

    async def drain(self, now: datetime | None = None, *, max_rounds: int = 10_000) -> int:
        """`run_once` until nothing is due at `now`; returns the rows processed."""
        total = 0
        for _ in range(max_rounds):
            done = await self.run_once(now)
            if not done:
                return total
            total += done
        raise RuntimeError(f"the queue did not drain in {max_rounds} rounds")

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the slots busy until `stop` is set, then finish and record what is in flight.

        One coroutine does all the database work, in turn: record what has finished, claim
        for the free slots, wait. Deliveries run as tasks meanwhile, so the requests of one
        batch are on the wire while the previous batch is recorded.
        """
        tasks: set[asyncio.Task[None]] = set()
        log.info("delivery_worker_started", worker=self.worker_id)
        while not stop.is_set():
            await self._record_finished()
            claimed = await self._claim_for(len(tasks))
            for job in claimed:
                task = asyncio.create_task(self._deliver_into_batch(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if self._finished or (claimed and len(tasks) >= self.concurrency):
                continue  # record at once; or more may be due right now
            await self._wait(stop, tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._record_finished()
        log.info("delivery_worker_stopped", worker=self.worker_id)

    async def _claim_for(self, in_flight: int) -> list[JobRow]:
        free = self.concurrency - in_flight
        if free <= 0 or (in_flight and free < self._claim_batch):
            return []
        try:
            return await self.claim(utc_now(), free)
        except Exception:
            log.exception("delivery_claim_failed")
            return []

    async def _deliver_into_batch(self, job: JobRow) -> None:
        outcome = await self.deliver(job)
        self._finished.append((job, outcome))

    async def _record_finished(self) -> None:
        batch, self._finished = self._finished, []
        await self.record(batch)

    async def _wait(self, stop: asyncio.Event, tasks: set[asyncio.Task[None]]) -> None:
        """Until a delivery finishes (its lane's next row may now be due), the poll, or stop."""
        poll = self.settings.worker.poll_interval_s
        stopper = asyncio.ensure_future(stop.wait())
        waiters: set[asyncio.Future[Any]] = {stopper, *tasks}
        await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
        if self._owns_mqtt and self.mqtt is not None:
            await self.mqtt.aclose()


@asynccontextmanager
async def run_in_background(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[DeliveryWorker | None]:
    """The delivery loop and the scheduler as tasks of this process (`gridhive serve` unless
    --no-workers)."""
    if not settings.worker.in_process:
        yield None
        return
    worker = DeliveryWorker(sessionmaker, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="gridhive-delivery-worker")
    scheduler = asyncio.create_task(
        Scheduler(sessionmaker, settings).run(stop), name="gridhive-scheduler"
    )
    try:
        yield worker
    finally:
        stop.set()
        try:
            await asyncio.gather(task, scheduler)
        finally:
            await worker.aclose()
