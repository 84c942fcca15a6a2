"""Group commit for acknowledgements: the acks that arrive while one statement is at the
database go together in the next.

A device maker acknowledges every command, many at once after a large dispatch. On PostgreSQL
each ack alone is a statement, a commit and a round trip, and the database's share of that
work is as large as the API's. The fast lane (`commands.fast_ack`) hands its acks to an
`AckGroup` instead: one task writes them, as many as are waiting (up to `max_batch`), in one
`acknowledge_many` statement, and every request gets its own answer when its statement has
committed. An ack that arrives when nothing is waiting is written at once, alone, so a quiet
server answers as fast as before. Written here because the batching is tied to the ack's SQL
and to the lane's fallbacks; asyncio gives the rest (a task and a future per ack).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gridhive.commands import service
from gridhive.commands.schemas import CommandAck

Unit = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

MAX_BATCH = 256  # acks per statement: a few milliseconds of the database's time


@dataclass(slots=True)
class _Waiting:
    answer: service.Acknowledgement
    future: asyncio.Future[dict[str, Any] | None]


class AckGroup:
    """Writes the acks handed to `acknowledge`, grouped, through `unit`: a single-statement
    unit of work on `engine` (`db.session.single_statement_unit` in the API)."""

    def __init__(
        self, engine: AsyncEngine | None, *, unit: Unit, max_batch: int = MAX_BATCH
    ) -> None:
        self.engine = engine
        self.unit = unit
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def acknowledge(
        self, *, tenant_id: uuid.UUID, command_id: uuid.UUID, ack: CommandAck
    ) -> dict[str, Any] | None:
        """Flip's Command once the answer is stored, or None when it changed nothing or names
        no command of the tenant (`service.acknowledge` then says which). Raises what the
        statement raised: nothing of a failed statement is stored."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        answer = service.Acknowledgement(tenant_id, command_id, ack)
        self._waiting.append(_Waiting(answer, future))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not loop:
            self._writer = loop.create_task(self._write_while_waiting())
        return await future

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            batch = self._next_batch()
            try:
                async with self.unit() as connection:
                    stored = await service.acknowledge_many(connection, [w.answer for w in batch])
            except Exception as exc:  # each request hands its ack to the route, which reports
                _fail(batch, exc)
                continue
            except BaseException:  # the writer itself is stopped (shutdown): nobody may hang
                _fail(batch + self._waiting, RuntimeError("the acknowledgement writer stopped"))
                self._waiting = []
                raise
            for waiting in batch:
                if not waiting.future.done():  # its client may have gone away
                    waiting.future.set_result(stored.get(waiting.answer.command_id))

    def _next_batch(self) -> list[_Waiting]:
        """The oldest waiting acks, one per command: a second ack of the same command waits
        for the next statement, so the two are applied in the order they came."""
        batch: list[_Waiting] = []
        later: list[_Waiting] = []
        commands: set[uuid.UUID] = set()
        for waiting in self._waiting:
            command_id = waiting.answer.command_id
            if len(batch) >= self.max_batch or command_id in commands:
                later.append(waiting)
                continue
            commands.add(command_id)
            batch.append(waiting)
        self._waiting = later
        return batch


def _fail(waiting: list[_Waiting], error: Exception) -> None:
    for one in waiting:
        if not one.future.done():
            one.future.set_exception(error)
