"""Organisations, API keys and tokens; turning a bearer credential into a Principal."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.errors import ApiKeyNotFound, InvalidCredentials, OrganizationNotFound
from gridhive.auth.models import AccessToken, ApiKey, Organization, OrgKind, TokenKind
from gridhive.kit.ids import hash_secret, random_token, secret_matches
from gridhive.kit.time import utc_now

KEY_PREFIX = "ghk_"
TOKEN_PREFIXES = {
    TokenKind.SITE: "ghs_",
    TokenKind.SESSION: "ghp_",
    TokenKind.OAUTH: "gho_",
    TokenKind.PORTAL: "ghw_",
    TokenKind.DASHBOARD: "ghd_",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, its kind, and how narrowly the credential is scoped."""

    org_id: uuid.UUID
    kind: OrgKind
    via: Literal["key", "oauth", "site"]
    api_key_id: uuid.UUID | None = None
    site_pk: uuid.UUID | None = None


# Credential cache ------------------------------------------------------------------------------
# Every API call used to look its bearer credential up in the database. A device maker's cloud
# acknowledging thousands of commands a second sends the same key each time, so the principal
# behind a credential that just worked is kept for a few seconds.
#
# How long a revoked key can keep working:
# - revoked in this process (Admin API, dashboard): not at all. Revoking forgets every entry,
#   when the revocation is flushed and again when it commits; a lookup that was under way
#   meanwhile (and may have read the key as still valid) is not stored.
# - revoked by another process (`gridhive admin revoke-key`, another API process): at most
#   CREDENTIAL_CACHE_TTL_S, after which the credential is looked up again.
# Tokens keep their expiry: a cached token past its `expires_at` is refused as before.

CREDENTIAL_CACHE_TTL_S = 5.0  # the revocation delay across processes; ~1 lookup per 5 s per key
CREDENTIAL_CACHE_MAX = 10_000  # entries; the oldest goes first


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    fresh_until: float  # on the cache's clock
    expires_at: datetime | None  # a token's own expiry


class CredentialCache:
    """Principals of credentials that authenticated, by the credential's SHA-256, for a while.

    Only successes are kept: a wrong or unknown credential is looked up every time.
    """

    def __init__(
        self, *, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self.generation = 0  # moves on at every revocation
        self._entries: dict[str, _Cached] = {}

    def get(self, digest: str) -> _Cached | None:
        entry = self._entries.get(digest)
        if entry is not None and entry.fresh_until <= self.clock():
            del self._entries[digest]
            return None
        return entry

    def put(
        self,
        digest: str,
        principal: Principal,
        *,
        looked_up_in: int,
        expires_at: datetime | None = None,
    ) -> None:
        """Keep `principal`, unless a revocation happened since the lookup began
        (generation `looked_up_in`): the lookup may have read a key that is now revoked."""
        if looked_up_in != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = _Cached(principal, self.clock() + self.ttl_s, expires_at)

    def forget_all(self) -> None:
        self.generation += 1
        self._entries.clear()


credential_cache = CredentialCache(ttl_s=CREDENTIAL_CACHE_TTL_S, max_entries=CREDENTIAL_CACHE_MAX)


# Organisations -------------------------------------------------------------------------------


async def create_organization(session: AsyncSession, *, kind: OrgKind, name: str) -> Organization:
    org = Organization(kind=kind, name=name)
    session.add(org)
    await session.flush()
    return org


async def search_organizations(
    session: AsyncSession, *, kind: OrgKind | None = None
) -> Sequence[Organization]:
    stmt = sa.select(Organization).order_by(Organization.created_at, Organization.id)
    if kind is not None:
        stmt = stmt.where(Organization.kind == kind)
    return (await session.scalars(stmt)).all()


async def get_organization_or_raise(
    session: AsyncSession, org_id: uuid.UUID, *, kind: OrgKind | None = None
) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None or (kind is not None and org.kind != kind):
        label = kind.value if kind else "organization"
        raise OrganizationNotFound(f"No {label} with id {org_id}")
    return org


# API keys ------------------------------------------------------------------------------------


def key_prefix(key: ApiKey) -> str:
    return f"{KEY_PREFIX}{key.public_id}"


async def create_api_key(
    session: AsyncSession, *, org_id: uuid.UUID, name: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its full text, which is never stored."""
    await get_organization_or_raise(session, org_id)
    public_id = secrets.token_hex(8)
    secret = random_token(32)
    key = ApiKey(org_id=org_id, public_id=public_id, secret_hash=hash_secret(secret), name=name)
    session.add(key)
    await session.flush()
    return key, f"{KEY_PREFIX}{public_id}_{secret}"


async def search_api_keys(session: AsyncSession, *, org_id: uuid.UUID) -> Sequence[ApiKey]:
    stmt = sa.select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at)
    return (await session.scalars(stmt)).all()


async def revoke_api_key(
    session: AsyncSession, key_id: uuid.UUID, *, org_id: uuid.UUID | None = None
) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or (org_id is not None and key.org_id != org_id):
        raise ApiKeyNotFound(f"No API key with id {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utc_now()
        await session.flush()
        _forget_credentials_now_and_at_commit(session)
    return key


def _forget_credentials_now_and_at_commit(session: AsyncSession) -> None:
    """Empty the credential cache, and again once the revocation is committed: a request
    authenticated in between read the key as it was before the commit."""
    credential_cache.forget_all()

    def after_commit(_session: Any) -> None:
        credential_cache.forget_all()

    sa.event.listen(session.sync_session, "after_commit", after_commit, once=True)


async def _active_key(session: AsyncSession, public_id: str, secret: str) -> ApiKey | None:
    key = await session.scalar(sa.select(ApiKey).where(ApiKey.public_id == public_id))
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        return None
    return key


def split_key(text: str) -> tuple[str, str] | None:
    if not text.startswith(KEY_PREFIX):
        return None
    public_id, sep, secret = text[len(KEY_PREFIX) :].partition("_")
    return (public_id, secret) if sep and public_id and secret else None


# Tokens --------------------------------------------------------------------------------------


async def issue_token(
    session: AsyncSession,
    *,
    kind: TokenKind,
    org_id: uuid.UUID,
    ttl: timedelta,
    api_key_id: uuid.UUID | None = None,
    site_pk: uuid.UUID | None = None,
) -> tuple[str, datetime]:
    token = TOKEN_PREFIXES[kind] + random_token(32)
    expires_at = utc_now() + ttl
    session.add(
        AccessToken(
            kind=kind,
            token_hash=hash_secret(token),
            org_id=org_id,
            api_key_id=api_key_id,
            site_pk=site_pk,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return token, expires_at


async def issue_oauth_token(
    session: AsyncSession, *, client_id: str, client_secret: str, ttl: timedelta
) -> str:
    """Client-credentials grant: the client id is the key's public id, the secret its secret."""
    key = await _active_key(session, client_id, client_secret)
    if key is None:
        raise InvalidCredentials("Unknown client or wrong secret", code="invalid_client")
    token, _ = await issue_token(
        session, kind=TokenKind.OAUTH, org_id=key.org_id, ttl=ttl, api_key_id=key.id
    )
    return token


async def consume_session_token(session: AsyncSession, token: str) -> AccessToken:
    """Use a single-use session token once; a second use, or an old token, is refused."""
    row = await session.scalar(
        sa.select(AccessToken).where(
            AccessToken.token_hash == hash_secret(token), AccessToken.kind == TokenKind.SESSION
        )
    )
    now = utc_now()
    if row is None or row.consumed_at is not None or row.expires_at <= now:
        raise InvalidCredentials("This session link is invalid, expired or already used")
    row.consumed_at = now
    await session.flush()
    return row


def remembered(credential: str) -> Principal | None:
    """The principal of a credential that worked in the last few seconds and has not expired
    since, without asking the database; None when `authenticate` has to."""
    cached = credential_cache.get(hash_secret(credential))
    if cached is None or (cached.expires_at is not None and cached.expires_at <= utc_now()):
        return None
    return cached.principal


async def authenticate(session: AsyncSession, credential: str) -> Principal:
    """Resolve a bearer credential (API key, OAuth token or site token) to its Principal.

    Served from `credential_cache` when the credential worked in the last few seconds.
    """
    digest = hash_secret(credential)  # the credential itself is never kept
    if cached := credential_cache.get(digest):
        if cached.expires_at is not None and cached.expires_at <= utc_now():
            raise InvalidCredentials("The token has expired; request a new one")
        return cached.principal
    generation = credential_cache.generation
    principal, expires_at = await _look_up(session, credential)
    credential_cache.put(digest, principal, looked_up_in=generation, expires_at=expires_at)
    return principal


async def _look_up(session: AsyncSession, credential: str) -> tuple[Principal, datetime | None]:
    """The principal behind a credential, from the database; with a token's expiry."""
    if parts := split_key(credential):
        key = await _active_key(session, *parts)
        if key is None:
            raise InvalidCredentials("Invalid or revoked API key")
        org = await get_organization_or_raise(session, key.org_id)
        return Principal(org_id=org.id, kind=org.kind, via="key", api_key_id=key.id), None
    return await _authenticate_token(session, credential)


async def _authenticate_token(session: AsyncSession, credential: str) -> tuple[Principal, datetime]:
    row = (
        await session.execute(
            sa.select(AccessToken, Organization.kind, ApiKey.revoked_at)
            .join(Organization, Organization.id == AccessToken.org_id)
            .outerjoin(ApiKey, ApiKey.id == AccessToken.api_key_id)
            .where(
                AccessToken.token_hash == hash_secret(credential),
                AccessToken.kind.in_([TokenKind.SITE, TokenKind.OAUTH]),
            )
        )
    ).one_or_none()
    if row is None:
        raise InvalidCredentials("Invalid bearer token")
    token, kind, key_revoked_at = row
    if token.expires_at <= utc_now():
        raise InvalidCredentials("The token has expired; request a new one")
    if key_revoked_at is not None:
        raise InvalidCredentials("The API key behind this token was revoked")
    via: Literal["oauth", "site"] = "site" if token.kind == TokenKind.SITE else "oauth"
    principal = Principal(
        org_id=token.org_id, kind=kind, via=via, api_key_id=token.api_key_id, site_pk=token.site_pk
    )
    return principal, token.expires_at


# Web sessions ----------------------------------------------------------------------------------
# The portal and the dashboard keep their sign-in in a cookie holding a token of their own kind
# (stored hashed like every token), so a stolen cookie is never an API credential and signing
# out revokes it server-side.

WEB_SESSION_TTL = timedelta(hours=12)


async def sign_in_with_key(session: AsyncSession, key_text: str) -> tuple[str, Principal]:
    """Dashboard sign-in: a valid, unrevoked API key of a utility or OEM opens a web session."""
    parts = split_key(key_text.strip())
    key = await _active_key(session, *parts) if parts else None
    if key is None:
        raise InvalidCredentials("This API key is not valid or has been revoked")
    org = await get_organization_or_raise(session, key.org_id)
    token, _ = await issue_token(
        session, kind=TokenKind.DASHBOARD, org_id=org.id, ttl=WEB_SESSION_TTL, api_key_id=key.id
    )
    return token, Principal(org_id=org.id, kind=org.kind, via="key", api_key_id=key.id)


async def open_portal(session: AsyncSession, session_token: str) -> tuple[str, Principal]:
    """Portal entry: a single-use session token becomes a portal session for its one site."""
    used = await consume_session_token(session, session_token)
    token, _ = await issue_token(
        session,
        kind=TokenKind.PORTAL,
        org_id=used.org_id,
        ttl=WEB_SESSION_TTL,
        site_pk=used.site_pk,
    )
    org = await get_organization_or_raise(session, used.org_id)
    return token, Principal(org_id=org.id, kind=org.kind, via="site", site_pk=used.site_pk)


async def authenticate_web(session: AsyncSession, token: str, kind: TokenKind) -> Principal:
    """The principal behind a portal or dashboard cookie; InvalidCredentials when it is stale."""
    row = (
        await session.execute(
            sa.select(AccessToken, Organization.kind, ApiKey.revoked_at)
            .join(Organization, Organization.id == AccessToken.org_id)
            .outerjoin(ApiKey, ApiKey.id == AccessToken.api_key_id)
            .where(AccessToken.token_hash == hash_secret(token), AccessToken.kind == kind)
        )
    ).one_or_none()
    if row is None or row[0].expires_at <= utc_now() or row[0].consumed_at is not None:
        raise InvalidCredentials("Your session has ended; sign in again")
    access, org_kind, key_revoked_at = row
    if key_revoked_at is not None:
        raise InvalidCredentials("The API key behind this session was revoked")
    via: Literal["key", "site"] = "site" if kind == TokenKind.PORTAL else "key"
    return Principal(
        org_id=access.org_id,
        kind=org_kind,
        via=via,
        api_key_id=access.api_key_id,
        site_pk=access.site_pk,
    )


async def end_web_session(session: AsyncSession, token: str) -> None:
    """Sign out: the cookie's token stops working at once (marked consumed)."""
    await session.execute(
        sa.update(AccessToken)
        .where(
            AccessToken.token_hash == hash_secret(token),
            AccessToken.kind.in_([TokenKind.PORTAL, TokenKind.DASHBOARD]),
        )
        .values(consumed_at=utc_now())
    )
