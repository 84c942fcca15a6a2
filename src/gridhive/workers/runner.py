"""The delivery loop: claim due rows with a lease, deliver them concurrently, record each.

Every step is its own short unit of work and no session is open while a message is on the
wire. Tests drive the loop with `run_once(now)` / `drain(now)` and move the clock instead of
sleeping; `run(stop)` is the long-running form used by `gridhive worker` and `gridhive serve`.

Ordering (per endpoint): the claim only takes the head of each endpoint's lane (the first
`worker.endpoint_window` open rows, default 1) and nothing behind a row waiting for its retry.
So an endpoint receives its messages in emission order, a failing endpoint gets one request
per retry step rather than one per backlog row, and a later message never overtakes an
earlier one. The price is throughput per endpoint: one round trip at a time by default.
"""

from __future__ import annotations

import asyncio
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
from gridhive.integrations.webhook import make_client
from gridhive.kit.time import utc_now
from gridhive.webhooks import jobs
from gridhive.webhooks.models import Channel, DeliveryState
from gridhive.webhooks.repository import JobRow
from gridhive.workers import metrics

log = structlog.get_logger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class DeliveryWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
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
        self.http = http_client or make_client(
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
        )
        self.policy = jobs.RetryPolicy(
            jitter=config.retry_jitter,
            suspend_after=timedelta(seconds=config.suspend_after_s),
            rng=rng,
        )
        self._slots = asyncio.Semaphore(config.concurrency)

    # Steps -------------------------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int | None = None) -> list[JobRow]:
        options = self._claim_options
        if limit is not None:
            options = jobs.ClaimOptions(
                limit=limit,
                window=options.window,
                lease=options.lease,
                worker=options.worker,
                channels=options.channels,
            )
        async with unit_of_work(self.sessionmaker) as session:
            return await jobs.claim(session, now=now, options=options)

    async def process(self, job: JobRow, now: datetime | None = None) -> DeliveryState | None:
        """Deliver one claimed row (no session open), then record the outcome."""
        started = now or utc_now()
        async with self._slots:
            try:
                outcome = await jobs.deliver(job, now=started, http=self.http, mqtt=self.mqtt)
            except Exception as exc:  # a bug of ours: record it, do not loop on the lease
                log.exception("delivery_crashed", delivery_id=str(job.delivery_id))
                outcome = jobs.Outcome(started, None, f"internal error: {exc!r}"[:500], 0)
        recorded_at = now or utc_now()
        try:
            async with unit_of_work(self.sessionmaker) as session:
                recorded = await jobs.record(
                    session,
                    job,
                    outcome,
                    now=recorded_at,
                    worker=self.worker_id,
                    policy=self.policy,
                )
        except Exception:
            # The lease runs out and another pass delivers the row again (at-least-once).
            log.exception("delivery_record_failed", delivery_id=str(job.delivery_id))
            return None
        self._observe(job, outcome, recorded, recorded_at)
        return recorded.state

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
        await asyncio.gather(*(self.process(job, now) for job in claimed))
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
        """Keep every slot busy until `stop` is set, then finish what is in flight."""
        poll = self.settings.worker.poll_interval_s
        tasks: set[asyncio.Task[DeliveryState | None]] = set()
        log.info("delivery_worker_started", worker=self.worker_id)
        while not stop.is_set():
            free = self.concurrency - len(tasks)
            claimed: list[JobRow] = []
            if free > 0:
                try:
                    claimed = await self.claim(utc_now(), free)
                except Exception:
                    log.exception("delivery_claim_failed")
            for job in claimed:
                task = asyncio.create_task(self.process(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if claimed and len(claimed) == free:
                continue  # there may be more due right now
            # Wait for a slot to free (a lane's next row may now be due), the poll, or stop.
            stopper = asyncio.ensure_future(stop.wait())
            waiters: set[asyncio.Future[Any]] = {stopper, *tasks}
            await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("delivery_worker_stopped", worker=self.worker_id)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
        if self._owns_mqtt and self.mqtt is not None:
            await self.mqtt.aclose()


@asynccontextmanager
async def run_in_background(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[DeliveryWorker | None]:
    """The delivery loop as a task of this process (`gridhive serve` unless --no-workers)."""
    if not settings.worker.in_process:
        yield None
        return
    worker = DeliveryWorker(sessionmaker, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="gridhive-delivery-worker")
    try:
        yield worker
    finally:
        stop.set()
        try:
            await task
        finally:
            await worker.aclose()
