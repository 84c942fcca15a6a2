"""`gridhive telemetry`: retention of interval telemetry."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer

from gridhive.cli.common import DatabaseUrlOption, JsonOption, emit, settings_for
from gridhive.db.engine import create_engine
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker, unit_of_work
from gridhive.kit.time import isoformat_z, utc_now
from gridhive.telemetry import service

app = typer.Typer(help="Telemetry storage.", no_args_is_help=True)


@app.command()
def prune(
    database_url: DatabaseUrlOption = None,
    retention_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Keep this many days (default GRIDHIVE_TELEMETRY__RETENTION_DAYS)"
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per transaction")] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete interval telemetry older than the retention period, one transaction per batch
    (safe to run while the API ingests; safe to interrupt)."""
    settings = settings_for(database_url)
    if retention_days is not None:
        settings.telemetry.retention_days = retention_days
    if batch_size is not None:
        settings.telemetry.prune_batch_size = batch_size
    cutoff = service.prune_cutoff(utc_now(), settings.telemetry)
    deleted = asyncio.run(
        _prune(settings.database_url, cutoff, settings.telemetry.prune_batch_size)
    )
    emit({"deleted": deleted, "before": isoformat_z(cutoff)}, as_json=as_json)


async def _prune(database_url: str, cutoff: datetime, batch_size: int) -> int:
    engine = create_engine(database_url)
    try:
        await upgrade_with_engine(engine)
        sessionmaker = make_sessionmaker(engine)
        total = 0
        while True:
            async with unit_of_work(sessionmaker) as session:
                deleted = await service.prune_batch(session, cutoff, batch_size)
            total += deleted
            if deleted < batch_size:
                return total
    finally:
        await engine.dispose()
