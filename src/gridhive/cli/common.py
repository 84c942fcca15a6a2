"""Shared CLI plumbing: settings from options, a unit of work, JSON or readable output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.config import Settings
from gridhive.db import sqlite_big_write
from gridhive.db.engine import create_engine
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker, unit_of_work
from gridhive.errors import GridhiveError

T = TypeVar("T")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="GRIDHIVE_DATABASE_URL", help="SQLAlchemy URL"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def settings_for(database_url: str | None) -> Settings:
    return Settings(database_url=database_url) if database_url else Settings()


def run_in_session(database_url: str | None, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, then run `work` in one unit of work; domain errors exit 1 with their message."""

    async def main() -> T:
        engine = create_engine(settings_for(database_url).database_url)
        try:
            await upgrade_with_engine(engine)
            async with unit_of_work(make_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await sqlite_big_write.settle(engine)
            await engine.dispose()

    try:
        return asyncio.run(main())
    except GridhiveError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for field_error in exc.errors:
            typer.echo(f"  {field_error.path}: {field_error.message}", err=True)
        raise typer.Exit(1) from exc


def run_long_lived(main: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived process's main coroutine on uvloop when it is installed.

    uvloop comes with `uvicorn[standard]` (not on Windows) and is what `gridhive serve` runs
    on; the worker and the simulator spend most of their time in the event loop's socket
    handling, where it saves 5-20% of CPU per request (bench/http_client.py).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def emit(value: BaseModel | Sequence[BaseModel] | dict[str, Any], *, as_json: bool) -> None:
    data: Any
    if isinstance(value, Sequence):
        data = [v.model_dump(mode="json") for v in value]
    elif isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    else:
        data = value
    if as_json:
        typer.echo(json.dumps(data))
        return
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))
