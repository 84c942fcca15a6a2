"""Every query of the delivery fabric: routing at fan-out, the claim, the record, the log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.db.bulk import DriverValues, insert_rows, uuid4_hex_stream
from gridhive.kit.pagination import Page
from gridhive.webhooks import templates
from gridhive.webhooks.models import (
    OPEN_STATES,
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryMode,
    DeliverySettings,
    DeliveryState,
    EndpointStatus,
    OutboundMessage,
    PayloadTemplate,
    WebhookEndpoint,
)

# Endpoints that take new messages: a suspended one keeps collecting its backlog (delivered
# in order when it is re-enabled); a disabled one was turned off by its owner and gets nothing.
FAN_OUT_STATUSES = (EndpointStatus.ENABLED, EndpointStatus.SUSPENDED)


def is_open(state: sa.orm.QueryableAttribute[Any]) -> sa.ColumnElement[bool]:
    """`state IN ('pending', 'delivering', 'failed')` with literal values, so that both
    databases can match it to the partial index (a bound parameter would not prove it)."""
    return state.in_([sa.literal_column(f"'{s.value}'") for s in OPEN_STATES])


# Fan-out -------------------------------------------------------------------------------------


@dataclass
class Route:
    """Where an organisation's messages go."""

    mode: DeliveryMode = DeliveryMode.WEBHOOK
    # (endpoint id, subscribed event types or None for all)
    endpoints: list[tuple[uuid.UUID, frozenset[str] | None]] = field(default_factory=list)


async def routes_for(
    session: AsyncSession, org_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Route]:
    """Delivery mode and live endpoints of each organisation (one query)."""
    if not org_ids:
        return {}
    ids = list(org_ids)
    modes = await session.execute(
        sa.select(DeliverySettings.org_id, DeliverySettings.delivery_mode).where(
            DeliverySettings.org_id.in_(ids)
        )
    )
    routes = {org_id: Route() for org_id in ids}
    for org_id, mode in modes:
        routes[org_id].mode = mode
    endpoints = await session.execute(
        sa.select(WebhookEndpoint.org_id, WebhookEndpoint.id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.org_id.in_(ids), WebhookEndpoint.status.in_(FAN_OUT_STATUSES))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    for org_id, endpoint_id, event_types in endpoints:
        types = None if event_types is None else frozenset(event_types)
        routes[org_id].endpoints.append((endpoint_id, types))
    return routes


async def next_seq(session: AsyncSession) -> int:
    current = await session.scalar(sa.select(sa.func.max(Delivery.seq)))
    return int(current or 0) + 1


# Claim ---------------------------------------------------------------------------------------


def claimable(now: datetime) -> sa.ColumnElement[bool]:
    """Due, and waiting or abandoned (leased by a worker whose lease ran out)."""
    return sa.and_(
        Delivery.due_at <= now,
        sa.or_(
            Delivery.state.in_([DeliveryState.PENDING, DeliveryState.FAILED]),
            sa.and_(Delivery.state == DeliveryState.DELIVERING, Delivery.lease_until < now),
        ),
    )


@dataclass(frozen=True, slots=True)
class LaneRow:
    """One open row at the front of an endpoint's queue, with what the claim decides on."""

    id: uuid.UUID
    state: DeliveryState
    attempts: int
    due_at: datetime
    lease_until: datetime | None
    subject_id: str

    def claimable(self, now: datetime) -> bool:
        """The Python twin of `claimable(now)` for a row already read."""
        if self.due_at > now:
            return False
        if self.state is DeliveryState.DELIVERING:
            return self.lease_until is not None and self.lease_until < now
        return True

    def in_flight(self, now: datetime) -> bool:
        """Leased by a live worker (or delivered and not yet recorded)."""
        return not self.claimable(now) and self.state is DeliveryState.DELIVERING


async def enabled_endpoints(session: AsyncSession) -> list[tuple[uuid.UUID, bool]]:
    """Every enabled endpoint, and whether it is in a failing run."""
    rows = await session.execute(
        sa.select(WebhookEndpoint.id, WebhookEndpoint.failing_since.is_not(None)).where(
            WebhookEndpoint.status == EndpointStatus.ENABLED
        )
    )
    return [(endpoint_id, bool(failing)) for endpoint_id, failing in rows]


async def queue_front(
    session: AsyncSession, endpoint_id: uuid.UUID, *, lookahead: int
) -> list[LaneRow]:
    """The first `lookahead` open rows of an endpoint, in emission order, with their subjects.

    An index range scan of the partial lane index: its cost does not grow with the backlog or
    the delivered history.
    """
    rows = await session.execute(
        sa.select(
            Delivery.id,
            Delivery.state,
            Delivery.attempts,
            Delivery.due_at,
            Delivery.lease_until,
            OutboundMessage.subject_id,
        )
        .join(OutboundMessage, OutboundMessage.id == Delivery.message_id)
        .where(Delivery.endpoint_id == endpoint_id, is_open(Delivery.state))
        .order_by(Delivery.seq, Delivery.id)
        .limit(lookahead)
    )
    return [LaneRow(*row) for row in rows]


def claim_statement(ids: Sequence[uuid.UUID], now: datetime) -> sa.Select[uuid.UUID]:
    """The rows picked from the queue fronts, if still claimable (another worker may have
    taken them since they were read)."""
    return sa.select(Delivery.id).where(Delivery.id.in_(list(ids)), claimable(now))


def mqtt_candidates(now: datetime, *, limit: int) -> sa.Select[uuid.UUID]:
    """Claimable MQTT rows in emission order (the broker is ours: no per-lane hold)."""
    return (
        sa.select(Delivery.id)
        .where(
            Delivery.endpoint_id.is_(None),
            is_open(Delivery.state),
            Delivery.channel == Channel.MQTT,
            claimable(now),
        )
        .order_by(Delivery.seq, Delivery.id)
        .limit(limit)
    )


@dataclass(frozen=True, slots=True)
class JobRow:
    """What a worker needs to deliver one leased row, read in the claim's transaction."""

    delivery_id: uuid.UUID
    channel: Channel
    attempts: int
    endpoint_id: uuid.UUID | None
    url: str | None
    secrets: tuple[str, ...]
    org_id: uuid.UUID
    event_type: str
    object_type: str
    subject_id: str
    payload: dict[str, Any]
    message_created_at: datetime
    message_id: uuid.UUID


async def load_jobs(session: AsyncSession, ids: Sequence[uuid.UUID], now: datetime) -> list[JobRow]:
    """The claimed rows with their message and endpoint, as plain rows: nothing here needs ORM
    objects (three per row, tracked by the session until the claim commits)."""
    if not ids:
        return []
    rows = await session.execute(
        sa.select(
            Delivery.id,
            Delivery.channel,
            Delivery.attempts,
            Delivery.endpoint_id,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.previous_secret,
            WebhookEndpoint.previous_secret_expires_at,
            OutboundMessage.org_id,
            OutboundMessage.event_type,
            OutboundMessage.object_type,
            OutboundMessage.subject_id,
            OutboundMessage.payload,
            OutboundMessage.command_id,
            # As text (PostgreSQL's driver parses JSON): `templates.render` fills in the ids.
            sa.cast(PayloadTemplate.body, sa.Text).label("template"),
            OutboundMessage.created_at,
            OutboundMessage.id.label("message_id"),
        )
        .join(OutboundMessage, OutboundMessage.id == Delivery.message_id)
        .outerjoin(PayloadTemplate, templates.template_join())
        .outerjoin(WebhookEndpoint, WebhookEndpoint.id == Delivery.endpoint_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.seq, Delivery.id)
    )
    return [
        JobRow(
            delivery_id=row.id,
            channel=row.channel,
            attempts=row.attempts,
            endpoint_id=row.endpoint_id,
            url=row.url,
            secrets=_signing_secrets(
                row.secret, row.previous_secret, row.previous_secret_expires_at, now
            ),
            org_id=row.org_id,
            event_type=row.event_type,
            object_type=row.object_type,
            subject_id=row.subject_id,
            payload=_payload(row),
            message_created_at=row.created_at,
            message_id=row.message_id,
        )
        for row in rows
    ]


async def payload_of(session: AsyncSession, message: OutboundMessage) -> dict[str, Any]:
    """The event object `message` carries, whether stored whole or through its template."""
    if message.payload is not None:
        return message.payload
    body = await session.scalar(
        sa.select(sa.cast(PayloadTemplate.body, sa.Text)).where(
            PayloadTemplate.id == message.template_id
        )
    )
    if body is None:
        raise LookupError(f"message {message.id} has neither a payload nor a stored template")
    return _rendered(body, message.subject_id, message.command_id)


def _payload(row: Any) -> dict[str, Any]:
    if row.payload is not None:
        return cast(dict[str, Any], row.payload)
    return _rendered(row.template, row.subject_id, row.command_id)


def _rendered(template: str, subject_id: str, command_id: uuid.UUID | None) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(templates.render(template, subject_id, command_id)))


def _signing_secrets(
    secret: str | None, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The endpoint's secret, and the previous one while it is still honoured (rotation)."""
    if secret is None:  # MQTT: no endpoint
        return ()
    if previous and previous_expires_at is not None and previous_expires_at > now:
        return (secret, previous)
    return (secret,)


# Record --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt as the delivery log keeps it."""

    delivery_id: uuid.UUID
    attempt: int
    started_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int


_ATTEMPT_COLUMNS = (
    "id",
    "delivery_id",
    "attempt",
    "started_at",
    "status_code",
    "error",
    "latency_ms",
)


async def add_attempts(session: AsyncSession, attempts: Sequence[AttemptRow]) -> None:
    """Append attempts to the log in one bulk statement."""
    if not attempts:
        return
    values = DriverValues.of(session)
    ids = uuid4_hex_stream(batch=max(len(attempts), 1))
    rows = [
        (
            next(ids),
            a.delivery_id.hex,
            a.attempt,
            values.datetime(a.started_at),
            a.status_code,
            a.error[:500] if a.error else None,
            a.latency_ms,
        )
        for a in attempts
    ]
    await insert_rows(session, DeliveryAttempt, _ATTEMPT_COLUMNS, rows)


async def existing_deliveries(
    session: AsyncSession, delivery_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    if not delivery_ids:
        return set()
    found = await session.scalars(sa.select(Delivery.id).where(Delivery.id.in_(list(delivery_ids))))
    return set(found)


async def finish_attempts(
    session: AsyncSession,
    delivery_ids: Collection[uuid.UUID],
    *,
    worker: str,
    values: dict[str, Any],
) -> set[uuid.UUID]:
    """Apply one outcome to the rows this worker still holds; return those it held.

    One statement for any number of rows: a batch of successes shares its values.
    """
    if not delivery_ids:
        return set()
    result = await session.scalars(
        sa.update(Delivery)
        .where(
            Delivery.id.in_(list(delivery_ids)),
            Delivery.state == DeliveryState.DELIVERING,
            Delivery.leased_by == worker,
        )
        .values(lease_until=None, leased_by=None, attempts=Delivery.attempts + 1, **values)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return set(result)


async def mark_endpoint_healthy(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    await session.execute(
        sa.update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
        .execution_options(synchronize_session=False)
    )


async def mark_endpoint_failing(
    session: AsyncSession, endpoint_id: uuid.UUID, *, now: datetime, suspend_after: timedelta
) -> bool:
    """Start or continue the endpoint's failing run; suspend it when the run is long enough.

    Returns True when this call suspended it.
    """
    await session.execute(
        sa.update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        sa.update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.status == EndpointStatus.ENABLED,
            WebhookEndpoint.failing_since <= now - suspend_after,
        )
        .values(status=EndpointStatus.SUSPENDED, suspended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def release_lane(session: AsyncSession, endpoint_id: uuid.UUID, *, now: datetime) -> None:
    """Make an endpoint's waiting retries due now (it was re-enabled: deliver the backlog)."""
    await session.execute(
        sa.update(Delivery)
        .where(
            Delivery.endpoint_id == endpoint_id,
            is_open(Delivery.state),
            Delivery.state == DeliveryState.FAILED,
        )
        .values(due_at=now)
        .execution_options(synchronize_session=False)
    )


# The delivery log ----------------------------------------------------------------------------


async def search_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID,
    page: Page,
    states: Collection[DeliveryState] = (),
    event_type: str | None = None,
    message_id: uuid.UUID | None = None,
) -> list[tuple[Delivery, str]]:
    """An endpoint's deliveries with their event types, newest first."""
    statement = (
        sa.select(Delivery, OutboundMessage.event_type)
        .join(OutboundMessage, OutboundMessage.id == Delivery.message_id)
        .where(Delivery.endpoint_id == endpoint_id)
        .order_by(Delivery.seq.desc(), Delivery.id.desc())
        .offset(page.skip)
        .limit(page.limit)
    )
    if states:
        statement = statement.where(Delivery.state.in_(list(states)))
    if event_type is not None:
        statement = statement.where(OutboundMessage.event_type == event_type)
    if message_id is not None:
        statement = statement.where(Delivery.message_id == message_id)
    return [(d, t) for d, t in (await session.execute(statement))]


async def attempts_of(
    session: AsyncSession, delivery_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[DeliveryAttempt]]:
    found: dict[uuid.UUID, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return found
    rows = await session.scalars(
        sa.select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt, DeliveryAttempt.started_at)
    )
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


# Metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStats:
    by_state: list[tuple[str, str, str, int]]  # (channel, state, event type, count)
    due: int  # open rows due now
    oldest_due_at: datetime | None
    endpoints: list[tuple[str, int]]  # (status, count)


async def queue_stats(session: AsyncSession, now: datetime) -> QueueStats:
    by_state = await session.execute(
        sa.select(Delivery.channel, Delivery.state, OutboundMessage.event_type, sa.func.count())
        .join(OutboundMessage, OutboundMessage.id == Delivery.message_id)
        .group_by(Delivery.channel, Delivery.state, OutboundMessage.event_type)
    )
    due_row = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.min(Delivery.due_at)).where(
                is_open(Delivery.state), Delivery.due_at <= now
            )
        )
    ).one()
    endpoints = await session.execute(
        sa.select(WebhookEndpoint.status, sa.func.count()).group_by(WebhookEndpoint.status)
    )
    oldest = due_row[1]
    return QueueStats(
        by_state=[(str(c), str(s), t, n) for c, s, t, n in by_state],
        due=int(due_row[0]),
        oldest_due_at=oldest,
        endpoints=[(str(s), n) for s, n in endpoints],
    )
