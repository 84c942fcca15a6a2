"""Payload templates: messages alike store one body; each is delivered with its own ids."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.time import utc_now
from gridhive.webhooks import repository, service
from gridhive.webhooks.models import Delivery, OutboundMessage, PayloadTemplate
from gridhive.webhooks.templates import COMMAND_PLACEHOLDER, SUBJECT_PLACEHOLDER, Template
from tests.factories import Tenant
from tests.webhooks.test_service import add_endpoint

# "ü" and a quote: the filled-in ids must come out JSON-escaped exactly as a stored payload.
DEVICES = ("battery-1", 'battery-"2"', "batterie-ü")


def command_template(status: str = "OK") -> Template:
    return Template.of(
        {"id": str(COMMAND_PLACEHOLDER), "device_id": SUBJECT_PLACEHOLDER, "status": status},
        command=True,
    )


async def emit(session: AsyncSession, oem: Tenant, template: Template) -> list[uuid.UUID]:
    command_ids = [uuid.uuid4() for _ in DEVICES]
    await service.emit_many(
        session,
        event_type="command.created",
        object_type="command",
        messages=[
            (oem.org.id, device, template, None, command_id)
            for device, command_id in zip(DEVICES, command_ids, strict=True)
        ],
    )
    await session.commit()
    return command_ids


class TestTemplatedMessages:
    async def test_worker_delivers_each_message_with_its_own_ids(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        await add_endpoint(session, oem)
        command_ids = await emit(session, oem, command_template())
        delivery_ids = (await session.scalars(sa.select(Delivery.id))).all()
        jobs = await repository.load_jobs(session, delivery_ids, utc_now())
        assert sorted((j.payload["device_id"], j.payload["id"]) for j in jobs) == sorted(
            (device, str(command_id))
            for device, command_id in zip(DEVICES, command_ids, strict=True)
        )
        assert {j.payload["status"] for j in jobs} == {"OK"}
        assert {j.payload["object_type"] for j in jobs} == {"command"}

    async def test_messages_alike_store_one_body(self, session: AsyncSession, oem: Tenant) -> None:
        await emit(session, oem, command_template())
        messages = (await session.scalars(sa.select(OutboundMessage))).all()
        assert [m.payload for m in messages] == [None] * len(DEVICES)
        assert len({m.template_id for m in messages}) == 1
        assert await session.scalar(sa.select(sa.func.count()).select_from(PayloadTemplate)) == 1

    async def test_payload_of_reads_a_message_as_delivered(
        self, session: AsyncSession, oem: Tenant
    ) -> None:
        command_ids = await emit(session, oem, command_template("CANCELED"))
        messages = (await session.scalars(sa.select(OutboundMessage))).all()
        payloads = {m.command_id: await repository.payload_of(session, m) for m in messages}
        for device, command_id in zip(DEVICES, command_ids, strict=True):
            assert payloads[command_id] == {
                "id": str(command_id),
                "device_id": device,
                "status": "CANCELED",
                "object_type": "command",
            }

    def test_an_object_without_its_placeholders_is_refused(self) -> None:
        # Sent as it is, the placeholder would reach every OEM instead of their ids.
        with pytest.raises(ValueError, match="placeholder"):
            Template.of({"id": "c-1", "device_id": SUBJECT_PLACEHOLDER}, command=True)
        with pytest.raises(ValueError, match="placeholder"):
            Template.of({"site_id": "home-1"}, command=False)
