"""Large changes to commands and `GET /v1/commands`: a poller's cursor never passes a change
that has yet to commit.

A command's `updated_at` is stamped when the change that writes it begins, and a dispatch to
100,000 batteries commits seconds later. If another change of the same OEM's commands (an
ack, an opt-out) committed in between, a poller that read it and goes on from the newest
`updated_at` it has seen (as Flip's clients do) would never see the dispatch's commands: they
become visible below its cursor.

- **PostgreSQL.** A large change (a dispatch, an event's cancellation) takes an exclusive
  transaction-level advisory lock before it takes its stamp (`hold_for_large_change`), and a
  poll takes the same lock shared before it reads (`wait_for_large_changes`). A poll that
  starts during a large change waits for it to commit and then sees its commands; one that
  began first delays the change's stamp until the poll is over, so everything the poll saw
  is older than that stamp. PostgreSQL releases the lock at commit or rollback, and when the
  connection dies, so nothing is left held. Large changes also take turns with each other.
- **SQLite.** Nothing to do: a write transaction holds the database's single write lock from
  its first statement (BEGIN IMMEDIATE, db/engine.py), before these changes take their stamp,
  so no other change commits between their stamp and their commit.

Not covered: small changes (an ack, a site's opt-out), where milliseconds pass between stamp
and commit and taking the lock would make each ack wait for a dispatch in progress; and the
scheduler's bulk updates (unacknowledged commands failed at an event's end, re-sends after the
ack deadline), stamped with the time of the scheduler's pass. The API docs still tell pollers
to re-read a short overlap.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# "gridhive" as a 64-bit integer: the key of the one advisory lock gridhive takes.
LARGE_CHANGE_LOCK = int.from_bytes(b"gridhive", "big")


async def hold_for_large_change(session: AsyncSession) -> None:
    """Before a large change takes its stamp: wait for polls and other large changes in
    progress, and make polls that start from now on wait for this transaction to end."""
    # On SQLite the first statement's BEGIN IMMEDIATE is the write lock: nothing more to take.
    await _lock(session, "pg_advisory_xact_lock")


async def wait_for_large_changes(session: AsyncSession) -> None:
    """Before a poll reads commands: wait for large changes in progress to end."""
    await _lock(session, "pg_advisory_xact_lock_shared")


async def _lock(session: AsyncSession, function: str) -> None:
    """The session's transaction begun, and on PostgreSQL `function` of the lock taken."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(text(f"SELECT {function}(:key)"), {"key": LARGE_CHANGE_LOCK})
