"""Every query of settings requests; each is scoped to one OEM or one device."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.device_settings.models import SettingsRequest, SettingsStatus
from gridhive.kit.pagination import Page


async def get_for_tenant(
    session: AsyncSession, *, tenant_id: uuid.UUID, request_id: uuid.UUID
) -> SettingsRequest | None:
    return await session.scalar(
        sa.select(SettingsRequest).where(
            SettingsRequest.id == request_id, SettingsRequest.tenant_id == tenant_id
        )
    )


async def search_for_device(
    session: AsyncSession, *, device_pk: uuid.UUID, page: Page
) -> Sequence[SettingsRequest]:
    """Newest first; the id breaks ties between requests made in the same instant."""
    stmt = (
        sa.select(SettingsRequest)
        .where(SettingsRequest.device_pk == device_pk)
        .order_by(SettingsRequest.created_at.desc(), SettingsRequest.id.desc())
        .offset(page.skip)
        .limit(page.limit)
    )
    return (await session.scalars(stmt)).all()


async def search_for_tenant(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    statuses: Sequence[SettingsStatus],
    updated_since: datetime | None,
    page: Page,
) -> Sequence[SettingsRequest]:
    """Oldest update first, so that a poller passing its last `updated_at` misses nothing."""
    stmt = sa.select(SettingsRequest).where(SettingsRequest.tenant_id == tenant_id)
    if statuses:
        stmt = stmt.where(SettingsRequest.status.in_(statuses))
    if updated_since is not None:
        stmt = stmt.where(SettingsRequest.updated_at >= updated_since)
    stmt = (
        stmt.order_by(SettingsRequest.updated_at, SettingsRequest.id)
        .offset(page.skip)
        .limit(page.limit)
    )
    return (await session.scalars(stmt)).all()


async def newer_applied_reserve_exists(session: AsyncSession, older: SettingsRequest) -> bool:
    """Whether a request for the same device made after `older` already set the reserve."""
    newer = sa.or_(
        SettingsRequest.created_at > older.created_at,
        sa.and_(SettingsRequest.created_at == older.created_at, SettingsRequest.id > older.id),
    )
    stmt = sa.select(SettingsRequest.id).where(
        SettingsRequest.device_pk == older.device_pk,
        SettingsRequest.status == SettingsStatus.APPLIED,
        SettingsRequest.backup_reserve_percentage.is_not(None),
        newer,
    )
    return await session.scalar(stmt.limit(1)) is not None
