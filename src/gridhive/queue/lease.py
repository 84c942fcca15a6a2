"""Claiming queue rows with a lease: one conditional UPDATE that works on both databases.

A row is claimable when it is due and either waiting or leased by a worker whose lease has
run out (the worker crashed or hung): the row is simply delivered again (at-least-once).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def claim(
    session: AsyncSession,
    model: Any,
    candidates: sa.Select[uuid.UUID],
    *,
    claimable: sa.ColumnElement[bool],
    leased_state: object,
    now: datetime,
    lease: timedelta,
    worker: str,
) -> list[uuid.UUID]:
    """Lease the rows of `model` whose ids `candidates` selects; return the ids leased.

    `model` has `id`, `state`, `lease_until` and `leased_by` columns. `claimable` is repeated
    on the UPDATE so that a row another worker leased between our SELECT and our UPDATE is left
    alone (PostgreSQL re-checks it on the new row version). On PostgreSQL the candidates are
    also locked with SKIP LOCKED, so concurrent workers take different rows instead of queueing
    on the same ones; on SQLite writers are serialised anyway and it compiles to nothing.
    """
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=model)
    # On the table, not the mapped class: no ORM bulk-update machinery for a statement that
    # touches no loaded object (synchronize_session=False said as much).
    table = model.__table__
    statement = (
        sa.update(table)
        .where(table.c.id.in_(candidates), claimable)
        .values(state=leased_state, lease_until=now + lease, leased_by=worker)
        .returning(table.c.id)
    )
    return list((await session.scalars(statement)).all())
