from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.errors import InvalidCredentials
from gridhive.auth.models import AccessToken, TokenKind
from gridhive.devices.models import Device
from gridhive.enrollments.models import Enrollment
from gridhive.kit.time import utc_now
from gridhive.programs.models import Program
from gridhive.sites.models import Site
from gridhive.webhooks.models import OutboundMessage
from tests.factories import (
    Tenant,
    battery_fields,
    create_device,
    create_enrollment,
    create_program,
    create_site,
    site_token,
)


def commission_body(site_id: str = "site-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site": {"id": site_id, "zip_code": "94110", "state_code": "CA"},
        "devices": [battery_fields("battery-1")],
    }
    body.update(overrides)
    return body


async def commission(
    client: httpx.AsyncClient, oem: Tenant, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post("/v1/commission", json=body, headers={**oem.headers, **headers})


async def count(session: AsyncSession, model: type[Any]) -> int:
    return (await session.scalar(sa.select(sa.func.count()).select_from(model))) or 0


class TestCommission:
    async def test_creates_site_and_devices_and_lists_their_programs(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        in_ca = await create_program(session, utility, name="CA", state_codes=["CA"])
        await create_program(session, utility, name="TX", state_codes=["TX"])
        response = await commission(client, oem, commission_body())
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"site", "devices", "can_auto_enroll", "programs", "enrollment"}
        assert body["site"]["id"] == "site-1"
        assert body["site"]["created_at"].endswith("Z")
        assert [d["id"] for d in body["devices"]] == ["battery-1"]
        assert body["devices"][0]["site_id"] == "site-1"
        assert [p["id"] for p in body["programs"]] == [str(in_ca.id)]
        assert body["can_auto_enroll"] is None
        assert body["enrollment"] is None
        assert await count(session, Enrollment) == 0

    async def test_commissioning_again_updates_without_duplicating(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        await commission(client, oem, commission_body())
        body = commission_body(devices=[battery_fields("battery-1", product_name="PowerCell 20")])
        body["site"]["first_name"] = "Ada"
        again = await commission(client, oem, body)
        assert again.status_code == 200
        assert again.json()["site"]["first_name"] == "Ada"
        assert again.json()["devices"][0]["product_name"] == "PowerCell 20"
        assert (await count(session, Site), await count(session, Device)) == (1, 1)

    async def test_another_oem_commissioning_the_same_id_gets_its_own_site(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, other_oem: Tenant
    ) -> None:
        await commission(client, oem, commission_body())
        theirs = await commission(
            client, other_oem, commission_body(devices=[battery_fields("their-battery")])
        )
        assert theirs.status_code == 200
        assert await count(session, Site) == 2
        ours = await client.get("/v1/site/site-1/devices", headers=oem.headers)
        assert [d["id"] for d in ours.json()] == ["battery-1"]

    async def test_at_least_one_device(self, client: httpx.AsyncClient, oem: Tenant) -> None:
        response = await commission(client, oem, commission_body(devices=[]))
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["devices"]

    async def test_retry_with_the_same_idempotency_key_replays_the_answer(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, can_auto_enroll=True)
        body = commission_body(can_auto_enroll=True)
        first = await commission(client, oem, body, **{"Idempotency-Key": "install-42"})
        again = await commission(client, oem, body, **{"Idempotency-Key": "install-42"})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert (await count(session, Site), await count(session, Enrollment)) == (1, 1)
        other = await commission(
            client, oem, commission_body("site-2"), **{"Idempotency-Key": "install-42"}
        )
        assert other.status_code == 409

    @pytest.mark.parametrize("headers", ["utility", "site"])
    async def test_needs_the_oems_client_token(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        headers: str,
    ) -> None:
        site = await create_site(session, oem, "site-1")
        auth = utility.headers if headers == "utility" else await site_token(session, oem, site)
        response = await client.post("/v1/commission", json=commission_body(), headers=auth)
        assert response.status_code == 403


class TestAutoEnroll:
    async def test_enrolls_into_the_oldest_program_that_needs_nothing_more(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, name="Manual")
        await create_program(
            session, utility, name="T&C", can_auto_enroll=True, terms_and_conditions_version="v1"
        )
        form = [{"name": "account_id", "label": "Account", "type": "string"}]
        await create_program(
            session, utility, name="Form", can_auto_enroll=True, enrollment_form=form
        )
        chosen = await create_program(session, utility, name="Auto", can_auto_enroll=True)
        await create_program(session, utility, name="Later", can_auto_enroll=True)
        response = await commission(client, oem, commission_body(can_auto_enroll=True))
        assert response.status_code == 200
        enrollment = response.json()["enrollment"]
        assert enrollment["program_id"] == str(chosen.id)
        assert (enrollment["status"], enrollment["enroll_method"]) == ("ACTIVE", "AUTO_ENROLL")
        assert enrollment["device_ids"] == ["battery-1"]
        assert response.json()["can_auto_enroll"] is True
        created = await session.scalars(
            sa.select(OutboundMessage).where(OutboundMessage.event_type == "enrollment.created")
        )
        assert {m.org_id for m in created} == {oem.org.id, utility.org.id}

    async def test_optional_form_fields_do_not_stop_auto_enrollment(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        form = [{"name": "nickname", "label": "Nickname", "type": "string", "required": False}]
        await create_program(session, utility, can_auto_enroll=True, enrollment_form=form)
        response = await commission(client, oem, commission_body(can_auto_enroll=True))
        assert response.json()["enrollment"] is not None

    async def test_without_agreement_nothing_is_enrolled(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, can_auto_enroll=True)
        response = await commission(client, oem, commission_body(can_auto_enroll=False))
        assert response.json()["enrollment"] is None
        assert await count(session, Enrollment) == 0

    async def test_commissioning_again_returns_the_same_enrollment(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, can_auto_enroll=True)
        first = await commission(client, oem, commission_body(can_auto_enroll=True))
        again = await commission(client, oem, commission_body())  # agreement is remembered
        assert again.json()["enrollment"]["id"] == first.json()["enrollment"]["id"]
        assert await count(session, Enrollment) == 1

    async def test_a_homeowner_who_left_is_not_enrolled_again(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, can_auto_enroll=True)
        first = (await commission(client, oem, commission_body(can_auto_enroll=True))).json()
        await client.delete(
            f"/v1/site/site-1/enrollment/{first['enrollment']['id']}", headers=oem.headers
        )
        again = await commission(client, oem, commission_body(can_auto_enroll=True))
        assert again.json()["enrollment"] is None
        assert await count(session, Enrollment) == 1


class TestCommissionWithEnrollment:
    @pytest.fixture
    async def program(self, session: AsyncSession, utility: Tenant) -> Program:
        return await create_program(
            session, utility, can_auto_enroll=True, terms_and_conditions_version="2025-01-01"
        )

    def body(self, program: Program, **enrollment: Any) -> dict[str, Any]:
        fields = {
            "program_id": str(program.id),
            "has_agreed_to_terms_and_conditions": True,
            "terms_and_conditions_version": "2025-01-01",
            **enrollment,
        }
        return commission_body(enrollment=fields)

    async def test_enrolls_every_fitting_device_automatically(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, program: Program
    ) -> None:
        charger = {**battery_fields("charger-1"), "type": "EV_CHARGER", "attributes": {}}
        body = self.body(program)
        body["devices"].append(charger)
        response = await commission(client, oem, body)
        assert response.status_code == 200
        enrollment = response.json()["enrollment"]
        assert enrollment["device_ids"] == ["battery-1"]
        assert (enrollment["status"], enrollment["enroll_method"]) == ("ACTIVE", "AUTO_ENROLL")
        assert enrollment["terms_and_conditions_version"] == "2025-01-01"

    async def test_user_action_waits_for_the_utility(
        self, client: httpx.AsyncClient, oem: Tenant, program: Program
    ) -> None:
        response = await commission(client, oem, self.body(program, enroll_method="USER_ACTION"))
        assert response.json()["enrollment"]["status"] == "PENDING"

    async def test_commissioning_again_keeps_the_one_enrollment(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, program: Program
    ) -> None:
        first = await commission(client, oem, self.body(program))
        again = await commission(client, oem, self.body(program))
        assert again.status_code == 200
        assert again.json()["enrollment"]["id"] == first.json()["enrollment"]["id"]
        assert await count(session, Enrollment) == 1

    @pytest.mark.parametrize(
        ("enrollment", "path"),
        [
            ({"program_id": "00000000-0000-0000-0000-000000000000"}, "enrollment.program_id"),
            ({"device_ids": ["nope"]}, "enrollment.device_ids.0"),
            (
                {"has_agreed_to_terms_and_conditions": False},
                "enrollment.has_agreed_to_terms_and_conditions",
            ),
            ({"terms_and_conditions_version": "old"}, "enrollment.terms_and_conditions_version"),
        ],
    )
    async def test_a_failed_check_stores_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        program: Program,
        enrollment: dict[str, Any],
        path: str,
    ) -> None:
        response = await commission(client, oem, self.body(program, **enrollment))
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == [path]
        assert (await count(session, Site), await count(session, Device)) == (0, 0)
        assert await count(session, OutboundMessage) == 0

    async def test_program_without_auto_enrollment_is_422_on_enroll_method(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        manual = await create_program(session, utility)
        response = await commission(
            client, oem, commission_body(enrollment={"program_id": str(manual.id)})
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["enrollment.enroll_method"]
        assert await count(session, Site) == 0

    async def test_no_fitting_device_is_422(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        ev = await create_program(
            session, utility, can_auto_enroll=True, eligible_device_types=["EV_CHARGER"]
        )
        response = await commission(
            client, oem, commission_body(enrollment={"program_id": str(ev.id)})
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["enrollment.device_ids"]

    async def test_device_held_by_another_program_is_409_and_stores_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        utility: Tenant,
        program: Program,
    ) -> None:
        site = await create_site(session, oem, "site-1")
        battery = await create_device(session, site, "battery-1")
        await create_enrollment(session, site, await create_program(session, utility), [battery])
        body = self.body(program)
        body["site"]["first_name"] = "Ada"
        response = await commission(client, oem, body)
        assert response.status_code == 409
        assert [e["path"] for e in response.json()["errors"]] == ["enrollment.device_ids.0"]
        stored = await session.scalar(sa.select(Site.first_name).where(Site.pk == site.pk))
        assert stored is None


class TestSessions:
    async def test_unknown_site_is_commissioned_and_gets_a_single_use_token(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, state_codes=["CA"])
        body = {
            "site": {"id": "site-9", "zip_code": "94110", "state_code": "CA"},
            "devices": [battery_fields("battery-9")],
        }
        response = await client.post("/v1/sessions", json=body, headers=oem.headers)
        assert response.status_code == 200
        assert set(response.json()) == {"token", "has_programs"}
        assert response.json()["has_programs"] is True
        devices = await client.get("/v1/site/site-9/devices", headers=oem.headers)
        assert [d["id"] for d in devices.json()] == ["battery-9"]
        token = response.json()["token"]
        row = await auth_service.consume_session_token(session, token)
        assert row.expires_at == pytest.approx(
            utc_now() + timedelta(hours=1), abs=timedelta(minutes=1)
        )
        with pytest.raises(InvalidCredentials):
            await auth_service.consume_session_token(session, token)

    async def test_known_site_is_reused_as_it_is(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        site = await create_site(session, oem, "site-1", first_name="Ada")
        await create_device(session, site, "battery-1")
        await create_program(session, utility)
        response = await client.post(
            "/v1/sessions", json={"site": {"id": "site-1"}}, headers=oem.headers
        )
        assert response.status_code == 200
        assert response.json()["has_programs"] is True
        stored = await session.get_one(Site, site.pk, populate_existing=True)
        assert (stored.first_name, stored.updated_at) == ("Ada", site.updated_at)

    async def test_site_fields_sent_update_a_known_site(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "site-1", first_name="Ada")
        body = {"site": {"id": "site-1", "first_name": "Grace"}}
        assert (
            await client.post("/v1/sessions", json=body, headers=oem.headers)
        ).status_code == 200
        stored = await session.get_one(Site, site.pk, populate_existing=True)
        assert stored.first_name == "Grace"

    async def test_unknown_site_without_devices_has_no_programs(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility)
        response = await client.post(
            "/v1/sessions", json={"site": {"id": "new-site"}}, headers=oem.headers
        )
        assert response.status_code == 200
        assert response.json()["has_programs"] is False
        assert await count(session, Site) == 1

    async def test_no_program_in_the_territory_means_no_programs(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, state_codes=["TX"])
        body = {"site": {"id": "site-1", "state_code": "CA"}, "devices": [battery_fields("b-1")]}
        response = await client.post("/v1/sessions", json=body, headers=oem.headers)
        assert response.json()["has_programs"] is False

    async def test_token_lifetime_comes_from_the_settings(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, app: Any
    ) -> None:
        app.state.settings.auth.session_token_ttl_s = 600
        await client.post("/v1/sessions", json={"site": {"id": "site-1"}}, headers=oem.headers)
        row = await session.scalar(
            sa.select(AccessToken).where(AccessToken.kind == TokenKind.SESSION)
        )
        assert row is not None
        assert row.expires_at - row.created_at == pytest.approx(
            timedelta(seconds=600), abs=timedelta(seconds=5)
        )

    async def test_needs_the_oems_client_token(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant
    ) -> None:
        site = await create_site(session, oem, "site-1")
        response = await client.post(
            "/v1/sessions",
            json={"site": {"id": "site-1"}},
            headers=await site_token(session, oem, site),
        )
        assert response.status_code == 403
