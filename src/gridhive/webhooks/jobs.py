"""The delivery job, as three steps the worker runs apart: claim, deliver, record.

`claim` and `record` each run in their own short unit of work; `deliver` runs with no
session at all, so a slow receiver never holds a database lock or a pooled connection.
"""

from __future__ import annotations

import enum
import json
import random
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiomqtt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.integrations import webhook as webhook_channel
from gridhive.integrations.mqtt import MqttPublisher, topic_for
from gridhive.kit.time import ensure_utc
from gridhive.queue import lease
from gridhive.queue.backoff import retry_delay
from gridhive.webhooks import repository
from gridhive.webhooks.models import Channel, Delivery, DeliveryState
from gridhive.webhooks.repository import AttemptRow, JobRow, LaneRow
from gridhive.webhooks.schemas import envelope


class Ordering(enum.StrEnum):
    """What a webhook endpoint's messages are ordered by (`GRIDHIVE_WORKER__ORDERING`)."""

    SUBJECT = "subject"  # per device or site: a subject's messages in emission order
    ENDPOINT = "endpoint"  # the whole endpoint strictly serial, one request at a time


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    limit: int
    window: int  # requests in flight per endpoint
    lease: timedelta
    worker: str
    channels: Collection[Channel] = (Channel.WEBHOOK, Channel.MQTT)
    ordering: Ordering = Ordering.SUBJECT

    @property
    def lookahead(self) -> int:
        # In flight rows sit at the front of the queue and a subject's later messages wait
        # behind its first: read enough of the front to still fill the window.
        return 4 * self.window if self.ordering is Ordering.SUBJECT else 1


def pick(
    front: Sequence[LaneRow],
    *,
    now: datetime,
    window: int,
    ordering: Ordering,
    failing: bool,
    limit: int | None = None,
) -> list[uuid.UUID]:
    """Which rows of an endpoint's queue front may go now.

    A lane (a subject, or the whole endpoint) has at most one message in flight and sends
    them in emission order: a row goes only when it is the first open row of its lane, so a
    later message never overtakes an earlier one, even one waiting for its retry. At most
    `window` rows of the endpoint are in flight, and at most `limit` are picked. While the
    endpoint is failing only the front row is tried: one request per retry step, not one
    per lane.
    """
    if not front:
        return []
    if failing:
        return [front[0].id] if front[0].claimable(now) else []
    free = window - sum(1 for row in front if row.in_flight(now))
    if limit is not None:
        free = min(free, limit)
    picked: list[uuid.UUID] = []
    seen: set[str | None] = set()
    for row in front:
        if len(picked) >= free:
            break
        lane = row.subject_id if ordering is Ordering.SUBJECT else None
        if lane in seen:
            continue
        seen.add(lane)
        if row.claimable(now):
            picked.append(row.id)
    return picked


async def claim(session: AsyncSession, *, now: datetime, options: ClaimOptions) -> list[JobRow]:
    """Lease up to `limit` due rows (webhook lanes first, then MQTT) and load them."""

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
        picked = await _pick_webhooks(session, now=now, options=options)
        if picked:
            ids += await take(repository.claim_statement(picked, now))
    if Channel.MQTT in options.channels and len(ids) < options.limit:
        ids += await take(repository.mqtt_candidates(now, limit=options.limit - len(ids)))
    return await repository.load_jobs(session, ids, now)


async def _pick_webhooks(
    session: AsyncSession, *, now: datetime, options: ClaimOptions
) -> list[uuid.UUID]:
    endpoints = await repository.enabled_endpoints(session)
    # A different endpoint goes first each time, so a deep backlog cannot starve the others.
    random.shuffle(endpoints)
    picked: list[uuid.UUID] = []
    for endpoint_id, failing in endpoints:
        if len(picked) >= options.limit:
            break
        front = await repository.queue_front(session, endpoint_id, lookahead=options.lookahead)
        picked += pick(
            front,
            now=now,
            window=options.window,
            ordering=options.ordering,
            failing=failing,
            limit=options.limit - len(picked),
        )
    return picked


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
    http: webhook_channel.WebhookClient,
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
    """Log one attempt; delivered, or failed with the next try scheduled, or dead."""
    [recorded] = await record_many(session, [(job, outcome)], now=now, worker=worker, policy=policy)
    return recorded


async def record_many(
    session: AsyncSession,
    results: Sequence[tuple[JobRow, Outcome]],
    *,
    now: datetime,
    worker: str,
    policy: RetryPolicy,
) -> list[Recorded]:
    """Log a batch of attempts in one transaction, in the order they finished.

    Successes share their values, so they are applied with one UPDATE per status code;
    each failure has its own retry time. A row whose lease this worker lost is left as the
    other worker recorded it (its attempt is still logged, unless the row is gone).
    """
    states: dict[uuid.UUID, DeliveryState] = {}
    owned: set[uuid.UUID] = set()
    successes: dict[int | None, list[uuid.UUID]] = {}
    for job, outcome in results:
        if outcome.ok:
            successes.setdefault(outcome.status_code, []).append(job.delivery_id)
            states[job.delivery_id] = DeliveryState.DELIVERED
            continue
        state, values = _failure(job, outcome, now=now, policy=policy)
        states[job.delivery_id] = state
        owned |= await repository.finish_attempts(
            session, [job.delivery_id], worker=worker, values=values
        )
    for status_code, ids in successes.items():
        values = {
            "state": DeliveryState.DELIVERED,
            "delivered_at": now,
            "last_status": status_code,
            "last_error": None,
        }
        owned |= await repository.finish_attempts(session, ids, worker=worker, values=values)
    await _log_attempts(session, results, owned)
    suspended = await _endpoint_health(session, results, now=now, policy=policy)
    return [
        Recorded(
            states[job.delivery_id] if job.delivery_id in owned else None,
            suspended=job.delivery_id in suspended,
        )
        for job, _ in results
    ]


def _failure(
    job: JobRow, outcome: Outcome, *, now: datetime, policy: RetryPolicy
) -> tuple[DeliveryState, dict[str, Any]]:
    delay = retry_delay(job.attempts + 1, jitter=policy.jitter, rng=policy.rng)
    state = DeliveryState.DEAD if delay is None else DeliveryState.FAILED
    values = {
        "state": state,
        "due_at": now + (delay or timedelta(0)),
        "last_status": outcome.status_code,
        "last_error": outcome.error,
    }
    return state, values


async def _log_attempts(
    session: AsyncSession,
    results: Sequence[tuple[JobRow, Outcome]],
    owned: set[uuid.UUID],
) -> None:
    # The attempt happened either way; log it unless the row is gone (endpoint deleted).
    lost = {job.delivery_id for job, _ in results} - owned
    kept = owned | await repository.existing_deliveries(session, lost)
    await repository.add_attempts(
        session,
        [
            AttemptRow(
                delivery_id=job.delivery_id,
                attempt=job.attempts + 1,
                started_at=outcome.started_at,
                status_code=outcome.status_code,
                error=outcome.error,
                latency_ms=outcome.latency_ms,
            )
            for job, outcome in results
            if job.delivery_id in kept
        ],
    )


async def _endpoint_health(
    session: AsyncSession,
    results: Sequence[tuple[JobRow, Outcome]],
    *,
    now: datetime,
    policy: RetryPolicy,
) -> set[uuid.UUID]:
    """Each endpoint's last outcome in the batch decides: healthy, or (still) failing.

    Returns the deliveries whose failure suspended their endpoint.
    """
    last: dict[uuid.UUID, tuple[JobRow, Outcome]] = {}
    for job, outcome in results:
        if job.endpoint_id is not None:
            last[job.endpoint_id] = (job, outcome)
    suspended: set[uuid.UUID] = set()
    for endpoint_id, (job, outcome) in last.items():
        if outcome.ok:
            await repository.mark_endpoint_healthy(session, endpoint_id)
        elif await repository.mark_endpoint_failing(
            session, endpoint_id, now=now, suspend_after=policy.suspend_after
        ):
            suspended.add(job.delivery_id)
    return suspended
