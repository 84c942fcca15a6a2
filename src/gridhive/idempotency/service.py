"""Look up and record idempotent answers, in the same transaction as the request's changes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.errors import Conflict, GridhiveError
from gridhive.idempotency.models import IdempotencyRecord
from gridhive.kit.ids import hash_payload

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class PendingKey:
    org_id: uuid.UUID
    key: str
    method: str
    path: str
    request_hash: str


class IdempotentReplay(GridhiveError):
    """Not an error: carries the stored answer of an earlier request with the same key."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__("replayed")
        self.status_code = status_code
        self.body = body


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hash_payload(method.encode() + b" " + path.encode() + b"\n" + body)


async def check(session: AsyncSession, pending: PendingKey) -> None:
    """Raise IdempotentReplay for a repeat, Conflict for a key reused with another request."""
    if len(pending.key) > MAX_KEY_LENGTH or not pending.key.strip():
        raise Conflict(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
            code="INVALID_IDEMPOTENCY_KEY",
        )
    record = await session.scalar(
        sa.select(IdempotencyRecord).where(
            IdempotencyRecord.org_id == pending.org_id, IdempotencyRecord.key == pending.key
        )
    )
    if record is None:
        return
    if record.request_hash != pending.request_hash:
        raise Conflict(
            "This Idempotency-Key was already used with a different request",
            code="IDEMPOTENCY_KEY_REUSED",
        )
    raise IdempotentReplay(record.status_code, record.response_body)


async def record(session: AsyncSession, pending: PendingKey, status_code: int, body: bytes) -> None:
    """Store the answer; a concurrent request with the same key loses with a 409."""
    session.add(
        IdempotencyRecord(
            org_id=pending.org_id,
            key=pending.key,
            method=pending.method,
            path=pending.path,
            request_hash=pending.request_hash,
            status_code=status_code,
            response_body=json.loads(body) if body else None,
        )
    )
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "A request with this Idempotency-Key is already being processed",
            code="IDEMPOTENCY_KEY_IN_USE",
        ) from exc
