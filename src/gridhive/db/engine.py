"""Engine creation: SQLite pragmas and savepoint support, asyncpg pool for PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

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


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, poolclass=NullPool)
        _install_sqlite_pragmas(engine)
        return engine
    kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size, "echo": echo}
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and SQLAlchemy's pysqlite SAVEPOINT recipe.

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
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
