"""End-to-end runs across real processes: `gridhive serve --no-workers`, `gridhive worker` and
one `gridhive simulate` per delivery mode, talking over sockets only.

The database follows the suite's: SQLite by default, PostgreSQL when
`GRIDHIVE_TEST_DATABASE_URL` names one (then in a database of their own, `<name>_e2e`, made
afresh per run; `GRIDHIVE_E2E_DATABASE_URL` overrides it). MQTT needs Mosquitto at
`GRIDHIVE_TEST_MQTT_URL` (default mqtt://127.0.0.1:1883). A missing service skips what needs
it, with the reason, unless GRIDHIVE_REQUIRE_SERVICES=1 (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gridhive.db.engine import create_engine, is_sqlite, normalise_url

MQTT_URL = os.environ.get("GRIDHIVE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def missing_service(reason: str) -> None:
    if os.environ.get("GRIDHIVE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def broker_reachable() -> str | None:
    """None when the broker answers, else why not."""
    address = make_url(MQTT_URL.replace("mqtt://", "mqtt+x://"))
    try:
        socket.create_connection((address.host, address.port or 1883), timeout=1).close()
    except OSError as exc:
        return f"MQTT broker not reachable at {MQTT_URL} ({exc}); start it with .ci/services.sh"
    return None


async def _recreate_postgres_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            name = parsed.database
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()


def e2e_database_url(workdir: Path) -> str:
    suite_url = os.environ.get("GRIDHIVE_TEST_DATABASE_URL")
    if not suite_url or is_sqlite(normalise_url(suite_url)):
        return f"sqlite+aiosqlite:///{workdir / 'e2e.db'}"
    parsed = make_url(normalise_url(suite_url))
    default = parsed.set(database=f"{parsed.database}_e2e").render_as_string(hide_password=False)
    url = normalise_url(os.environ.get("GRIDHIVE_E2E_DATABASE_URL", default))
    try:
        asyncio.run(_recreate_postgres_database(url))
    except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        missing_service(f"PostgreSQL not reachable for the end-to-end runs ({exc})")
    return url
