"""Test harness: one migrated database per run, one rolled-back transaction per test.

SQLite by default; `GRIDHIVE_TEST_DATABASE_URL=postgresql+asyncpg://...` runs the same suite on
PostgreSQL (CI does both).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gridhive.app import create_app
from gridhive.config import Settings
from gridhive.db.engine import create_engine, is_sqlite, normalise_url
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import get_session
from tests.factories import Tenant, create_admin, create_tenant


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("GRIDHIVE_TEST_DATABASE_URL")
    if url:
        return normalise_url(url)
    path: Path = tmp_path_factory.mktemp("db") / "gridhive-test.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    if not is_sqlite(database_url):
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await upgrade_with_engine(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose commits are savepoints inside a transaction rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        db_session = AsyncSession(
            bind=connection,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
            autoflush=False,
        )
        try:
            yield db_session
        finally:
            await db_session.close()
            await transaction.rollback()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, run_migrations_on_start=False, log_json=False)


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine, session: AsyncSession) -> FastAPI:
    app = create_app(settings, engine=engine)

    async def test_session(request: Request) -> AsyncIterator[AsyncSession]:
        # Like the real unit of work, but on the test's connection. Expunging first makes each
        # request load fresh objects, as a new process would.
        session.expunge_all()
        request.state.db_session = session
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def admin(session: AsyncSession) -> Tenant:
    return await create_admin(session)


@pytest.fixture
async def utility(session: AsyncSession) -> Tenant:
    return await create_tenant(session, kind="utility", name="Acme Power")


@pytest.fixture
async def other_utility(session: AsyncSession) -> Tenant:
    return await create_tenant(session, kind="utility", name="Other Power")


@pytest.fixture
async def oem(session: AsyncSession) -> Tenant:
    return await create_tenant(session, kind="oem", name="Volt Batteries")


@pytest.fixture
async def other_oem(session: AsyncSession) -> Tenant:
    return await create_tenant(session, kind="oem", name="Other Batteries")
