"""Arrange and inspect the committed database of the worker tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from gridhive.db.session import unit_of_work
from gridhive.webhooks import endpoints, service
from gridhive.webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from gridhive.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from tests.factories import Tenant, create_tenant
from tests.workers.conftest import CommittedDb


async def tenant(db: CommittedDb, name: str = "Volt Batteries", kind: str = "oem") -> Tenant:
    async with db.sessionmaker() as session:
        return await create_tenant(session, kind=kind, name=name)


async def add_endpoint(
    db: CommittedDb, owner: Tenant, url: str = "https://oem.example/hook", **fields: Any
) -> WebhookEndpoint:
    async with unit_of_work(db.sessionmaker) as session:
        return await endpoints.create_endpoint(
            session,
            org_id=owner.org.id,
            data=WebhookEndpointCreate.model_validate({"url": url, **fields}),
            allow_private=True,
        )


async def update_endpoint(db: CommittedDb, endpoint_id: Any, **fields: Any) -> WebhookEndpoint:
    async with unit_of_work(db.sessionmaker) as session:
        endpoint = await session.get_one(WebhookEndpoint, endpoint_id)
        return await endpoints.update_endpoint(
            session, endpoint, WebhookEndpointUpdate.model_validate(fields), allow_private=True
        )


async def emit(
    db: CommittedDb,
    owner: Tenant,
    subjects: Sequence[str],
    event_type: str = "command.created",
    object_type: str = "command",
) -> None:
    """One message per subject, in order, in one transaction (as planning emits them)."""
    async with unit_of_work(db.sessionmaker) as session:
        await service.emit_many(
            session,
            event_type=event_type,
            object_type=object_type,
            messages=[(owner.org.id, s, {"id": s, "device_id": s}, None, None) for s in subjects],
        )


async def deliveries(db: CommittedDb) -> list[Delivery]:
    async with db.sessionmaker() as session:
        rows = await session.scalars(sa.select(Delivery).order_by(Delivery.seq, Delivery.id))
        return list(rows)


async def attempts(db: CommittedDb, delivery_id: Any) -> list[DeliveryAttempt]:
    async with db.sessionmaker() as session:
        rows = await session.scalars(
            sa.select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.attempt)
        )
        return list(rows)


async def endpoint(db: CommittedDb, endpoint_id: Any) -> WebhookEndpoint:
    async with db.sessionmaker() as session:
        return await session.get_one(WebhookEndpoint, endpoint_id)
