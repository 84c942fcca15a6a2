"""`gridhive`: serve the API, manage the database and the tenants."""

from __future__ import annotations

from typing import Annotated

import typer

from gridhive.cli import admin, db, telemetry
from gridhive.cli import worker as worker_cli
from gridhive.cli.common import DatabaseUrlOption, settings_for
from gridhive.cli.demo import demo
from gridhive.cli.simulate import simulate

app = typer.Typer(help="gridhive: a virtual power plant platform.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(telemetry.app, name="telemetry")
app.command("worker")(worker_cli.worker)
app.command("simulate")(simulate)
app.command("demo")(demo)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    database_url: DatabaseUrlOption = None,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Do not deliver here (run `gridhive worker`)")
    ] = False,
) -> None:
    """Run the API and the delivery workers (migrating the database first)."""
    import uvicorn

    from gridhive.app import create_app
    from gridhive.kit.logging import configure_logging

    settings = settings_for(database_url)
    if no_workers:
        settings.worker.in_process = False
    configure_logging(json=settings.log_json, level=settings.log_level)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    app()
