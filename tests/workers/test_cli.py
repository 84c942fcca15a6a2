"""`gridhive worker` and `gridhive admin set-delivery-mode`, run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.cli


def gridhive(*args: str, db: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridhive.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GRIDHIVE_DATABASE_URL": db, **env},
        timeout=120,
        check=False,
    )


def run_json(*args: str, db: str, **env: str) -> dict[str, object]:
    result = gridhive(*args, "--json", db=db, **env)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_the_operator_sets_a_delivery_mode(db: str) -> None:
    oem = run_json("admin", "create-org", "--kind", "oem", "--name", "Volt", db=db)
    settings = run_json(
        "admin", "set-delivery-mode", "--org", str(oem["id"]), "--mode", "polling", db=db
    )
    assert settings == {"delivery_mode": "polling", "mqtt_topic_prefix": f"gridhive/{oem['id']}/"}

    warned = gridhive(
        "admin", "set-delivery-mode", "--org", str(oem["id"]), "--mode", "mqtt", db=db
    )
    assert warned.returncode == 0
    assert "GRIDHIVE_MQTT__URL" in warned.stderr

    unknown = gridhive(
        "admin",
        "set-delivery-mode",
        "--org",
        "00000000-0000-0000-0000-000000000000",
        "--mode",
        "webhook",
        db=db,
    )
    assert unknown.returncode == 1
    assert "No organization" in unknown.stderr


def test_the_worker_delivers_until_sigterm(tmp_path: Path, db: str) -> None:
    """The endpoint refuses connections (port 1): the worker records the attempt, then stops
    cleanly on SIGTERM."""
    oem = run_json("admin", "create-org", "--kind", "oem", "--name", "Volt", db=db)
    path = tmp_path / "cli.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        org = str(oem["id"]).replace("-", "")
        connection.execute(
            sa.text(
                "INSERT INTO webhook_endpoints (id, org_id, url, secret, status, created_at,"
                " updated_at) VALUES (:id, :org, 'http://127.0.0.1:1/hook', :secret, 'enabled',"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ),
            {"id": "e" * 32, "org": org, "secret": "whsec_" + "A" * 44},
        )
        connection.execute(
            sa.text(
                "INSERT INTO outbound_messages (id, org_id, event_type, object_type, subject_id,"
                " payload, created_at) VALUES (:id, :org, 'command.created', 'command', 'b-1',"
                " '{\"object_type\": \"command\"}', '2026-01-01 00:00:00')"
            ),
            {"id": "a" * 32, "org": org},
        )
        connection.execute(
            sa.text(
                "INSERT INTO deliveries (id, message_id, endpoint_id, channel, state, seq,"
                " attempts, due_at, created_at) VALUES (:id, :message, :endpoint, 'webhook',"
                " 'pending', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ),
            {"id": "d" * 32, "message": "a" * 32, "endpoint": "e" * 32},
        )

    process = subprocess.Popen(
        [sys.executable, "-m", "gridhive.cli.main", "worker"],
        env={**os.environ, "GRIDHIVE_DATABASE_URL": db, "GRIDHIVE_WORKER__POLL_INTERVAL_S": ".1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        attempts = 0
        # Polls until the worker has tried once; the bound only keeps a broken worker from
        # hanging the suite (a slow machine needs well over 10 s to start a process).
        for _ in range(1200):
            with engine.connect() as connection:
                attempts = connection.execute(
                    sa.text("SELECT attempts FROM deliveries")
                ).scalar_one()
            if attempts:
                break
            time.sleep(0.1)
        assert attempts == 1
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    engine.dispose()
