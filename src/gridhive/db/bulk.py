"""Bulk writes: hundreds of thousands of rows in the caller's transaction, no ORM per row.

An event over 100,000 batteries writes some 100,000 site events, 200,000 commands and 300,000
outbound messages inside one request (system.md §4). `insert_rows` takes plain tuples, shaped
as `DriverValues` says, and hands them to the driver in one statement per table: a binary COPY
on PostgreSQL, one executemany on SQLite. The id streams make the keys those rows need without
a `uuid.uuid4()` call each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.db import pg_copy, sqlite_big_write
from gridhive.db.base import Base, UTCDateTime

# Compact separators: the text is stored, not read by people, and smaller is faster to write.
_JSON = json.JSONEncoder(separators=(",", ":"))
json_text = _JSON.encode


@dataclass(frozen=True, slots=True)
class DriverValues:
    """How a value must look for `insert_rows` on this session's database.

    UUIDs are given as 32 hex digits (`UUID.hex`) on both databases: SQLite stores that text
    (SQLAlchemy's `Uuid` does the same) and asyncpg's COPY parses it. JSON is given as text.
    Datetimes go through SQLAlchemy's own conversion for `UTCDateTime`, so the stored form is
    exactly what an ORM insert would store (naive UTC text on SQLite, aware on PostgreSQL).
    """

    datetime: Callable[[datetime], Any]

    @classmethod
    def of(cls, session: AsyncSession) -> DriverValues:
        # `dialect_impl` gives the full chain (our UTC conversion, then the dialect's own
        # formatting), so on SQLite the text has microseconds exactly as an ORM insert writes
        # it; without it the sqlite3 adapter drops a zero fraction and text comparisons between
        # bulk and ORM rows of the same instant go wrong.
        dialect = session.get_bind().dialect
        process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        return cls(datetime=process or (lambda value: value))


def uuid4_hex_stream(batch: int = 4096) -> Iterator[str]:
    """Random version-4 UUIDs as 32 hex digits, about six times faster than `uuid4().hex`."""
    while True:
        data = bytearray(os.urandom(16 * batch))
        for offset in range(0, 16 * batch, 16):
            # RFC 4122 §4.4: version 4 in the high nibble of byte 6, variant 0b10 in byte 8.
            data[offset + 6] = (data[offset + 6] & 0x0F) | 0x40
            data[offset + 8] = (data[offset + 8] & 0x3F) | 0x80
        text = data.hex()
        for start in range(0, 32 * batch, 32):
            yield text[start : start + 32]


def uuid7_int_stream() -> Iterator[int]:
    """Time-ordered UUIDs (RFC 9562 version 7) as 128-bit ints, increasing along the stream.

    The 48-bit millisecond timestamp is taken once and the 74 bits after it count up from a
    random start (RFC 9562 §6.2, method 2). Rows inserted in bulk with increasing keys append
    to their indexes instead of landing on random pages: a quarter less work for SQLite over
    the 400,000 site events and messages of a 100,000-device event.
    """
    millis = time.time_ns() // 1_000_000
    counter = int.from_bytes(os.urandom(10)) >> 7  # 73 random bits: room to count up
    while True:
        counter += 1
        rand_a, rand_b = counter >> 62, counter & _LOW_62_BITS
        yield millis << 80 | _V7 | rand_a << 64 | _VARIANT | rand_b


def uuid7_hex_stream() -> Iterator[str]:
    """`uuid7_int_stream` as 32 hex digits, the form `insert_rows` takes.

    The same arithmetic inline rather than a loop over `uuid7_int_stream`: one generator step
    per id instead of two, for the 60,000 ids an event over 10,000 batteries takes.
    """
    high = time.time_ns() // 1_000_000 << 80 | _V7 | _VARIANT
    counter = int.from_bytes(os.urandom(10)) >> 7
    while True:
        counter += 1
        yield f"{high | (counter >> 62) << 64 | counter & _LOW_62_BITS:032x}"


_LOW_62_BITS = (1 << 62) - 1
_V7 = 0x7 << 76
_VARIANT = 0b10 << 62


# Rows per SQLite INSERT statement: the per-statement work (reset, bind loop, step set-up) is
# paid once per 50 rows instead of once per row. Storing the rows of an event over 10,000
# batteries (bench/plan_event.py's floor, side by side): site events 0.087 -> 0.055 s,
# commands 0.38 -> 0.29 s, messages 0.24 -> 0.14 s. 200 rows did no better. The widest table
# (22 columns) stays far below SQLite's limit of 32,766 parameters per statement.
SQLITE_ROWS_PER_STATEMENT = 50


async def _sqlite_insert(
    driver: Any, table: str, columns: Sequence[str], rows: list[Sequence[Any]]
) -> None:
    """`rows` as multi-row INSERTs of `SQLITE_ROWS_PER_STATEMENT` rows, then one of the rest."""
    per = SQLITE_ROWS_PER_STATEMENT
    whole = len(rows) - len(rows) % per
    if whole:
        batches = [list(chain.from_iterable(rows[i : i + per])) for i in range(0, whole, per)]
        await _executemany(driver, _insert_sql(table, columns, per), batches)
    if whole < len(rows):
        rest = rows[whole:]
        batch = list(chain.from_iterable(rest))
        await _executemany(driver, _insert_sql(table, columns, len(rest)), [batch])


def _insert_sql(table: str, columns: Sequence[str], rows: int) -> str:
    row_marks = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row_marks] * rows)}"


async def _executemany(driver: Any, sql: str, batches: list[list[Any]]) -> None:
    cursor = await driver.executemany(sql, batches)
    await cursor.close()


async def insert_rows(
    session: AsyncSession,
    model: type[Base],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Insert `rows` into `model`'s table in the session's transaction, with no per-row work
    in SQLAlchemy: values in `columns` order, shaped as `DriverValues` says.

    PostgreSQL: one binary COPY on the session's own connection, so the rows commit or roll
    back with everything else; a generator of rows streams, so the server inserts while the
    rest is still being built. SQLite: multi-row INSERTs of plain tuples on the driver.
    """
    if isinstance(rows, Sized) and not len(rows):
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    dialect = connection.dialect.name
    table = model.__tablename__
    if dialect == "postgresql":
        if not driver.is_in_transaction():
            # SQLAlchemy's asyncpg adapter begins lazily, on the first statement.
            await connection.exec_driver_sql("SELECT 1")
        encode_row = pg_copy.row_encoder(sa.inspect(model).local_table, columns)
        if encode_row is None:
            await driver.copy_records_to_table(table, records=rows, columns=list(columns))
        else:
            data = pg_copy.binary_copy_data(rows, encode_row)
            await driver.copy_to_table(table, source=data, columns=list(columns), format="binary")
    elif dialect == "sqlite":
        # Built here, on the event loop's thread, not lazily on the driver's: SQLite's thread
        # gains nothing from interleaving (one transaction, one writer) and the rows' Python
        # work stays where profilers and tracebacks expect it.
        rows = rows if isinstance(rows, list) else list(rows)
        if len(rows) >= sqlite_big_write.BIG_WRITE_ROWS:
            await sqlite_big_write.prepare(driver, raw.info)
        await _sqlite_insert(driver, table, columns, rows)
    else:  # pragma: no cover - gridhive runs on SQLite and PostgreSQL only
        raise NotImplementedError(f"bulk insert on {dialect}")
