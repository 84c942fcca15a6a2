"""`gridhive`: serve the API, manage the database and the tenants."""

from __future__ import annotations

from typing import Annotated

import typer

from gridhive.cli import admin, db
from gridhive.cli.common import DatabaseUrlOption, settings_for

app = typer.Typer(help="gridhive: a virtual power plant platform.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Run the API (migrating the database first)."""
    import uvicorn

    from gridhive.app import create_app
    from gridhive.kit.logging import configure_logging

    settings = settings_for(database_url)
    configure_logging(json=settings.log_json, level=settings.log_level)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    app()
