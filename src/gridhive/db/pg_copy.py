"""PostgreSQL's binary COPY format, encoded here for the bulk writes of `db.bulk.insert_rows`.

asyncpg's `copy_records_to_table` encodes every value through its type codec, and a timestamp
costs about 1.4 µs there (the codec converts the datetime to UTC and subtracts the epoch for
each value). An event over 10,000 batteries sends some 130,000 timestamps, nearly all of them
one of a few hundred values, and encoding the 20,000 commands took 0.15 s of the event loop's
time, 0.085 s of it for three of their four timestamp columns.

So each column gets an encoding suited to what it holds, written out in one generated function
per statement (`row_encoder`). Columns whose values repeat (timestamps, states, numbers, short
texts) encode each distinct value once per statement and look it up after, at the cost of a
dict lookup; ids are 32 hex digits turned into their 16 bytes by `bytes.fromhex`.

The layout is the one PostgreSQL documents for `COPY ... (FORMAT binary)`: a signature and two
32-bit words, then per row a 16-bit field count and per field a 32-bit length (-1 for NULL) and
the value in the type's binary send format, then -1 as a 16-bit word. No library offers this:
asyncpg keeps its encoders internal to its protocol.

Column types without an encoding here (`row_encoder` returns None) go through asyncpg.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gridhive.db.base import UTCDateTime

# PostgreSQL's documentation, "COPY", "Binary Format": signature, flags, header extension.
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
NULL = struct.pack("!i", -1)
_UUID_PREFIX = struct.pack("!i", 16)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
CHUNK_ROWS = 2_000  # rows per CopyData batch: the server inserts one while the next is built

RowEncoder = Callable[[Sequence[Any]], bytes]
# Declared lengths up to this are states and kinds (values repeat); longer ones are free text.
_SHORT_TEXT = 64


class _Once(dict[Any, bytes]):
    """`encode(value)` once per distinct value of a column; a lookup after that."""

    def __init__(self, encode: Callable[[Any], bytes]) -> None:
        super().__init__()
        self[None] = NULL
        self._encode = encode

    def __missing__(self, value: Any) -> bytes:
        data = self[value] = self._encode(value)
        return data


def _field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def _timestamptz(value: datetime) -> bytes:
    # Microseconds since 2000-01-01 UTC; exact integer arithmetic, as PostgreSQL stores it.
    delta = value.astimezone(UTC) - _PG_EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _field(struct.pack("!q", micros))


def _text(value: str) -> bytes:
    return _field(value.encode())


def _uuid(value: str | uuid.UUID) -> bytes:
    return _UUID_PREFIX + (bytes.fromhex(value) if isinstance(value, str) else value.bytes)


def _boolean(value: bool) -> bytes:
    return _field(b"\x01" if value else b"\x00")


def _int4(value: int) -> bytes:
    return _field(struct.pack("!i", value))


def _int8(value: int) -> bytes:
    return _field(struct.pack("!q", value))


def _column_encoding(
    column: sa.ColumnElement[Any], value: str, memo: str
) -> tuple[str, Callable[[Any], bytes] | None] | None:
    """How one column's `value` (a variable name) is encoded, as a Python expression, and the
    encoder whose memo `memo` (another name) is, if it has one; None: no encoder here.

    Values that repeat (timestamps, states, numbers, flags, the ids rows refer to) go through
    a memo; a row's own id, free text and JSON are encoded inline, since each is new.
    """
    column_type = column.type
    if isinstance(column_type, UTCDateTime):
        return f"{memo}[{value}]", _timestamptz
    if isinstance(column_type, sa.Uuid):
        if not getattr(column, "primary_key", False):
            return f"{memo}[{value}]", _uuid
        # 32 hex digits as rows carry them, or a UUID; asyncpg returns its own UUID subclass.
        hexed = f"fromhex({value}) if {value}.__class__ is str else {value}.bytes"
        return f"(NULL if {value} is None else UUID_PREFIX + ({hexed}))", None
    if isinstance(column_type, sa.Boolean):
        return f"{memo}[{value}]", _boolean
    if isinstance(column_type, sa.BigInteger):
        return f"{memo}[{value}]", _int8
    if isinstance(column_type, sa.Integer):
        return f"{memo}[{value}]", _int4
    if isinstance(column_type, sa.Enum) or (
        isinstance(column_type, sa.String) and (column_type.length or 1000) <= _SHORT_TEXT
    ):
        return f"{memo}[{value}]", _text
    if isinstance(column_type, sa.String | sa.JSON):
        # JSON's binary send format is its text, and rows carry JSON as text already.
        encoded = f"(_utf8 := {value}.encode())"
        return f"(NULL if {value} is None else pack_length(len({encoded})) + _utf8)", None
    return None


def row_encoder(table: sa.FromClause, columns: Sequence[str]) -> RowEncoder | None:
    """A function from a row of `columns` to its bytes in a COPY into `table`, or None if a
    column's type has no encoder here. Its memos are new: make one per statement.

    The function is generated, with each column's encoding written out in it: one call per
    row instead of one per value (as `dataclasses` and `namedtuple` generate their methods).
    At 30,000 rows of ten columns the calls alone cost as much as asyncpg's encoding.
    """
    made = _row_encoder_maker(table, tuple(columns))
    if made is None:
        return None
    make, memo_encoders = made
    return make(*(_Once(encode) for encode in memo_encoders))


@functools.cache
def _row_encoder_maker(
    table: sa.FromClause, columns: tuple[str, ...]
) -> tuple[Callable[..., RowEncoder], list[Callable[[Any], bytes]]] | None:
    """The compiled maker of `row_encoder`'s functions, once per table and columns (compiling
    costs more than encoding a small statement's rows), and the encoders of its memos."""
    names = [f"v{i}" for i in range(len(columns))]
    expressions: list[str] = []
    memos: list[str] = []
    memo_encoders: list[Callable[[Any], bytes]] = []
    for index, name in enumerate(columns):
        encoding = _column_encoding(table.c[name], names[index], f"m{index}")
        if encoding is None:
            return None
        expression, encode = encoding
        if encode is not None:
            memos.append(f"m{index}")
            memo_encoders.append(encode)
        expressions.append(expression)
    source = (
        f"def make({', '.join(memos)}):\n"
        f"    def encode_row(row):\n"
        f"        {', '.join(names)}, = row\n"
        f"        return b''.join((COUNT, {', '.join(expressions)}))\n"
        f"    return encode_row\n"
    )
    scope: dict[str, Any] = {
        "NULL": NULL,
        "UUID_PREFIX": _UUID_PREFIX,
        "COUNT": struct.pack("!h", len(columns)),
        "fromhex": bytes.fromhex,
        "pack_length": struct.Struct("!i").pack,
    }
    # Built above from fixed templates and column positions only: no data is in the code.
    exec(source, scope)
    return scope["make"], memo_encoders


async def binary_copy_data(
    rows: Iterable[Sequence[Any]], encode_row: RowEncoder
) -> AsyncIterator[bytes]:
    """The COPY data of `rows`, in chunks of `CHUNK_ROWS` rows (a generator of rows is read as
    the chunks are sent)."""
    chunk = [HEADER]
    append = chunk.append
    for row in rows:
        append(encode_row(row))
        if len(chunk) > CHUNK_ROWS:
            yield b"".join(chunk)
            chunk = []
            append = chunk.append
    chunk.append(TRAILER)
    yield b"".join(chunk)
