"""SQLite settings for one big write (an event's rows), and its WAL checkpoint after the request.

Two of SQLite's defaults cost a transaction that writes hundreds of thousands of rows, so
`prepare` changes them on its connection for that transaction, and `restore` puts them back
when the connection returns to the pool (connections are pooled: left as they were, the next
user of the connection would inherit them).

- **Page cache.** 2 MiB by default: the tables' random-UUID indexes are then evicted to the
  WAL and read back over and over, a third of the insert time at 100,000 batteries. The limit
  is raised to 512 MiB; memory is only taken as pages are used, and restoring the limit gives
  the pages back.
- **Auto-checkpoint.** The commit that takes the WAL over 1,000 pages copies the whole WAL back
  into the database file, inside the request: at 10,000 batteries 0.08 of its 0.13 s commit,
  at 100,000 about a second. The big write's commit skips it, and a PASSIVE checkpoint runs in
  the background on another pooled connection once the request is done (`checkpoint_soon`).
  PASSIVE never waits for readers or writers. Nothing depends on it for durability: the WAL is
  durable at commit, and a checkpoint that never runs (the process stops first) is done by the
  next commit past the threshold or by the last connection to close.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

BIG_WRITE_ROWS = 10_000  # rows in one insert that make a write big
_CACHE_KIB = 512 * 1024
# Key in the pooled connection's `info`: the settings to put back, as PRAGMA gave them.
_SETTINGS_BEFORE = "gridhive_sqlite_settings_before_big_write"


async def prepare(driver: Any, info: dict[Any, Any]) -> None:
    """Raise the page cache and turn auto-checkpoint off on this aiosqlite connection, for the
    rest of its transaction (`info`: the pooled connection's, where `restore` looks)."""
    if _SETTINGS_BEFORE in info:
        return  # an earlier insert of the same transaction did it
    info[_SETTINGS_BEFORE] = {
        "cache_size": await _pragma(driver, "cache_size"),
        "wal_autocheckpoint": await _pragma(driver, "wal_autocheckpoint"),
    }
    cursor = await driver.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    await cursor.close()
    cursor = await driver.execute("PRAGMA wal_autocheckpoint = 0")
    await cursor.close()


async def _pragma(driver: Any, name: str) -> int:
    cursor = await driver.execute(f"PRAGMA {name}")
    row = await cursor.fetchone()
    await cursor.close()
    return int(row[0])


def restore(dbapi_connection: Any, info: dict[Any, Any]) -> bool:
    """Put back what `prepare` changed on this connection, if anything; whether it had.

    Called with the pool's connection (SQLAlchemy's adapter: it awaits the driver itself)
    when it is given back, after its transaction."""
    before = info.pop(_SETTINGS_BEFORE, None)
    if before is None:
        return False
    cursor = dbapi_connection.cursor()
    for name, value in before.items():
        cursor.execute(f"PRAGMA {name} = {int(value)}")
    cursor.close()
    return True


class _Checkpointer:
    """At most one background checkpoint per engine; a request meanwhile runs one more after."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = weakref.ref(engine)
        self.task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self.task is not None and not self.task.done():
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: the next commit past the threshold does it
            return
        self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            engine = self._engine()
            if engine is None:
                return
            try:
                await _checkpoint(engine)
            except Exception as exc:  # harmless: the next commit past the threshold does it
                log.warning("sqlite_checkpoint_failed", error=str(exc))
                return


async def _checkpoint(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        # On the driver, outside any transaction (SQLAlchemy would begin one).
        cursor = await driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
        await cursor.close()


_checkpointers: weakref.WeakKeyDictionary[AsyncEngine, _Checkpointer] = weakref.WeakKeyDictionary()


def checkpoint_soon(engine: AsyncEngine) -> None:
    """Start a PASSIVE checkpoint of the engine's database in the background (event loop's
    thread only: the pool calls this when a big write's connection comes back)."""
    checkpointer = _checkpointers.get(engine)
    if checkpointer is None:
        checkpointer = _checkpointers[engine] = _Checkpointer(engine)
    checkpointer.request()


async def settle(engine: AsyncEngine) -> None:
    """Wait for the engine's background checkpoint, if one is running (shutdown, tests)."""
    checkpointer = _checkpointers.get(engine)
    if checkpointer is not None and checkpointer.task is not None:
        await asyncio.shield(checkpointer.task)
