"""`gridhive worker`: delivery loop and scheduler, for scale-out next to `serve --no-workers`."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from gridhive.cli.common import DatabaseUrlOption, run_long_lived, settings_for
from gridhive.db.engine import create_engine
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker
from gridhive.kit.logging import configure_logging


def worker(
    database_url: DatabaseUrlOption = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Deliveries in flight at once (default 64)")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics of this process on this port")
    ] = None,
) -> None:
    """Deliver webhooks and MQTT messages and run scheduled jobs until stopped (SIGINT/SIGTERM
    finish what is in flight). Run as many as you like against one PostgreSQL database."""
    from gridhive.workers.runner import DeliveryWorker
    from gridhive.workers.scheduler import Scheduler

    settings = settings_for(database_url)
    if concurrency is not None:
        settings.worker.concurrency = concurrency
    configure_logging(json=settings.log_json, level=settings.log_level)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)

    async def main() -> None:
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        try:
            if settings.run_migrations_on_start:
                await upgrade_with_engine(engine)
            sessionmaker = make_sessionmaker(engine)
            delivery = DeliveryWorker(sessionmaker, settings)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            scheduler = Scheduler(sessionmaker, settings)
            try:
                await asyncio.gather(delivery.run(stop), scheduler.run(stop))
            finally:
                await delivery.aclose()
        finally:
            await engine.dispose()

    run_long_lived(main())
