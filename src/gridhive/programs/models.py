"""Programs: a utility's demand-response scheme with its territory and dispatch rules."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gridhive.db.base import Base, Timestamps, UUIDPrimaryKey
from gridhive.kit.ids import new_uuid


class Program(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "programs"

    utility_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    eligible_device_types: Mapped[list[Any]] = mapped_column(default=list)
    participation_months: Mapped[list[Any]] = mapped_column(default=list)
    minimum_reserve_percentage: Mapped[int] = mapped_column(default=0)
    minimum_commitment_months: Mapped[int | None]
    can_auto_enroll: Mapped[bool] = mapped_column(default=False)
    # USER_ACTION enrollments become ACTIVE at once instead of waiting for the utility.
    auto_approve: Mapped[bool] = mapped_column(default=False)
    earnings_for_site_upfront: Mapped[int] = mapped_column(default=0)
    earnings_for_site_yearly: Mapped[int] = mapped_column(default=0)
    enrollment_form: Mapped[list[Any]] = mapped_column(default=list)
    terms_and_conditions_version: Mapped[str | None] = mapped_column(sa.String(100))
    terms_and_conditions_text: Mapped[str | None] = mapped_column(sa.Text)
    # Territory: empty lists mean anywhere. Test programs also match the sandbox zips.
    zip_codes: Mapped[list[Any]] = mapped_column(default=list)
    state_codes: Mapped[list[Any]] = mapped_column(default=list)
    is_test: Mapped[bool] = mapped_column(default=False)
    minimum_battery_capacity_wh: Mapped[int | None]
    minimum_battery_power_w: Mapped[int | None]
    timezone: Mapped[str] = mapped_column(sa.String(64), default="America/Los_Angeles")
    # Dispatch rules (system.md §2), validated by programs.schemas.DispatchRules.
    dispatch_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Group(Timestamps, Base):
    """A utility-chosen subset of a program's sites (e.g. a load zone), targeted by events."""

    __tablename__ = "groups"
    __table_args__ = (sa.UniqueConstraint("program_id", "id"),)

    pk: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    program_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    id: Mapped[str] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(200))


class SiteGroup(Base):
    """Membership of a site in a group; set through the utility's enrollment PATCH."""

    __tablename__ = "site_groups"

    group_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("groups.pk", ondelete="CASCADE"), primary_key=True
    )
    site_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("sites.pk", ondelete="CASCADE"), primary_key=True, index=True
    )
