"""The delivery job, as three steps the worker runs apart: claim, deliver, record.

`claim` and `record` each run in their own short unit of work; `deliver` runs with no
session at all, so a slow receiver never holds a database lock or a pooled connection.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiomqtt
import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.integrations import webhook as webhook_channel
from gridhive.integrations.mqtt import MqttPublisher, topic_for
from gridhive.kit.time import ensure_utc
from gridhive.queue import lease
from gridhive.queue.backoff import retry_delay
from gridhive.webhooks import repository
from gridhive.webhooks.models import Channel, Delivery, DeliveryState
from gridhive.webhooks.repository import JobRow
from gridhive.webhooks.schemas import envelope


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    limit: int
    window: int  # deliveries in flight per endpoint
    lease: timedelta
    worker: str
    channels: Collection[Channel] = (Channel.WEBHOOK, Channel.MQTT)


async def claim(session: AsyncSession, *, now: datetime, options: ClaimOptions) -> list[JobRow]:
    """Lease up to `limit` due rows (webhook lane heads first, then MQTT) and load them."""

    async def take(candidates: sa.Select[uuid.UUID]) -> list[uuid.UUID]:
        return await lease.claim(
            session,
            Delivery,
            candidates,
            claimable=repository.claimable(now),
            leased_state=DeliveryState.DELIVERING,
            now=now,
            lease=options.lease,
            worker=options.worker,
        )

    ids: list[uuid.UUID] = []
    if Channel.WEBHOOK in options.channels:
        heads = await repository.lane_heads(session, window=options.window)
        if heads:
            ids += await take(
                repository.webhook_candidates(
                    heads, now, limit=options.limit, window=options.window
                )
            )
    if Channel.MQTT in options.channels and len(ids) < options.limit:
        ids += await take(repository.mqtt_candidates(now, limit=options.limit - len(ids)))
    return await repository.load_jobs(session, ids, now)


# Deliver -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    started_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None


def _timestamp(value: datetime) -> str:
    # Flip's envelope shows milliseconds: 2025-01-15T12:00:00.000Z
    value = ensure_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def body_of(job: JobRow) -> str:
    """The envelope as sent (and signed): compact JSON. MQTT adds the `webhook_id`, since a
    subscriber has no headers (it is also an MQTT 5 user property)."""
    data = envelope(job.event_type, job.payload, _timestamp(job.message_created_at))
    if job.channel is Channel.MQTT:
        data["webhook_id"] = str(job.delivery_id)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def deliver(
    job: JobRow,
    *,
    now: datetime,
    http: httpx.AsyncClient,
    mqtt: MqttPublisher | None,
) -> Outcome:
    """One attempt; never raises for a receiver's or broker's failure."""
    body = body_of(job)
    if job.channel is Channel.WEBHOOK:
        assert job.url is not None
        result = await webhook_channel.send(
            http,
            url=job.url,
            msg_id=str(job.delivery_id),
            timestamp=now,
            body=body,
            secrets=job.secrets,
        )
        return Outcome(now, result.status_code, result.error, result.latency_ms)
    if mqtt is None:
        return Outcome(now, None, "no MQTT broker configured (GRIDHIVE_MQTT__URL)", 0)
    started = time.perf_counter()
    try:
        await mqtt.publish(
            topic_for(str(job.org_id), job.object_type, job.subject_id),
            body.encode(),
            message_id=str(job.delivery_id),
        )
        error = None
    except (aiomqtt.MqttError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Outcome(now, None, error, latency_ms)


# Record --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    state: DeliveryState | None  # None: the lease was lost, another worker owns the row now
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    jitter: float = 0.1
    suspend_after: timedelta = timedelta(hours=24)
    rng: Callable[[], float] = random.random


async def record(
    session: AsyncSession,
    job: JobRow,
    outcome: Outcome,
    *,
    now: datetime,
    worker: str,
    policy: RetryPolicy,
) -> Recorded:
    """Log the attempt; delivered, or failed with the next try scheduled, or dead."""
    attempt = job.attempts + 1
    common = {"last_status": outcome.status_code, "last_error": outcome.error}
    if outcome.ok:
        state = DeliveryState.DELIVERED
        values = {"state": state, "delivered_at": now, **common}
    else:
        delay = retry_delay(attempt, jitter=policy.jitter, rng=policy.rng)
        state = DeliveryState.DEAD if delay is None else DeliveryState.FAILED
        values = {"state": state, "due_at": now + (delay or timedelta(0)), **common}
    owned = await repository.finish_attempt(
        session, delivery_id=job.delivery_id, worker=worker, values=values
    )
    # The attempt happened either way; log it unless the row is gone (endpoint deleted).
    if owned or await repository.delivery_exists(session, job.delivery_id):
        await repository.add_attempt(
            session,
            delivery_id=job.delivery_id,
            attempt=attempt,
            started_at=outcome.started_at,
            status_code=outcome.status_code,
            error=outcome.error,
            latency_ms=outcome.latency_ms,
        )
    if not owned:
        return Recorded(None)
    if job.endpoint_id is None:
        return Recorded(state)
    if outcome.ok:
        await repository.mark_endpoint_healthy(session, job.endpoint_id)
        return Recorded(state)
    suspended = await repository.mark_endpoint_failing(
        session, job.endpoint_id, now=now, suspend_after=policy.suspend_after
    )
    return Recorded(state, suspended=suspended)
