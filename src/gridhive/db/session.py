"""Sessions. Only the owner of a unit of work commits: the request, a worker job or the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from gridhive.db.engine import READ_ONLY_OPTION


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def single_statement_unit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A unit of work that is one write statement (and reads after it, if it changed nothing),
    on a bare connection: no ORM session, for the hottest small requests.

    On PostgreSQL the statement commits by itself (autocommit): without the BEGIN and COMMIT
    round trips an acknowledgement costs the API and the database a fifth less
    (docs/benchmarks_whole_path.md). Nothing can be rolled back, so it is only for work that
    one statement does whole. On SQLite it is an ordinary transaction, committed at the end:
    there the cost is the hops to the driver's thread, not round trips.
    """
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection
        await connection.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work (use with `Depends(..., scope="function")`).

    Function scope closes it after the response object is built and before it is sent, so a
    failed commit becomes an error response instead of a success that was never stored.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        if request.method in ("GET", "HEAD"):
            await session.connection(execution_options={READ_ONLY_OPTION: True})
        request.state.db_session = session
        yield session
