"""Enrollments: a site and some of its devices joined to a program."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey
from gridhive.sites.models import Site


class EnrollmentStatus(enum.StrEnum):
    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    NEEDS_ACTION = "NEEDS_ACTION"
    PAUSED = "PAUSED"
    REJECTED = "REJECTED"
    UNENROLLED = "UNENROLLED"


# Statuses in which an enrollment still holds its devices for its program.
OPEN_STATUSES = (
    EnrollmentStatus.CREATED,
    EnrollmentStatus.SUBMITTED,
    EnrollmentStatus.PENDING,
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.NEEDS_ACTION,
    EnrollmentStatus.PAUSED,
)


class EnrollMethod(enum.StrEnum):
    AUTO_ENROLL = "AUTO_ENROLL"
    USER_ACTION = "USER_ACTION"


# A site has at most one open enrollment per program. The service checks it and answers 409;
# the index makes two requests racing past that check fail as well (the second commit is
# refused, and the API answers that one with a 409 too).
_OPEN = sa.text("status IN (" + ", ".join(f"'{s.value}'" for s in OPEN_STATUSES) + ")")


class Enrollment(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        sa.Index(
            "uq_enrollments_open_site_program",
            "site_pk",
            "program_id",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    site_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("sites.pk", ondelete="CASCADE"), index=True
    )
    program_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("programs.id", ondelete="RESTRICT"), index=True
    )
    enroll_method: Mapped[EnrollMethod] = mapped_column(
        sa.Enum(EnrollMethod, native_enum=False, length=16)
    )
    status: Mapped[EnrollmentStatus] = mapped_column(
        sa.Enum(EnrollmentStatus, native_enum=False, length=16), index=True
    )
    status_reason: Mapped[str | None] = mapped_column(sa.String(500))
    enrolled_at: Mapped[datetime | None]
    unenrolled_at: Mapped[datetime | None]
    program_specific_attributes: Mapped[list[Any]] = mapped_column(default=list)
    has_agreed_to_terms_and_conditions: Mapped[bool | None]
    terms_and_conditions_version: Mapped[str | None] = mapped_column(sa.String(100))
    # Loaded with every enrollment: responses name the site and devices by the OEM's ids, and
    # nothing may lazy-load under asyncio.
    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)
    devices: Mapped[list[EnrollmentDevice]] = relationship(
        lazy="selectin", order_by="EnrollmentDevice.position"
    )

    @property
    def site_id(self) -> str:
        return self.site.id

    @property
    def device_ids(self) -> list[str]:
        return [device.device_id for device in self.devices]


class EnrollmentDevice(Base):
    """Which devices an enrollment covers; the planner joins through this at fleet scale."""

    __tablename__ = "enrollment_devices"

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("enrollments.id", ondelete="CASCADE"), primary_key=True
    )
    device_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True, index=True
    )
    # The OEM's device id as given at enrollment, kept so the list reads back as sent.
    device_id: Mapped[str] = mapped_column(sa.String(255))
    position: Mapped[int] = mapped_column(default=0)
