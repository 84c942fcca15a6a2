"""Retention: `prune` deletes intervals older than the retention period, batch by batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.config import Settings, TelemetrySettings
from gridhive.telemetry import service
from gridhive.telemetry.models import TelemetryInterval
from tests.telemetry.conftest import Fleet, store_energy

NOW = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)


async def starts(session: AsyncSession) -> list[datetime]:
    query = sa.select(TelemetryInterval.start_time).order_by(TelemetryInterval.start_time)
    return list((await session.scalars(query)).all())


class TestPrune:
    async def test_older_rows_go_in_batches_and_newer_stay(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        cutoff = NOW - timedelta(days=400)
        await store_energy(session, fleet.devices["b-1"], cutoff - timedelta(minutes=25), 7)
        await store_energy(session, fleet.devices["b-2"], cutoff - timedelta(days=30), 3)
        settings = TelemetrySettings(retention_days=400, prune_batch_size=2)
        # 5 + 3 rows start before the cutoff; b-1's last two start at and after it.
        assert await service.prune(session, NOW, settings) == 8
        assert await starts(session) == [cutoff, cutoff + timedelta(minutes=5)]
        assert await service.prune(session, NOW, settings) == 0

    async def test_a_step_deletes_one_batch_and_reruns_until_zero(
        self, session: AsyncSession, fleet: Fleet
    ) -> None:
        cutoff = NOW - timedelta(days=400)
        await store_energy(session, fleet.devices["b-1"], cutoff - timedelta(minutes=25), 7)
        settings = TelemetrySettings(retention_days=400, prune_batch_size=2)
        # 5 rows before the cutoff: the scheduled job sees 2, 2, 1, then 0 and stops.
        steps = [await service.prune_step(session, now=NOW, settings=settings) for _ in range(4)]
        assert steps == [2, 2, 1, 0]
        assert await starts(session) == [cutoff, cutoff + timedelta(minutes=5)]

    def test_retention_comes_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GRIDHIVE_TELEMETRY__RETENTION_DAYS", "30")
        assert Settings().telemetry.retention_days == 30
        monkeypatch.delenv("GRIDHIVE_TELEMETRY__RETENTION_DAYS")
        assert Settings().telemetry.retention_days == 400


@pytest.mark.cli
def test_the_cli_prunes_and_says_how_much(tmp_path: Path) -> None:
    env = {**os.environ, "GRIDHIVE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridhive.cli.main",
            "telemetry",
            "prune",
            "--retention-days",
            "30",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["deleted"] == 0
    before = datetime.fromisoformat(output["before"])
    assert timedelta(days=29) < datetime.now(UTC) - before < timedelta(days=31)
