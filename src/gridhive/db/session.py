"""Sessions. Only the owner of a unit of work commits: the request, a worker job or the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

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
