"""Stored answers to POSTs sent with an `Idempotency-Key` header."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, UUIDPrimaryKey
from gridhive.kit.time import utc_now


class IdempotencyRecord(UUIDPrimaryKey, Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (sa.UniqueConstraint("org_id", "key"),)

    org_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(2048))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int]
    response_body: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
