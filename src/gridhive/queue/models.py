"""Scheduled jobs: timed work as due-time rows, so a restart or a second worker changes nothing.

A job is identified by (`kind`, `key`): scheduling the same key twice is a no-op, and a job
is marked done in the same transaction as its handler's effects, so it runs once in effect
even when a worker dies mid-job (the lease runs out and another worker runs it again).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, UUIDPrimaryKey
from gridhive.kit.time import utc_now


class JobState(enum.StrEnum):
    PENDING = "pending"  # waiting for `due_at` (again, after a failed try)
    RUNNING = "running"  # leased by a scheduler until `lease_until`
    DONE = "done"
    DEAD = "dead"  # failed or never finished on every try of the retry schedule


# Rows a scheduler still has to run (the partial index below covers only these).
OPEN_STATES = (JobState.PENDING, JobState.RUNNING)
OPEN_SQL = sa.text("state IN ('pending', 'running')")
DEAD_SQL = sa.text("state = 'dead'")


class ScheduledJob(UUIDPrimaryKey, Base):
    __tablename__ = "scheduled_jobs"
    __table_args__ = (
        sa.UniqueConstraint("kind", "key"),
        # The claim looks for open rows by due time; done rows pile up and are never read.
        sa.Index(
            "ix_scheduled_jobs_due_open",
            "due_at",
            sqlite_where=OPEN_SQL,
            postgresql_where=OPEN_SQL,
        ),
        # The metrics count dead jobs by kind at every scrape; there are few, done rows many.
        sa.Index(
            "ix_scheduled_jobs_dead_kind",
            "kind",
            sqlite_where=DEAD_SQL,
            postgresql_where=DEAD_SQL,
        ),
    )

    kind: Mapped[str] = mapped_column(sa.String(64))
    # Unique per kind: e.g. "<event id>@<ISO time>" for an event tick, "<ISO time>" for a
    # periodic run.
    key: Mapped[str] = mapped_column(sa.String(255))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[JobState] = mapped_column(
        sa.Enum(
            JobState,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    lease_until: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(sa.String(64))
    attempts: Mapped[int] = mapped_column(default=0)  # failed tries so far
    # Runs begun, each counted in a transaction of its own before its handler runs: a run
    # whose process dies (SIGKILL, out of memory) records no failure, but stays counted here.
    runs_started: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    done_at: Mapped[datetime | None]
