"""Binary COPY encoded by gridhive stores exactly what asyncpg's own encoding stores."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gridhive.db import pg_copy
from gridhive.db.base import UTCDateTime
from gridhive.db.engine import is_sqlite


class Kind(enum.StrEnum):
    ONE = "one"
    TWO = "two"


# Every column type the dispatch tables use, in a table of its own (not in the models).
PROBE = sa.Table(
    "pg_copy_probe",
    sa.MetaData(),
    sa.Column("id", sa.Uuid(), primary_key=True),  # encoded inline: each is new
    sa.Column("ref", sa.Uuid()),  # encoded once per value: rows refer to the same few
    sa.Column("at", UTCDateTime()),
    sa.Column("flag", sa.Boolean()),
    sa.Column("n", sa.Integer()),
    sa.Column("big", sa.BigInteger()),
    sa.Column("state", sa.String(16)),
    sa.Column("kind", sa.Enum(Kind, native_enum=False, length=16)),
    sa.Column("note", sa.String(500)),
    sa.Column("body", sa.JSON()),
)
COLUMNS = [column.name for column in PROBE.columns]
DDL = (
    "(id uuid, ref uuid, at timestamptz, flag boolean, n integer, big bigint, state varchar(16),"
    " kind varchar(16), note varchar(500), body json)"
)
ID = uuid.UUID("01934f6e-7c2a-7d3e-9f10-aa55cc33ee77")
ROWS: list[tuple[Any, ...]] = [
    (ID.hex, ID.hex, datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC), True, 0, 0, "OK",
     Kind.ONE, "bat-000001", '{"a":1}'),
    # A UUID object, a time before PostgreSQL's epoch in another zone, extremes of the ints.
    (ID, ID, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
     False, -(2**31), -(2**63), "PENDING", "two", "Zürich ☀ \t\\ \"quoted\"",
     '{"text":"line\\nbreak","emoji":"☀"}'),
    (uuid.uuid4().hex, ID.hex, datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC), True,
     2**31 - 1, 2**63 - 1, "OK", Kind.ONE, "", "[]"),
    # NULL in every column.
    (None, None, None, None, None, None, None, None, None, None),
]  # fmt: skip


@pytest.fixture
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    if is_sqlite(database_url):
        pytest.skip("binary COPY is PostgreSQL's: runs in the PostgreSQL pass")
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        for name in ("ours", "asyncpgs"):
            await connection.execute(f"CREATE TEMP TABLE {name} {DDL}")
        yield connection
    finally:
        await connection.close()


async def _stored(connection: asyncpg.Connection, table: str) -> list[tuple[Any, ...]]:
    rows = await connection.fetch(f"SELECT * FROM {table}")
    return sorted((tuple(row) for row in rows), key=repr)


async def test_every_value_is_stored_as_asyncpg_stores_it(
    connection: asyncpg.Connection,
) -> None:
    encode_row = pg_copy.row_encoder(PROBE, COLUMNS)
    assert encode_row is not None

    await connection.copy_to_table(
        "ours",
        source=pg_copy.binary_copy_data(iter(ROWS), encode_row),
        columns=COLUMNS,
        format="binary",
    )
    as_asyncpg_takes_them = [
        tuple(value.value if isinstance(value, Kind) else value for value in row) for row in ROWS
    ]
    await connection.copy_records_to_table(
        "asyncpgs", records=as_asyncpg_takes_them, columns=COLUMNS
    )

    ours = await _stored(connection, "ours")
    assert ours == await _stored(connection, "asyncpgs")
    assert len(ours) == len(ROWS)
    first = next(row for row in ours if row[8] == "bat-000001")
    assert first[0] == first[1] == ID
    assert first[2] == datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)


async def test_rows_span_several_chunks(connection: asyncpg.Connection) -> None:
    encode_row = pg_copy.row_encoder(PROBE, COLUMNS)
    assert encode_row is not None
    count = pg_copy.CHUNK_ROWS * 2 + 7
    rows = (
        (uuid.uuid4().hex, None, None, True, n, n, "OK", Kind.TWO, f"n{n}", None)
        for n in range(count)
    )

    await connection.copy_to_table(
        "ours", source=pg_copy.binary_copy_data(rows, encode_row), columns=COLUMNS,
        format="binary",
    )  # fmt: skip

    stored = await connection.fetch("SELECT n, note FROM ours ORDER BY n")
    assert [(r["n"], r["note"]) for r in stored] == [(n, f"n{n}") for n in range(count)]


def test_a_column_type_without_an_encoding_goes_to_asyncpg() -> None:
    table = sa.Table("other", sa.MetaData(), sa.Column("x", sa.Float()))
    assert pg_copy.row_encoder(table, ["x"]) is None
