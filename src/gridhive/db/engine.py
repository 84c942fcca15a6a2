"""Engine creation: connection pools; SQLite pragmas and savepoint support."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gridhive.db import sqlite_big_write

# Execution option for work that only reads: on SQLite it begins a deferred transaction, which
# in WAL mode reads a snapshot without waiting for the writer.
READ_ONLY_OPTION = "gridhive_read_only"


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}.get(
        parsed.drivername
    )
    if parsed.drivername == "sqlite":
        driver = "sqlite+aiosqlite"
    if driver:
        parsed = parsed.set(drivername=driver)
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> AsyncEngine:
    """An engine keeping `pool_size` connections open, and opening up to half as many again
    for bursts.

    A connection beyond `pool_size` is closed as soon as it is given back, so a process that
    keeps more requests in flight than its pool opens and closes one per request; on PostgreSQL
    each is a new server process, measured at about 1 ms of the server's CPU per request (a
    device maker acknowledging 16 commands at a time against a pool of 10 cost a third of the
    whole path's throughput; docs/benchmarks_whole_path.md). Size the pool to the requests a
    process keeps in flight, within the server's `max_connections` over all processes.

    SQLite is pooled too: a new aiosqlite connection is a thread start plus four pragmas, which
    used to be paid on every request. Pooling changes nothing for writers: they still queue on
    the database file's lock (BEGIN IMMEDIATE and busy_timeout, below), in this process and
    across processes.
    """
    url = normalise_url(url)
    overflow = max(1, pool_size // 2)
    kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": overflow, "echo": echo}
    if is_sqlite(url):
        # Reset on return only when needed (_install_sqlite_pragmas): an unconditional
        # rollback is one more trip to the connection's thread per request.
        engine = create_async_engine(url, pool_reset_on_return=None, **kwargs)
        _install_sqlite_pragmas(engine)
        return engine
    engine = create_async_engine(url, **kwargs)
    _install_idle_ping(engine)
    return engine


# A pooled connection that sat unused for longer than this is tested before it is handed out:
# the server may have closed it meanwhile (restart, idle timeout, failover). One in steady use
# is not: SQLAlchemy's pool_pre_ping tests every checkout, which on asyncpg is three round trips
# (BEGIN, a ping, ROLLBACK), as much as the whole work of a small request. A connection that
# breaks while busy fails that one request, and SQLAlchemy then replaces the whole pool.
PING_AFTER_IDLE_S = 10.0
_IDLE_SINCE = "gridhive_idle_since"


def _install_idle_ping(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises for a dead connection
            # The pool drops this connection and checks out another (or a new one).
            raise DisconnectionError("pooled connection lost while idle") from exc


SQLITE_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: pages stay the OS's


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, memory-mapped reads, and SQLAlchemy's pysqlite
    SAVEPOINT recipe.

    The driver's own transaction handling breaks SAVEPOINT (a `commit()` inside a nested test
    transaction survives the outer rollback), so we turn it off and emit BEGIN ourselves. BEGIN
    IMMEDIATE takes the write lock up front: two writers then queue on busy_timeout instead of
    one failing with "database is locked" when it upgrades a read lock.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Reads of the database file through memory-mapped I/O: a page not in the connection's
        # own small cache (2 MB, and each pooled connection has one) comes from the OS's page
        # cache, shared by all of them, without a read call and a copy. An event's random-id
        # index inserts read thousands of such pages; with it, an event over 10,000 batteries
        # took about a tenth less time (bench/plan_event.py, four pairs of runs alternating).
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    @event.listens_for(sync_engine, "reset")
    def _reset_on_return(dbapi_connection: Any, record: Any, state: Any) -> None:
        # A connection given back inside a transaction (not committed or rolled back by its
        # user) must not keep the write lock or hand its changes to the next user.
        if not state.asyncio_safe:
            return  # collected outside the event loop: nothing can be awaited (as SQLAlchemy)
        if record is None or record.driver_connection.in_transaction:
            dbapi_connection.rollback()
        # Nor a big write's settings; its WAL is checkpointed now that it has answered.
        if record is not None and sqlite_big_write.restore(dbapi_connection, record.info):
            sqlite_big_write.checkpoint_soon(engine)
