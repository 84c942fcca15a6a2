"""Prometheus metrics: what this process measured, plus the queue as the database sees it.

Counters and histograms are observed by the delivery loop of this process. The gauges are read
from the database at scrape time, so any API process shows the whole queue whichever process
delivers it.
"""

from __future__ import annotations

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from gridhive.db.engine import READ_ONLY_OPTION
from gridhive.db.session import unit_of_work
from gridhive.kit.time import utc_now
from gridhive.queue import schedule as queue_schedule
from gridhive.webhooks import repository

log = structlog.get_logger(__name__)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600)

ATTEMPTS = Counter(
    "gridhive_delivery_attempts",
    "Delivery attempts made by this process",
    ["channel", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "gridhive_delivery_attempt_seconds",
    "Duration of one delivery attempt (HTTP round trip or MQTT publish to PUBACK)",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
DELIVERY_LAG = Histogram(
    "gridhive_delivery_lag_seconds",
    "From the message's creation to its successful delivery",
    ["channel"],
    buckets=_LAG_BUCKETS,
)
SUSPENSIONS = Counter(
    "gridhive_webhook_endpoint_suspensions", "Endpoints suspended after failing for 24 h"
)

DELIVERIES = Gauge(
    "gridhive_deliveries",
    "Deliveries by channel, state and event type",
    ["channel", "state", "event_type"],
)
QUEUE_DUE = Gauge("gridhive_delivery_queue_due", "Undelivered deliveries due now")
QUEUE_OLDEST_AGE = Gauge(
    "gridhive_delivery_queue_oldest_due_age_seconds",
    "How long the oldest due delivery has been waiting (0 when none)",
)
ENDPOINTS = Gauge("gridhive_webhook_endpoints", "Webhook endpoints by status", ["status"])
SCHEDULED_JOBS_RUN = Counter(
    "gridhive_scheduled_jobs_run",
    "Scheduled jobs run by this process, by kind and resulting state (done, pending, dead)",
    ["kind", "state"],
)
SCHEDULED_JOB_RUNS_ABANDONED = Counter(
    "gridhive_scheduled_job_runs_abandoned",
    "Runs of scheduled jobs found by this process to have begun and never finished (their"
    " scheduler died or outlived its lease), by kind",
    ["kind"],
)
SCHEDULED_DEAD = Gauge(
    "gridhive_scheduled_jobs_dead",
    "Scheduled jobs that failed or never finished on every try, not yet purged, by kind",
    ["kind"],
)
SCHEDULED_DUE = Gauge("gridhive_scheduled_jobs_due", "Scheduled jobs due now and not yet done")
SCHEDULED_OLDEST_AGE = Gauge(
    "gridhive_scheduled_jobs_oldest_due_age_seconds",
    "How long the oldest due scheduled job has been waiting (0 when none)",
)
DB_UP = Gauge("gridhive_metrics_database_up", "1 if the queue gauges could be read")


async def _read_queue(session: AsyncSession) -> None:
    now = utc_now()
    await session.connection(execution_options={READ_ONLY_OPTION: True})
    stats = await repository.queue_stats(session, now)
    DELIVERIES.clear()
    for channel, state, event_type, count in stats.by_state:
        DELIVERIES.labels(channel, state, event_type).set(count)
    QUEUE_DUE.set(stats.due)
    oldest = stats.oldest_due_at
    QUEUE_OLDEST_AGE.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    ENDPOINTS.clear()
    for status in ("enabled", "disabled", "suspended"):
        ENDPOINTS.labels(status).set(0)
    for status, count in stats.endpoints:
        ENDPOINTS.labels(status).set(count)
    due, oldest_job = await queue_schedule.due_stats(session, now)
    SCHEDULED_DUE.set(due)
    SCHEDULED_OLDEST_AGE.set(max((now - oldest_job).total_seconds(), 0.0) if oldest_job else 0.0)
    SCHEDULED_DEAD.clear()
    for kind, count in await queue_schedule.dead_by_kind(session):
        SCHEDULED_DEAD.labels(kind).set(count)


async def render(sessionmaker: async_sessionmaker[AsyncSession]) -> Response:
    """The `/metrics` answer in Prometheus' text format."""
    try:
        async with unit_of_work(sessionmaker) as session:
            await _read_queue(session)
        DB_UP.set(1)
    except Exception:  # a scrape must answer even when the database does not
        log.warning("metrics_queue_read_failed", exc_info=True)
        DB_UP.set(0)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
