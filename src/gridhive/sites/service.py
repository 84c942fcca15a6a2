"""Sites of an OEM: looked up by the OEM's own id, created or updated on commissioning."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import TokenKind
from gridhive.auth.service import Principal
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.sites.errors import SiteNotFound, SiteTokenForAnotherSite
from gridhive.sites.models import Site
from gridhive.sites.schemas import SiteCommission, SiteUpdate


async def get_site(session: AsyncSession, *, tenant_id: uuid.UUID, site_id: str) -> Site | None:
    return await session.scalar(
        sa.select(Site).where(Site.tenant_id == tenant_id, Site.id == site_id)
    )


async def get_site_or_raise(session: AsyncSession, *, tenant_id: uuid.UUID, site_id: str) -> Site:
    site = await get_site(session, tenant_id=tenant_id, site_id=site_id)
    if site is None:
        raise SiteNotFound(f"No site with id '{site_id}'")
    return site


async def get_site_for_caller(session: AsyncSession, principal: Principal, site_id: str) -> Site:
    """The site a Mobile App API path names, as the caller may see it.

    A site token only opens its own site: any other site id of the same OEM, known or not, is a
    403 (Flip's rule). A client token sees all of its OEM's sites; other tenants' sites are 404.
    """
    site = await get_site(session, tenant_id=principal.org_id, site_id=site_id)
    if principal.via == "site" and (site is None or site.pk != principal.site_pk):
        raise SiteTokenForAnotherSite("This site token is for another site")
    if site is None:
        raise SiteNotFound(f"No site with id '{site_id}'")
    return site


async def get_site_by_pk(session: AsyncSession, site_pk: uuid.UUID) -> Site | None:
    return await session.get(Site, site_pk)


async def search_sites(
    session: AsyncSession, *, tenant_id: uuid.UUID, page: Page
) -> Sequence[Site]:
    stmt = (
        sa.select(Site)
        .where(Site.tenant_id == tenant_id)
        .order_by(Site.created_at, Site.pk)
        .offset(page.skip)
        .limit(page.limit)
    )
    return (await session.scalars(stmt)).all()


async def update_site(session: AsyncSession, site: Site, data: SiteUpdate) -> Site:
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(site, field, value)
    site.updated_at = utc_now()
    await session.flush()
    return site


async def upsert_site(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    data: SiteCommission,
    can_auto_enroll: bool | None = None,
) -> tuple[Site, bool]:
    """Create the site, or update the fields sent for an existing one. Returns (site, created)."""
    values = data.model_dump(exclude_unset=True, exclude={"id"})
    site = await get_site(session, tenant_id=tenant_id, site_id=data.id)
    created = site is None
    now = utc_now()
    if site is None:
        site = Site(tenant_id=tenant_id, id=data.id, commissioned_at=now, created_at=now)
        session.add(site)
    for field, value in values.items():
        setattr(site, field, value)
    if can_auto_enroll is not None:
        site.can_auto_enroll = can_auto_enroll
    site.updated_at = now
    await session.flush()
    return site, created


async def issue_site_token(
    session: AsyncSession, principal: Principal, site: Site, *, ttl: timedelta
) -> tuple[str, datetime]:
    return await auth_service.issue_token(
        session,
        kind=TokenKind.SITE,
        org_id=principal.org_id,
        api_key_id=principal.api_key_id,
        site_pk=site.pk,
        ttl=ttl,
    )


async def issue_session_token(
    session: AsyncSession, principal: Principal, site: Site, *, ttl: timedelta
) -> str:
    token, _ = await auth_service.issue_token(
        session,
        kind=TokenKind.SESSION,
        org_id=principal.org_id,
        api_key_id=principal.api_key_id,
        site_pk=site.pk,
        ttl=ttl,
    )
    return token
