"""Credentials that just worked are remembered for a few seconds (auth.service.credential_cache):
revocation must still win, at once in this process and within the cache's TTL elsewhere."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import ApiKey, OrgKind
from gridhive.auth.service import CREDENTIAL_CACHE_TTL_S, CredentialCache, Principal
from gridhive.kit.ids import hash_secret
from gridhive.kit.time import frozen_time, utc_now
from tests.factories import Tenant


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fresh, empty cache on a clock the test moves."""
    fake = FakeClock()
    cache = CredentialCache(ttl_s=CREDENTIAL_CACHE_TTL_S, max_entries=100, clock=fake)
    monkeypatch.setattr(auth_service, "credential_cache", cache)
    return fake


async def key_id(client: httpx.AsyncClient, admin: Tenant, tenant: Tenant) -> str:
    keys = (await client.get(f"/admin/v1/orgs/{tenant.org.id}/keys", headers=admin.headers)).json()
    return str(keys[0]["id"])


async def revoke_elsewhere(session: AsyncSession, tenant: Tenant) -> None:
    """What `gridhive admin revoke-key` in another process does: the row changes, this
    process is not told."""
    await session.execute(
        sa.update(ApiKey).where(ApiKey.org_id == tenant.org.id).values(revoked_at=utc_now())
    )
    await session.commit()


class TestRevocation:
    async def test_a_key_revoked_here_stops_at_once_even_just_after_use(
        self, client: httpx.AsyncClient, admin: Tenant, oem: Tenant, clock: FakeClock
    ) -> None:
        assert (await client.get("/v1/commands", headers=oem.headers)).status_code == 200
        revoked = await client.delete(
            f"/admin/v1/keys/{await key_id(client, admin, oem)}", headers=admin.headers
        )
        assert revoked.status_code == 204
        response = await client.get("/v1/commands", headers=oem.headers)
        assert response.status_code == 401
        assert response.json()["message"] == "Invalid or revoked API key"

    async def test_a_key_revoked_by_another_process_stops_within_the_ttl(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        clock: FakeClock,
    ) -> None:
        assert (await client.get("/v1/commands", headers=oem.headers)).status_code == 200
        await revoke_elsewhere(session, oem)
        # Until the entry is CREDENTIAL_CACHE_TTL_S old, this process still trusts the key...
        clock.now += CREDENTIAL_CACHE_TTL_S - 0.1
        assert (await client.get("/v1/commands", headers=oem.headers)).status_code == 200
        # ...and then looks it up again.
        clock.now += 0.1
        assert (await client.get("/v1/commands", headers=oem.headers)).status_code == 401

    async def test_a_lookup_under_way_during_a_revocation_is_not_kept(self) -> None:
        cache = CredentialCache(ttl_s=5, max_entries=10)
        principal = Principal(org_id=uuid.uuid4(), kind=OrgKind.OEM, via="key")
        began_in = cache.generation
        cache.forget_all()  # a revocation commits while the lookup runs
        cache.put("digest", principal, looked_up_in=began_in)
        assert cache.get("digest") is None


class TestTokens:
    async def test_a_cached_oauth_token_still_expires(
        self, client: httpx.AsyncClient, oem: Tenant, clock: FakeClock
    ) -> None:
        public_id, secret = oem.key.removeprefix("ghk_").split("_", 1)
        start = utc_now()
        with frozen_time(start):
            token = (
                await client.post(
                    "/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": public_id,
                        "client_secret": secret,
                    },
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/v1/commands", headers=headers)).status_code == 200
        with frozen_time(start + timedelta(hours=1)):
            response = await client.get("/v1/commands", headers=headers)
        assert response.status_code == 401
        assert "expired" in response.json()["message"]


class TestBounds:
    async def test_wrong_credentials_are_not_remembered(
        self, client: httpx.AsyncClient, oem: Tenant, clock: FakeClock
    ) -> None:
        wrong = {"Authorization": f"Bearer {oem.key}x"}
        assert (await client.get("/v1/commands", headers=wrong)).status_code == 401
        assert auth_service.credential_cache.get(hash_secret(oem.key + "x")) is None

    async def test_the_oldest_entry_goes_when_full(self) -> None:
        cache = CredentialCache(ttl_s=5, max_entries=2)
        principal = Principal(org_id=uuid.uuid4(), kind=OrgKind.OEM, via="key")
        for digest in ("a", "b", "c"):
            cache.put(digest, principal, looked_up_in=cache.generation)
        assert [cache.get(d) is not None for d in ("a", "b", "c")] == [False, True, True]
