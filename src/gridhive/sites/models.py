"""Sites: a homeowner's home, identified by the OEM's own string id."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, Timestamps
from gridhive.kit.ids import new_uuid


class Site(Timestamps, Base):
    __tablename__ = "sites"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "id"),)

    # Surrogate key: site ids are unique per OEM, not globally.
    pk: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    id: Mapped[str] = mapped_column(sa.String(255))
    first_name: Mapped[str | None] = mapped_column(sa.String(200))
    last_name: Mapped[str | None] = mapped_column(sa.String(200))
    company_name: Mapped[str | None] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    state_code: Mapped[str | None] = mapped_column(sa.String(2))
    city: Mapped[str | None] = mapped_column(sa.String(200))
    zip_code: Mapped[str | None] = mapped_column(sa.String(10))
    street_address: Mapped[str | None] = mapped_column(sa.String(300))
    street_address2: Mapped[str | None] = mapped_column(sa.String(300))
    service_account_id: Mapped[str | None] = mapped_column(sa.String(200))
    tariff_id: Mapped[str | None] = mapped_column(sa.String(200))
    # The homeowner agreed beforehand to be enrolled automatically (commission's can_auto_enroll).
    can_auto_enroll: Mapped[bool | None]
    commissioned_at: Mapped[datetime | None]
