"""Pooled SQLite connections keep the guarantees a fresh connection had: pragmas, writers that
queue instead of failing, no transaction left open for the next user."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gridhive.db import engine as db_engine
from gridhive.db import sqlite_big_write
from gridhive.db.bulk import insert_rows
from gridhive.db.engine import SQLITE_MMAP_BYTES, create_engine, is_sqlite


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(sa.text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INT)"))
        await connection.execute(sa.text("INSERT INTO counter VALUES (1, 0)"))
    await engine.dispose()
    return url


async def test_every_connection_has_the_pragmas(sqlite_file: str) -> None:
    engine = create_engine(sqlite_file, pool_size=2)
    try:
        for _ in range(4):  # new connections, then reused ones
            async with engine.connect() as connection:
                assert await connection.scalar(sa.text("PRAGMA foreign_keys")) == 1
                assert await connection.scalar(sa.text("PRAGMA journal_mode")) == "wal"
                assert await connection.scalar(sa.text("PRAGMA busy_timeout")) == 30000
                mmap = await connection.scalar(sa.text("PRAGMA mmap_size"))
                assert mmap == SQLITE_MMAP_BYTES
    finally:
        await engine.dispose()


async def _increment(engine: AsyncEngine) -> None:
    # Read, then write from what was read: only correct if writers take turns.
    async with engine.begin() as connection:
        n = await connection.scalar(sa.text("SELECT n FROM counter WHERE id = 1"))
        await asyncio.sleep(0)
        await connection.execute(sa.text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})


async def test_writers_of_two_engines_take_turns(sqlite_file: str) -> None:
    # Two engines on one file stand for two processes (the API and its worker).
    first, second = create_engine(sqlite_file, pool_size=3), create_engine(sqlite_file, pool_size=3)
    try:
        await asyncio.gather(*(_increment(e) for e in (first, second) for _ in range(15)))
        async with first.connect() as connection:
            assert await connection.scalar(sa.text("SELECT n FROM counter")) == 30
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_connection_given_back_mid_transaction_is_rolled_back(sqlite_file: str) -> None:
    engine = create_engine(sqlite_file, pool_size=1)
    other = create_engine(sqlite_file, pool_size=1)
    try:
        connection = await engine.connect()
        await connection.begin()
        await connection.execute(sa.text("UPDATE counter SET n = 99"))
        await connection.close()  # without commit
        # The write lock is gone (the other engine can write) and the change with it.
        async with other.begin() as writer:
            await writer.execute(sa.text("UPDATE counter SET n = n + 1"))
        async with engine.connect() as reader:
            assert await reader.scalar(sa.text("SELECT n FROM counter")) == 1
    finally:
        await engine.dispose()
        await other.dispose()


@pytest.mark.postgres_only
async def test_a_connection_closed_by_the_server_while_idle_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if is_sqlite(database_url):
        pytest.skip("needs PostgreSQL")
    engine, admin = create_engine(database_url, pool_size=1), create_engine(database_url)
    try:
        async with engine.connect() as connection:
            first_pid = await connection.scalar(sa.text("SELECT pg_backend_pid()"))
        # The server ends the pooled connection while it sits idle (a restart, a timeout).
        async with admin.connect() as other:
            await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)
        async with engine.connect() as connection:
            assert await connection.scalar(sa.text("SELECT pg_backend_pid()")) != first_pid
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_requests_in_flight_up_to_the_pool_size_reuse_connections(database_url: str) -> None:
    # A connection beyond the pool is closed when given back: on PostgreSQL each new one is a
    # server process started and ended, so a burst within the pool must not open any.
    engine = create_engine(database_url, pool_size=6)
    opened: list[object] = []
    sa.event.listen(engine.sync_engine, "connect", lambda connection, _record: opened.append(1))
    holding: list[int] = []
    everyone_holds, gate = asyncio.Event(), asyncio.Event()

    async def request(size: int) -> None:
        async with engine.connect() as connection:
            holding.append(1)
            if len(holding) == size:
                everyone_holds.set()
            await gate.wait()
            await connection.execute(sa.text("SELECT 1"))

    async def burst(size: int) -> None:
        holding.clear()
        everyone_holds.clear()
        gate.clear()
        tasks = [asyncio.create_task(request(size)) for _ in range(size)]
        await everyone_holds.wait()  # all hold a connection at once, then all give it back
        gate.set()
        await asyncio.gather(*tasks)

    try:
        for _ in range(3):
            await burst(6)
        assert len(opened) == 6
        await burst(9)  # three beyond the pool: opened, used and closed
        await burst(6)
        assert len(opened) == 9
    finally:
        await engine.dispose()


SETTINGS = ("cache_size", "wal_autocheckpoint")


class _Counter:
    __tablename__ = "counter"  # all `insert_rows` reads of a model


async def test_a_big_write_gives_its_settings_back_and_is_checkpointed_after(
    sqlite_file: str, tmp_path: Path
) -> None:
    # A big write raises the connection's cache limit and skips the auto-checkpoint of its
    # commit. Kept afterwards, every pooled connection that once stored a big event would hold
    # that memory and never checkpoint; and the rows must still reach the database file.
    engine = create_engine(sqlite_file, pool_size=1)
    try:
        async with engine.connect() as connection:
            before = [await connection.scalar(sa.text(f"PRAGMA {p}")) for p in SETTINGS]
        async with AsyncSession(engine) as session:
            rows = [(n, n) for n in range(2, 2 + 20_000)]
            await insert_rows(session, cast(Any, _Counter), ("id", "n"), rows)
            during = [await session.scalar(sa.text(f"PRAGMA {p}")) for p in SETTINGS]
            await session.commit()
        await sqlite_big_write.settle(engine)
        # The database file as it is now, without its WAL (closing the last connection would
        # checkpoint too, so the copy is taken while the pool holds one open).
        alone = tmp_path / "alone.db"
        shutil.copyfile(tmp_path / "pool.db", alone)
        async with engine.connect() as connection:  # the same pooled connection (pool of 1)
            after = [await connection.scalar(sa.text(f"PRAGMA {p}")) for p in SETTINGS]
    finally:
        await engine.dispose()
    assert during != before
    assert after == before
    with sqlite3.connect(alone) as copy:  # the rows are in the file: the checkpoint ran
        assert copy.execute("SELECT count(*) FROM counter").fetchone() == (20_001,)
