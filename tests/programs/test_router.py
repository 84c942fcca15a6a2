from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import Tenant, create_program, create_site, site_token

BATTERY = {"device_type": "BATTERY", "total_capacity_wh": 13500, "total_power_w": 5000}


async def read_programs(client: httpx.AsyncClient, oem: Tenant, **params: Any) -> httpx.Response:
    return await client.get("/v1/programs", params={**BATTERY, **params}, headers=oem.headers)


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [program["name"] for program in response.json()]


class TestReadPrograms:
    async def test_answers_flips_program_object_only(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(
            session,
            utility,
            name="Peak",
            terms_and_conditions_version="2025-01-01",
            enrollment_form=[{"name": "account_id", "label": "Account", "type": "string"}],
        )
        response = await read_programs(client, oem)
        assert response.status_code == 200
        [program] = response.json()
        assert set(program) == {
            "id",
            "name",
            "description",
            "eligible_device_types",
            "can_auto_enroll",
            "minimum_reserve_percentage",
            "minimum_commitment_months",
            "participation_months",
            "earnings_for_site_upfront",
            "earnings_for_site_yearly",
            "enrollment_form",
            "terms_and_conditions_version",
            "terms_and_conditions_text",
            "created_at",
            "updated_at",
        }
        assert program["enrollment_form"][0]["name"] == "account_id"
        assert program["terms_and_conditions_version"] == "2025-01-01"

    async def test_only_programs_for_the_device_type(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, name="Battery")
        await create_program(session, utility, name="EV", eligible_device_types=["EV_CHARGER"])
        await create_program(
            session, utility, name="Both", eligible_device_types=["BATTERY", "EV_CHARGER"]
        )
        assert names(await read_programs(client, oem)) == ["Battery", "Both"]
        assert names(await read_programs(client, oem, device_type="EV_CHARGER")) == ["EV", "Both"]

    async def test_territory_by_zip_or_state(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, name="Anywhere")
        await create_program(session, utility, name="SF", zip_codes=["94110"])
        await create_program(session, utility, name="CA", state_codes=["CA"])
        assert names(await read_programs(client, oem)) == ["Anywhere"]
        assert names(await read_programs(client, oem, zip_code="94110")) == ["Anywhere", "SF"]
        assert names(await read_programs(client, oem, zip_code="94110-1234")) == ["Anywhere", "SF"]
        assert names(await read_programs(client, oem, state_code="ca")) == ["Anywhere", "CA"]
        assert names(await read_programs(client, oem, zip_code="10001", state_code="NY")) == [
            "Anywhere"
        ]

    async def test_sandbox_zips_match_test_programs_only(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, name="Anywhere")
        await create_program(session, utility, name="Test SF", is_test=True, zip_codes=["94110"])
        for zip_code in ("88800", "88801", "88802"):
            assert names(await read_programs(client, oem, zip_code=zip_code)) == ["Test SF"]
        assert names(await read_programs(client, oem, zip_code="88803")) == ["Anywhere"]
        assert names(await read_programs(client, oem, zip_code="94110")) == ["Anywhere", "Test SF"]

    async def test_minimum_battery_ratings(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, name="Big", minimum_battery_capacity_wh=13501)
        await create_program(session, utility, name="Exact", minimum_battery_capacity_wh=13500)
        await create_program(session, utility, name="Strong", minimum_battery_power_w=5001)
        assert names(await read_programs(client, oem)) == ["Exact"]
        assert names(await read_programs(client, oem, total_power_w=6000)) == ["Exact", "Strong"]

    async def test_battery_minimums_do_not_apply_to_chargers(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(
            session,
            utility,
            name="EV",
            eligible_device_types=["EV_CHARGER"],
            minimum_battery_capacity_wh=100_000,
        )
        assert names(await read_programs(client, oem, device_type="EV_CHARGER")) == ["EV"]

    async def test_program_without_participation_months_is_not_offered(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        await create_program(session, utility, name="Dormant", participation_months=[])
        await create_program(session, utility, name="Summer", participation_months=[6, 7, 8])
        assert names(await read_programs(client, oem)) == ["Summer"]

    async def test_paging_after_eligibility(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        for name in ("A", "B", "C"):
            await create_program(session, utility, name=name)
            await create_program(session, utility, name=f"{name} (TX)", state_codes=["TX"])
        assert names(await read_programs(client, oem, skip=1, limit=1)) == ["B"]

    @pytest.mark.parametrize(
        ("params", "path"),
        [
            ({"device_type": None}, "device_type"),
            ({"device_type": "SOLAR"}, "device_type"),
            ({"total_capacity_wh": None}, "total_capacity_wh"),
            ({"total_capacity_wh": 0}, "total_capacity_wh"),
            ({"total_power_w": None}, "total_power_w"),
            ({"total_power_w": 0}, "total_power_w"),
            ({"zip_code": "9411"}, "zip_code"),
            ({"state_code": "XX"}, "state_code"),
        ],
    )
    async def test_bad_query_is_422_naming_the_parameter(
        self, client: httpx.AsyncClient, oem: Tenant, params: dict[str, Any], path: str
    ) -> None:
        query = {k: v for k, v in {**BATTERY, **params}.items() if v is not None}
        response = await client.get("/v1/programs", params=query, headers=oem.headers)
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == [path]

    async def test_needs_the_oems_client_token(
        self, client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, utility: Tenant
    ) -> None:
        site = await create_site(session, oem, "site-1")
        for headers in (utility.headers, await site_token(session, oem, site)):
            response = await client.get("/v1/programs", params=BATTERY, headers=headers)
            assert response.status_code == 403
        assert (await client.get("/v1/programs", params=BATTERY)).status_code == 401
