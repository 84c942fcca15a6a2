"""A program's groups through the Utility API (flip-api §13.2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.enrollments.models import Enrollment
from gridhive.programs.models import Group, Program, SiteGroup
from tests.factories import (
    Tenant,
    create_device,
    create_enrollment,
    create_group,
    create_program,
    create_site,
)


@pytest.fixture
async def program(session: AsyncSession, utility: Tenant) -> Program:
    return await create_program(session, utility)


def groups_url(program: Program, group_id: str | None = None) -> str:
    base = f"/v1/programs/{program.id}/groups"
    return base if group_id is None else f"{base}/{group_id}"


async def enrolled_in(
    client: httpx.AsyncClient,
    session: AsyncSession,
    utility: Tenant,
    oem: Tenant,
    program: Program,
    *group_ids: str,
) -> Enrollment:
    """site-1 enrolled in the program and put in `group_ids` through the enrollment PATCH."""
    site = await create_site(session, oem, "site-1")
    enrollment = await create_enrollment(
        session, site, program, [await create_device(session, site, "b-1")]
    )
    response = await client.patch(
        f"/v1/enrollments/{enrollment.id}",
        json={"group_ids": list(group_ids)},
        headers=utility.headers,
    )
    assert response.status_code == 200, response.text
    return enrollment


async def site_groups(client: httpx.AsyncClient, utility: Tenant, enrollment: Enrollment) -> Any:
    response = await client.get(f"/v1/enrollments/{enrollment.id}", headers=utility.headers)
    assert response.status_code == 200
    return response.json()["site"]["groups"]


class TestCreateAndList:
    async def test_create_answers_id_and_name_and_list_is_oldest_first(
        self, client: httpx.AsyncClient, utility: Tenant, program: Program
    ) -> None:
        for gid, name in (("LZ_HOUSTON", "Houston"), ("zone-a", "Zone A"), ("z9", "Nine")):
            created = await client.post(
                groups_url(program), json={"id": gid, "name": name}, headers=utility.headers
            )
            assert created.status_code == 200, created.text
            assert created.json() == {"id": gid, "name": name}
        listed = await client.get(groups_url(program), headers=utility.headers)
        assert [g["id"] for g in listed.json()] == ["LZ_HOUSTON", "zone-a", "z9"]
        paged = await client.get(f"{groups_url(program)}?skip=1&limit=1", headers=utility.headers)
        assert paged.json() == [{"id": "zone-a", "name": "Zone A"}]

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            ({"id": "has space", "name": "x"}, "id"),
            ({"id": "semi;colon", "name": "x"}, "id"),
            ({"id": "", "name": "x"}, "id"),
            ({"id": "a" * 101, "name": "x"}, "id"),
            ({"id": "ok", "name": ""}, "name"),
            ({"id": "ok", "name": "n" * 201}, "name"),
            ({"name": "x"}, "id"),
        ],
    )
    async def test_bad_ids_and_names_are_422(
        self,
        client: httpx.AsyncClient,
        utility: Tenant,
        program: Program,
        body: dict[str, Any],
        path: str,
    ) -> None:
        response = await client.post(groups_url(program), json=body, headers=utility.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == path

    async def test_longest_id_and_name_are_accepted(
        self, client: httpx.AsyncClient, utility: Tenant, program: Program
    ) -> None:
        body = {"id": "a" * 100, "name": "n" * 200}
        response = await client.post(groups_url(program), json=body, headers=utility.headers)
        assert response.status_code == 200

    async def test_an_id_in_use_in_the_program_is_409_but_free_in_another(
        self, client: httpx.AsyncClient, session: AsyncSession, utility: Tenant, program: Program
    ) -> None:
        await create_group(session, program, "zone-a")
        again = await client.post(
            groups_url(program), json={"id": "zone-a", "name": "Again"}, headers=utility.headers
        )
        assert again.status_code == 409
        assert again.json()["errors"][0]["path"] == "id"
        other = await create_program(session, utility, name="Winter")
        elsewhere = await client.post(
            groups_url(other), json={"id": "zone-a", "name": "Again"}, headers=utility.headers
        )
        assert elsewhere.status_code == 200


class TestUpdate:
    async def test_rename(
        self, client: httpx.AsyncClient, session: AsyncSession, utility: Tenant, program: Program
    ) -> None:
        await create_group(session, program, "zone-a", "Zone A")
        response = await client.patch(
            groups_url(program, "zone-a"), json={"name": "West"}, headers=utility.headers
        )
        assert response.status_code == 200
        assert response.json() == {"id": "zone-a", "name": "West"}

    async def test_a_new_id_keeps_the_members(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        program: Program,
    ) -> None:
        await create_group(session, program, "zone-a", "Zone A")
        enrollment = await enrolled_in(client, session, utility, oem, program, "zone-a")
        response = await client.patch(
            groups_url(program, "zone-a"), json={"id": "zone-b"}, headers=utility.headers
        )
        assert response.json() == {"id": "zone-b", "name": "Zone A"}
        assert await site_groups(client, utility, enrollment) == [
            {"id": "zone-b", "name": "Zone A"}
        ]
        gone = await client.patch(
            groups_url(program, "zone-a"), json={"name": "x"}, headers=utility.headers
        )
        assert gone.status_code == 404

    async def test_an_id_in_use_is_409_and_its_own_id_is_fine(
        self, client: httpx.AsyncClient, session: AsyncSession, utility: Tenant, program: Program
    ) -> None:
        await create_group(session, program, "zone-a")
        await create_group(session, program, "zone-b")
        clash = await client.patch(
            groups_url(program, "zone-a"), json={"id": "zone-b"}, headers=utility.headers
        )
        assert clash.status_code == 409
        assert clash.json()["errors"][0]["path"] == "id"
        same = await client.patch(
            groups_url(program, "zone-a"),
            json={"id": "zone-a", "name": "A"},
            headers=utility.headers,
        )
        assert same.status_code == 200
        assert same.json() == {"id": "zone-a", "name": "A"}

    async def test_bad_new_id_is_422(
        self, client: httpx.AsyncClient, session: AsyncSession, utility: Tenant, program: Program
    ) -> None:
        await create_group(session, program, "zone-a")
        response = await client.patch(
            groups_url(program, "zone-a"), json={"id": "a b"}, headers=utility.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "id"


class TestDelete:
    async def test_delete_removes_memberships_and_keeps_the_enrollment(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        program: Program,
    ) -> None:
        await create_group(session, program, "zone-a")
        await create_group(session, program, "zone-b")
        enrollment = await enrolled_in(client, session, utility, oem, program, "zone-a", "zone-b")
        response = await client.delete(groups_url(program, "zone-a"), headers=utility.headers)
        assert response.status_code == 204
        assert response.content == b""
        assert [g["id"] for g in await site_groups(client, utility, enrollment)] == ["zone-b"]
        read = await client.get(f"/v1/enrollments/{enrollment.id}", headers=utility.headers)
        assert read.json()["status"] == "PENDING"
        listed = await client.get(groups_url(program), headers=utility.headers)
        assert [g["id"] for g in listed.json()] == ["zone-b"]
        rows = await session.scalar(sa.select(sa.func.count()).select_from(SiteGroup))
        assert rows == 1
        again = await client.delete(groups_url(program, "zone-a"), headers=utility.headers)
        assert again.status_code == 404

    async def test_a_deleted_id_can_be_created_again_empty(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        utility: Tenant,
        oem: Tenant,
        program: Program,
    ) -> None:
        await create_group(session, program, "zone-a")
        enrollment = await enrolled_in(client, session, utility, oem, program, "zone-a")
        await client.delete(groups_url(program, "zone-a"), headers=utility.headers)
        await client.post(
            groups_url(program), json={"id": "zone-a", "name": "New"}, headers=utility.headers
        )
        assert await site_groups(client, utility, enrollment) == []


class TestAccess:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("POST", "", {"id": "zone-x", "name": "X"}),
            ("PATCH", "/zone-a", {"name": "Mine now"}),
            ("DELETE", "/zone-a", None),
        ],
    )
    async def test_another_utilitys_program_is_404_and_stays_as_it_was(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        other_utility: Tenant,
        program: Program,
        method: str,
        suffix: str,
        body: dict[str, Any] | None,
    ) -> None:
        await create_group(session, program, "zone-a", "Zone A")
        response = await client.request(
            method, groups_url(program) + suffix, json=body, headers=other_utility.headers
        )
        assert response.status_code == 404
        stored = (
            await session.scalars(sa.select(Group).execution_options(populate_existing=True))
        ).all()
        assert [(g.id, g.name) for g in stored] == [("zone-a", "Zone A")]

    @pytest.mark.parametrize(
        ("method", "suffix"),
        [("GET", ""), ("POST", ""), ("PATCH", "/zone-a"), ("DELETE", "/zone-a")],
    )
    async def test_oem_key_is_403(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        oem: Tenant,
        program: Program,
        method: str,
        suffix: str,
    ) -> None:
        await create_group(session, program, "zone-a")
        body = {"id": "zone-x", "name": "X"} if method in ("POST", "PATCH") else None
        response = await client.request(
            method, groups_url(program) + suffix, json=body, headers=oem.headers
        )
        assert response.status_code == 403

    async def test_unknown_program_is_404(self, client: httpx.AsyncClient, utility: Tenant) -> None:
        url = "/v1/programs/00000000-0000-0000-0000-000000000000/groups"
        assert (await client.get(url, headers=utility.headers)).status_code == 404
