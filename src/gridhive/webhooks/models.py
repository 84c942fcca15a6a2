"""Outbound messages and their delivery: endpoints, the delivery outbox and its attempt log.

A message (`outbound_messages`) is written in the transaction of the change that caused it,
whether or not anyone is subscribed. `fan_out` turns it, in that same transaction, into one
`deliveries` row per target (a webhook endpoint, or the tenant's MQTT topic); workers claim
those rows with a lease, deliver with nothing locked and record each try in
`delivery_attempts`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey
from gridhive.kit.time import utc_now


class OutboundMessage(UUIDPrimaryKey, Base):
    __tablename__ = "outbound_messages"
    # Messages are read through their deliveries or by their event, never by org and time.
    __table_args__ = (
        # An event's messages (its own and its commands'), for its timeline and ack deadlines.
        sa.Index(
            "ix_outbound_messages_event",
            "event_id",
            sqlite_where=sa.text("event_id IS NOT NULL"),
            postgresql_where=sa.text("event_id IS NOT NULL"),
        ),
    )

    # No foreign key: organizations are never deleted, and messages are written by code that
    # holds the organization; the check was a quarter of a bulk message insert on PostgreSQL.
    org_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str] = mapped_column(sa.String(32))
    # The OEM's device or site id (or our object id), for MQTT topics and log filters.
    subject_id: Mapped[str] = mapped_column(sa.String(255))
    # The event object as sent, or NULL when the message is one of thousands alike (an event's
    # commands and site events): then it is `template_id`'s body with this row's `command_id`
    # and `subject_id` filled in (webhooks/templates.py). Five times less to write per command.
    payload: Mapped[dict[str, Any] | None]
    # A plain column, not a foreign key: a check per row costs more than the message's other
    # writes together at 300,000 messages per event, and templates are never deleted.
    template_id: Mapped[uuid.UUID | None]
    # What the message is about, when it is about a demand-response event or one of its
    # commands. Plain columns, not foreign keys: the webhooks layer sits below events, and a
    # message outlives nothing it refers to (both are kept as long as the event).
    event_id: Mapped[uuid.UUID | None]
    command_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class PayloadTemplate(UUIDPrimaryKey, Base):
    """The event object shared by many messages, with placeholders for what differs.

    `body` is JSON text in which `templates.SUBJECT_PLACEHOLDER` stands for each message's
    `subject_id` and `templates.COMMAND_PLACEHOLDER` for its `command_id`; nothing else varies.
    Written once per shape of command (a handful per event) instead of once per message.
    """

    __tablename__ = "payload_templates"

    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class EndpointStatus(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"  # by the tenant: holds its backlog, gets no new messages
    SUSPENDED = "suspended"  # by us, after 24 h of failures: holds and grows its backlog


class DeliveryMode(enum.StrEnum):
    WEBHOOK = "webhook"
    MQTT = "mqtt"
    POLLING = "polling"


class Channel(enum.StrEnum):
    WEBHOOK = "webhook"
    MQTT = "mqtt"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # never tried
    DELIVERING = "delivering"  # leased by a worker until `lease_until`
    DELIVERED = "delivered"
    FAILED = "failed"  # tried and failed; tried again at `due_at`
    DEAD = "dead"  # the retry schedule is used up


# Rows a worker still has to deliver (the partial indexes below cover only these).
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.DELIVERING, DeliveryState.FAILED)
_OPEN_SQL = sa.text("state IN ('pending', 'delivering', 'failed')")


def _enum(cls: type[enum.StrEnum]) -> sa.Enum:
    # Store the lowercase values (not the member names) so raw SQL and partial indexes read well.
    return sa.Enum(
        cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


class WebhookEndpoint(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "webhook_endpoints"

    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(sa.String(2048))
    # Kept in clear: signing needs it. `whsec_<base64>` as Standard Webhooks defines it.
    secret: Mapped[str] = mapped_column(sa.String(128))
    # After a rotation the old secret also signs until it expires, so receivers can switch.
    previous_secret: Mapped[str | None] = mapped_column(sa.String(128))
    previous_secret_expires_at: Mapped[datetime | None]
    # None: every event type, including types added later.
    event_types: Mapped[list[Any] | None]
    status: Mapped[EndpointStatus] = mapped_column(
        _enum(EndpointStatus), default=EndpointStatus.ENABLED
    )
    # Start of the current run of failed attempts (None after any success).
    failing_since: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]


class DeliverySettings(Timestamps, Base):
    """How a tenant wants its messages (no row: by webhook)."""

    __tablename__ = "delivery_settings"

    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    delivery_mode: Mapped[DeliveryMode] = mapped_column(
        _enum(DeliveryMode), default=DeliveryMode.WEBHOOK
    )


class Delivery(Base):
    """One message to one target. `id` is the `webhook-id`: stable across retries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # A lane's open rows in order: each endpoint's lane, and the MQTT rows (endpoint NULL).
        # Partial, so that finding a lane's head never walks the delivered history.
        sa.Index(
            "ix_deliveries_lane_open",
            "endpoint_id",
            "seq",
            "id",
            sqlite_where=_OPEN_SQL,
            postgresql_where=_OPEN_SQL,
        ),
        # The delivery log of an endpoint, newest first.
        sa.Index("ix_deliveries_endpoint_seq", "endpoint_id", "seq"),
        # The next sequence number is max(seq) + 1.
        sa.Index("ix_deliveries_seq", "seq"),
        # A message's deliveries, latest first (ack deadlines, timelines). With `seq` in the
        # index, "the latest delivery of this message" is one index probe; with message_id
        # alone PostgreSQL preferred walking ix_deliveries_seq backwards for every message.
        sa.Index("ix_deliveries_message_seq", "message_id", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Plain columns, not foreign keys: a dispatch to a webhook tenant writes a delivery per
    # message, 30,000 for an event over 10,000 batteries, and the two per-row checks (on
    # PostgreSQL a lookup and a lock of the parent row) cost more than the rows themselves.
    # Messages are never deleted, and deleting an endpoint deletes its deliveries
    # (`endpoints.delete_endpoint`).
    message_id: Mapped[uuid.UUID]
    # None for MQTT: the topic follows from the message.
    endpoint_id: Mapped[uuid.UUID | None]
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState))
    # Emission order: increasing within a transaction and after every committed row it could
    # have seen. Ties (concurrent transactions on PostgreSQL) are broken by id.
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(sa.String(64))
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    delivered_at: Mapped[datetime | None]


class DeliveryAttempt(UUIDPrimaryKey, Base):
    __tablename__ = "delivery_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int]
    started_at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.String(500))
    latency_ms: Mapped[int]
