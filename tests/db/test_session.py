"""Units of work: `single_statement_unit` stores its statement as an ordinary unit of work
does, and on PostgreSQL commits it without a transaction around it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gridhive.db.engine import create_engine, is_sqlite
from gridhive.db.session import make_sessionmaker, single_statement_unit, unit_of_work


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    async with engine.begin() as connection:
        await connection.execute(sa.text("DROP TABLE IF EXISTS scratch_counter"))
        await connection.execute(
            sa.text("CREATE TABLE scratch_counter (id INT PRIMARY KEY, n INT)")
        )
        await connection.execute(sa.text("INSERT INTO scratch_counter VALUES (1, 0)"))
    try:
        yield engine
    finally:
        async with engine.begin() as connection:
            await connection.execute(sa.text("DROP TABLE scratch_counter"))
        await engine.dispose()


async def _read(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(sa.text("SELECT n FROM scratch_counter")))


async def test_the_statement_is_stored(scratch: AsyncEngine) -> None:
    async with single_statement_unit(scratch) as connection:
        changed = await connection.execute(
            sa.text("UPDATE scratch_counter SET n = n + 1 WHERE id = 1 RETURNING n")
        )
        assert changed.scalar_one() == 1
    assert await _read(scratch) == 1
    async with unit_of_work(make_sessionmaker(scratch)) as session:  # an ordinary one again
        await session.execute(sa.text("UPDATE scratch_counter SET n = 5"))
        await session.rollback()
    assert await _read(scratch) == 1


async def test_on_postgresql_it_is_committed_as_soon_as_it_ran(
    scratch: AsyncEngine, database_url: str
) -> None:
    if is_sqlite(database_url):
        pytest.skip("SQLite runs it in an ordinary transaction")
    async with single_statement_unit(scratch) as connection:
        await connection.execute(sa.text("UPDATE scratch_counter SET n = 7"))
        assert await _read(scratch) == 7  # another connection sees it before the block ends
