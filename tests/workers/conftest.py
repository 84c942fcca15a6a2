"""Worker tests need real commits: the loop opens its own units of work, which the rolled-back
test session cannot see. So these tests get a database of their own, migrated once per run and
emptied before each test:

- SQLite: a second file next to the suite's database;
- PostgreSQL: a second database, `<test database>_workers`, dropped and created per run.

`committed` yields a sessionmaker on it; `receiver` is a scriptable webhook receiver to put
behind the worker's httpx client (no sockets); `make_worker` builds a worker on both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gridhive.config import MqttSettings, Settings, WorkerSettings
from gridhive.db import registry  # noqa: F401  (every table, for the clean-up)
from gridhive.db.base import Base
from gridhive.db.engine import create_engine, is_sqlite
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker
from gridhive.integrations.mqtt import MqttPublisher
from gridhive.workers.runner import DeliveryWorker


@dataclass(frozen=True)
class CommittedDb:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


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
async def committed_engine(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CommittedDb]:
    if is_sqlite(database_url):
        path: Path = tmp_path_factory.mktemp("workers") / "workers.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        parsed = make_url(database_url)
        url = parsed.set(database=f"{parsed.database}_workers").render_as_string(
            hide_password=False
        )
        await _recreate_postgres_database(url)
    engine = create_engine(url)
    await upgrade_with_engine(engine)
    yield CommittedDb(url=url, engine=engine, sessionmaker=make_sessionmaker(engine))
    await engine.dispose()


@pytest.fixture
async def committed(committed_engine: CommittedDb) -> CommittedDb:
    """The committed database, empty at the start of the test."""
    async with committed_engine.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
    return committed_engine


@pytest.fixture
async def db_session(committed: CommittedDb) -> AsyncIterator[AsyncSession]:
    """A session on the committed database for arranging and asserting; its commits are real."""
    async with committed.sessionmaker() as session:
        yield session


# A webhook receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers each request with the next scripted reply (then `default`) and keeps it.

    A reply is a status code, or "timeout" (the client's read timeout fires), or "refused".
    """

    script: list[int | str] = field(default_factory=list)
    default: int | str = 204
    requests: list[Received] = field(default_factory=list)
    delivered: list[Received] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        reply = self.script.pop(0) if self.script else self.default
        received = Received(headers=dict(request.headers), body=request.content)
        self.requests.append(received)
        if reply == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if reply == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        assert isinstance(reply, int)
        if 200 <= reply < 300:
            self.delivered.append(received)
        headers = {"location": "http://elsewhere.example/"} if 300 <= reply < 400 else None
        return httpx.Response(reply, headers=headers, text="" if reply < 300 else "nope")

    def event_types(self) -> list[str]:
        return [r.json["event_type"] for r in self.delivered]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def worker_settings(url: str, **worker: Any) -> Settings:
    options: dict[str, Any] = {"retry_jitter": 0.0, "concurrency": 16, **worker}
    return Settings(
        database_url=url,
        run_migrations_on_start=False,
        log_json=False,
        worker=WorkerSettings(**options),
        mqtt=MqttSettings(url=None),
    )


MakeWorker = Callable[..., DeliveryWorker]


@pytest.fixture
async def make_worker(committed: CommittedDb, receiver: Receiver) -> AsyncIterator[MakeWorker]:
    """`make_worker(**worker_settings)`: a worker on the committed database whose HTTP client
    talks to `receiver`. Closed after the test."""
    made: list[DeliveryWorker] = []

    def make(*, mqtt: MqttPublisher | None = None, **options: Any) -> DeliveryWorker:
        client = httpx.AsyncClient(
            transport=httpx.MockTransport(receiver), timeout=5.0, follow_redirects=False
        )
        worker = DeliveryWorker(
            committed.sessionmaker,
            worker_settings(committed.url, **options),
            http_client=client,
            mqtt=mqtt,
            worker_id=f"test-{len(made)}",
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.http.aclose()
        await worker.aclose()
