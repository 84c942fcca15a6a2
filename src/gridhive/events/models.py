"""Events (the utility's object) and site events (what each site and its OEM see).

An event's status is not stored: it follows from its times and `canceled_at`, so reads never
disagree with the clock and no process has to flip it. The scheduler only announces changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey
from gridhive.kit.ids import new_uuid


class Event(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "events"

    program_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("programs.id", ondelete="RESTRICT"), index=True
    )
    utility_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    target_type: Mapped[str] = mapped_column(sa.String(16))
    target_ids: Mapped[list[Any]]
    actions: Mapped[list[Any]]
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    duration_s: Mapped[int]
    canceled_at: Mapped[datetime | None]
    # Totals and the human-readable summary of the plan (per-command reasons live on commands).
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SiteEvent(Timestamps, Base):
    """One targeted site's view of an event; its Flip `id` is the event's id."""

    __tablename__ = "site_events"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "site_pk"),
        sa.Index("ix_site_events_site_pk_event", "site_pk", "event_id"),
    )

    pk: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    # No foreign keys, to the event, the site or the organization: none of them is ever
    # deleted (an event is canceled and stays), the planner writes the site event in the
    # transaction that writes its event and reads its site, and at 10,000 sites per event
    # the per-row checks were most of PostgreSQL's time to insert them.
    event_id: Mapped[uuid.UUID]
    site_pk: Mapped[uuid.UUID]
    # Not indexed: no query reads site events by tenant (they are found by event or site).
    tenant_id: Mapped[uuid.UUID]
    # Denormalised OEM site id, for reads and webhooks without a join.
    site_id: Mapped[str] = mapped_column(sa.String(255))
    is_participating: Mapped[bool] = mapped_column(default=True)
    opted_out_at: Mapped[datetime | None]


class CommandExplanation(Base):
    """The explanation that alike commands of an event share, stored once.

    The planner gives commands with equal reasons (share, rating, cap, pre-charge outcome,
    offline) one `explanation_key`; an event over 100,000 batteries has a few thousand such
    kinds among 200,000 commands, and storing the text on each command was over half of its
    row. A command names its kind by `number` (`Command.explanation_number`) and keeps only what
    is its own in `Command.explanation` (`PER_COMMAND_REASONS`).
    """

    __tablename__ = "command_explanations"

    event_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    body: Mapped[dict[str, Any]]
