from __future__ import annotations

import json
import sqlite3
import uuid
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
from gridhive.webhooks.templates import COMMAND_PLACEHOLDER, SUBJECT_PLACEHOLDER


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


def test_downgrade_gives_templated_messages_their_payload_back(tmp_path: Path) -> None:
    # Before payload templates a message's payload was required: a downgrade must fill it in.
    path = tmp_path / "templates.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    org, template, message, command = (uuid.uuid4().hex for _ in range(4))
    body = f'{{"id":"{COMMAND_PLACEHOLDER}","device_id":"{SUBJECT_PLACEHOLDER}"}}'
    with sqlite3.connect(path) as db:
        now = "2026-12-06 05:00:00.000000"
        db.execute(
            "INSERT INTO organizations (id, kind, name, created_at, updated_at) "
            "VALUES (?, 'OEM', 'Acme', ?, ?)",
            (org, now, now),
        )
        db.execute(
            "INSERT INTO payload_templates (id, body, created_at) VALUES (?, ?, ?)",
            (template, body, now),
        )
        db.execute(
            "INSERT INTO outbound_messages (id, org_id, event_type, object_type, subject_id, "
            "payload, template_id, command_id, created_at) "
            "VALUES (?, ?, 'command.created', 'command', 'bat-1', NULL, ?, ?, ?)",
            (message, org, template, command, now),
        )
    downgrade(f"sqlite+aiosqlite:///{path}", "b7e1a0c20008")
    with sqlite3.connect(path) as db:
        (payload,) = db.execute("SELECT payload FROM outbound_messages").fetchone()
    assert json.loads(payload) == {"id": str(uuid.UUID(command)), "device_id": "bat-1"}
