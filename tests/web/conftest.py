"""Page tests.

Most page tests use the suite's `client` (ASGI, rolled-back session) and check the HTML. The
browser tests drive Debian's Chromium through Playwright against `live`: gridhive served by
uvicorn on a free port of this machine, on a committed database of its own (the browser's
requests come from outside the test's transaction). Without Chromium the browser tests are
skipped, unless GRIDHIVE_REQUIRE_SERVICES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gridhive.app import create_app
from gridhive.config import Settings, WorkerSettings
from gridhive.db import registry  # noqa: F401  (every table, for the clean-up)
from gridhive.db.base import Base
from gridhive.db.engine import create_engine, is_sqlite
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker

CHROMIUM = os.environ.get("GRIDHIVE_CHROMIUM", "/usr/bin/chromium")
# As this machine's browser checks run it: no background traffic to the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_chromium() -> None:
    missing = None
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        missing = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("GRIDHIVE_REQUIRE_SERVICES") == "1":
            pytest.fail(missing)
        pytest.skip(missing)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings


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


@pytest.fixture(scope="session")
async def web_engine(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A committed database for live-server tests, migrated once per run."""
    if is_sqlite(database_url):
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}"
    else:
        parsed = make_url(database_url)
        url = parsed.set(database=f"{parsed.database}_web").render_as_string(hide_password=False)
        await _recreate_postgres_database(url)
    engine = create_engine(url)
    await upgrade_with_engine(engine)
    yield url, engine
    await engine.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def live(web_engine: tuple[str, AsyncEngine]) -> AsyncIterator[LiveServer]:
    """gridhive on a real port (delivery worker included), on an emptied committed database."""
    url, engine = web_engine
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
    settings = Settings(
        database_url=url,
        run_migrations_on_start=False,
        log_json=False,
        worker=WorkerSettings(poll_interval_s=0.05),
    )
    port = _free_port()
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped the server
        await asyncio.sleep(0.01)  # waiting for readiness, not for timing
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", make_sessionmaker(engine), settings)
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) and page; 10 s default wait for expectations."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield page
    await context.close()


@pytest.fixture
async def phone_page(browser: Any) -> AsyncIterator[Any]:
    """A phone-sized page (iPhone 12 viewport, touch)."""
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield page
    await context.close()
