"""Outbound messages: written in the transaction of the change that caused them.

Delivery (webhook endpoints, MQTT, attempts, leases) is built on these rows; a message exists
from the moment its cause is committed, whether or not anyone is subscribed yet.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, UUIDPrimaryKey
from gridhive.kit.time import utc_now


class OutboundMessage(UUIDPrimaryKey, Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (sa.Index("ix_outbound_messages_org_created", "org_id", "created_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str] = mapped_column(sa.String(32))
    # The OEM's device or site id (or our object id), for MQTT topics and log filters.
    subject_id: Mapped[str] = mapped_column(sa.String(255))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
