"""`insert_rows`: every row stored once, with its values, whatever the batching."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.db.bulk import SQLITE_ROWS_PER_STATEMENT, DriverValues, insert_rows
from gridhive.webhooks.models import PayloadTemplate

BATCH = SQLITE_ROWS_PER_STATEMENT


@pytest.mark.parametrize("count", [1, BATCH - 1, BATCH, BATCH + 1, 3 * BATCH + 7])
async def test_rows_are_stored_once_each_with_their_values(
    session: AsyncSession, count: int
) -> None:
    created_at = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
    stamp = DriverValues.of(session).datetime(created_at)
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [(i.hex, f'{{"n":{n}}}', stamp) for n, i in enumerate(ids)]

    await insert_rows(session, PayloadTemplate, ("id", "body", "created_at"), rows)

    stored = (await session.execute(sa.select(PayloadTemplate))).scalars().all()
    assert sorted((t.id, t.body["n"]) for t in stored) == sorted((i, n) for n, i in enumerate(ids))
    assert {t.created_at for t in stored} == {created_at}
