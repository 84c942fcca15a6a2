"""Fan-out: every message becomes deliveries in the transaction that emitted it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gridhive.webhooks import endpoints, service
from gridhive.webhooks.models import (
    Channel,
    Delivery,
    DeliveryMode,
    DeliveryState,
    EndpointStatus,
    OutboundMessage,
    WebhookEndpoint,
)
from gridhive.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from tests.factories import Tenant


async def add_endpoint(
    session: AsyncSession, tenant: Tenant, url: str = "https://oem.example/hook", **fields: Any
) -> WebhookEndpoint:
    data = WebhookEndpointCreate.model_validate({"url": url, **fields})
    endpoint = await endpoints.create_endpoint(
        session, org_id=tenant.org.id, data=data, allow_private=True
    )
    await session.commit()
    return endpoint


async def emit_commands(session: AsyncSession, tenant: Tenant, n: int, event_type: str) -> None:
    await service.emit_many(
        session,
        event_type=event_type,
        object_type="command",
        messages=[(tenant.org.id, f"battery-{i}", {"id": str(i)}, None, None) for i in range(n)],
    )


async def deliveries(session: AsyncSession) -> list[tuple[Delivery, OutboundMessage]]:
    rows = await session.execute(
        sa.select(Delivery, OutboundMessage)
        .join(OutboundMessage, OutboundMessage.id == Delivery.message_id)
        .order_by(Delivery.seq)
    )
    return [(d, m) for d, m in rows]


class TestWebhookFanOut:
    async def test_every_subscribed_endpoint_gets_each_message_in_order(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        everything = await add_endpoint(session, oem, "https://a.example/hook")
        commands = await add_endpoint(
            session, oem, "https://b.example/hook", event_types=["command.created"]
        )
        await add_endpoint(session, oem, "https://c.example/hook", event_types=["event.created"])

        await emit_commands(session, oem, 3, "command.created")
        await service.emit(
            session,
            org_id=oem.org.id,
            event_type="enrollment.created",
            object_type="enrollment",
            subject_id="site-1",
            event_object={"id": "e1"},
        )

        rows = await deliveries(session)
        to_a = [m.subject_id for d, m in rows if d.endpoint_id == everything.id]
        to_b = [m.subject_id for d, m in rows if d.endpoint_id == commands.id]
        assert to_a == ["battery-0", "battery-1", "battery-2", "site-1"]
        assert to_b == ["battery-0", "battery-1", "battery-2"]
        assert {d.state for d, _ in rows} == {DeliveryState.PENDING}
        assert {d.channel for d, _ in rows} == {Channel.WEBHOOK}
        seqs = [d.seq for d, _ in rows]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)

    async def test_other_tenants_and_disabled_endpoints_get_nothing(
        self, session: AsyncSession, oem: Tenant, other_oem: Tenant
    ) -> None:
        mine = await add_endpoint(session, oem)
        disabled = await add_endpoint(session, oem, "https://off.example/hook")
        await endpoints.update_endpoint(
            session, disabled, WebhookEndpointUpdate(status="disabled"), allow_private=True
        )
        await add_endpoint(session, other_oem)

        await emit_commands(session, oem, 2, "command.created")

        assert {d.endpoint_id for d, _ in await deliveries(session)} == {mine.id}

    async def test_a_suspended_endpoint_keeps_collecting_its_backlog(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        endpoint = await add_endpoint(session, oem)
        endpoint.status = EndpointStatus.SUSPENDED
        await session.commit()

        await emit_commands(session, oem, 2, "command.created")

        assert [d.endpoint_id for d, _ in await deliveries(session)] == [endpoint.id] * 2

    async def test_no_endpoint_no_delivery(self, session: AsyncSession, oem: Tenant) -> None:
        await emit_commands(session, oem, 5, "command.created")
        assert await deliveries(session) == []

    async def test_rollback_takes_the_deliveries_with_the_messages(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        await add_endpoint(session, oem)
        nested = await session.begin_nested()
        await emit_commands(session, oem, 3, "command.created")
        await nested.rollback()
        assert await deliveries(session) == []


class TestDeliveryModes:
    async def test_mqtt_mode_makes_one_mqtt_delivery_per_message(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        await add_endpoint(session, oem)  # ignored while the mode is mqtt
        await endpoints.set_delivery_mode(
            session, oem.org.id, DeliveryMode.MQTT, mqtt_available=True
        )
        await emit_commands(session, oem, 2, "command.created")

        rows = await deliveries(session)
        assert [(d.channel, d.endpoint_id) for d, _ in rows] == [(Channel.MQTT, None)] * 2

    async def test_polling_mode_pushes_nothing(self, session: AsyncSession, oem: Tenant) -> None:
        await add_endpoint(session, oem)
        await endpoints.set_delivery_mode(
            session, oem.org.id, DeliveryMode.POLLING, mqtt_available=True
        )
        await emit_commands(session, oem, 2, "command.updated")
        assert await deliveries(session) == []
        # The messages themselves are still recorded.
        count = await session.scalar(sa.select(sa.func.count()).select_from(OutboundMessage))
        assert count == 2


class TestBulk:
    @pytest.mark.parametrize("n", [20_000])
    async def test_a_large_emit_many_fans_out_in_bulk(
        self, engine: AsyncEngine, session: AsyncSession, oem: Tenant, n: int
    ) -> None:
        await add_endpoint(session, oem)
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            await emit_commands(session, oem, n, "command.created")
        finally:
            sa.event.remove(engine.sync_engine, "before_cursor_execute", count)
        count_rows = await session.scalar(sa.select(sa.func.count()).select_from(Delivery))
        assert count_rows == n
        # Bulk, not a statement per row: a few statements per thousands of rows.
        assert len(statements) < n / 100, len(statements)

    async def test_fan_out_accepts_uuids_and_hex_ids(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        endpoint = await add_endpoint(session, oem)
        message = await service.emit(
            session,
            org_id=oem.org.id,
            event_type="event.created",
            object_type="event",
            subject_id="x",
            event_object={},
        )
        created = await service.fan_out(
            session,
            [(message.id, oem.org.id, "event.created"), (message.id.hex, oem.org.id.hex, "x.y")],
        )
        assert created == 2
        rows = await deliveries(session)
        assert [d.endpoint_id for d, _ in rows] == [endpoint.id] * 3
        assert uuid.UUID(str(rows[0][0].message_id)) == message.id
