from __future__ import annotations

import asyncio

import typer

from gridhive.cli.common import DatabaseUrlOption, settings_for
from gridhive.db.engine import create_engine
from gridhive.db.migrate import upgrade_with_engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Apply every pending migration."""

    async def main() -> None:
        engine = create_engine(settings_for(database_url).database_url)
        try:
            await upgrade_with_engine(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())
    typer.echo("database is up to date")
