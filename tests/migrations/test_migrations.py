from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gridhive.db import registry  # noqa: F401
from gridhive.db.base import Base
from gridhive.db.engine import create_engine
from gridhive.db.migrate import downgrade, upgrade


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    downgrade(url, "base")
    upgrade(url)


@pytest.mark.usefixtures("engine")
async def test_a_fresh_engine_sees_the_schema(database_url: str) -> None:
    fresh = create_engine(database_url)
    try:
        async with fresh.connect() as connection:
            tables = await connection.run_sync(lambda c: set(c.dialect.get_table_names(c)))
    finally:
        await fresh.dispose()
    assert {"organizations", "sites", "devices", "programs", "enrollments"} <= tables
