"""Alembic environment: async engines, batch mode on SQLite, all gridhive models."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from gridhive.db import registry  # noqa: F401  (registers every table)
from gridhive.db.base import Base
from gridhive.db.engine import create_engine, is_sqlite

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    return str(url)


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=is_sqlite(_url()),
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
