"""Plain async factories over the services; each returns what a test needs to act as a user.

Each factory commits, as the owner of its unit of work: in the test session a commit releases a
savepoint, so the data survives a request's rollback and vanishes with the test's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import Organization, OrgKind
from gridhive.programs import service as program_service
from gridhive.programs.models import Program
from gridhive.programs.schemas import ProgramCreate


@dataclass(frozen=True)
class Tenant:
    org: Organization
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_tenant(session: AsyncSession, *, kind: str, name: str) -> Tenant:
    org = await auth_service.create_organization(session, kind=OrgKind(kind), name=name)
    _, key = await auth_service.create_api_key(session, org_id=org.id)
    await session.commit()
    return Tenant(org=org, key=key)


async def create_admin(session: AsyncSession) -> Tenant:
    return await create_tenant(session, kind="operator", name="Operator")


async def create_program(session: AsyncSession, utility: Tenant, **overrides: Any) -> Program:
    fields: dict[str, Any] = {"name": "Summer Peak Rewards", "description": "Peak shaving"}
    fields.update(overrides)
    program = await program_service.create_program(
        session, utility_id=utility.org.id, data=ProgramCreate.model_validate(fields)
    )
    await session.commit()
    return program
