"""The `settings.apply` message is written with the request, in the same transaction."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from gridhive.device_settings import service
from gridhive.device_settings.models import SettingsRequest
from gridhive.webhooks.models import OutboundMessage
from tests.device_settings.conftest import request_settings
from tests.factories import Tenant

pytestmark = pytest.mark.usefixtures("battery")


async def settings_messages(session: AsyncSession) -> list[OutboundMessage]:
    rows = await session.scalars(
        sa.select(OutboundMessage).where(OutboundMessage.event_type == "settings.apply")
    )
    return list(rows)


async def test_the_oem_gets_a_settings_apply_message_carrying_the_request(
    client: httpx.AsyncClient, session: AsyncSession, oem: Tenant, homeowner: dict[str, str]
) -> None:
    response = await request_settings(
        client, homeowner, backup_reserve_percentage=40, mode="BACKUP"
    )

    [message] = await settings_messages(session)
    assert message.org_id == oem.org.id
    assert message.object_type == "settings_request"
    assert message.subject_id == "pw-1"
    assert message.payload == {**response.json(), "object_type": "settings_request"}


async def test_a_rejected_request_sends_nothing(
    client: httpx.AsyncClient, session: AsyncSession, homeowner: dict[str, str]
) -> None:
    response = await request_settings(client, homeowner, backup_reserve_percentage=101)

    assert response.status_code == 422
    assert await settings_messages(session) == []


async def test_nothing_is_half_written_when_the_message_cannot_be_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    homeowner: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_emit = service.webhook_service.emit

    async def emit_then_fail(*args: Any, **kwargs: Any) -> None:
        # The message row is written, then the request fails: both must vanish together.
        await real_emit(*args, **kwargs)
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(service.webhook_service, "emit", emit_then_fail)

    # Captured, not rendered: the console renderer's traceback takes many seconds.
    with capture_logs() as logs:
        response = await request_settings(client, homeowner, backup_reserve_percentage=40)

    assert response.status_code == 500
    assert set(response.json()) == {"code", "message", "status_code", "errors", "detail"}
    assert [entry["event"] for entry in logs] == ["unhandled_error"]
    assert (await session.scalars(sa.select(SettingsRequest))).all() == []
    assert await settings_messages(session) == []
