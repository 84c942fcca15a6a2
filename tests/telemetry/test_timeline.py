"""GET /v1/events/{id}/timeline: what happened to an event, in order, a page at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.time import frozen_time, isoformat_z
from gridhive.webhooks import endpoints
from gridhive.webhooks.models import Delivery, DeliveryAttempt, DeliveryState, OutboundMessage
from gridhive.webhooks.schemas import WebhookEndpointCreate
from tests.factories import Tenant, site_token
from tests.telemetry.conftest import Fleet

T0 = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with frozen_time(T0):
        yield


async def deliver_first(session: AsyncSession, now: datetime, status: int) -> str:
    """The outcome of an attempt at the OEM's first delivery, stored as the delivery worker
    stores it (the attempt logged, the delivery's state and count updated)."""
    first = await session.scalar(sa.select(Delivery).order_by(Delivery.seq).limit(1))
    assert first is not None
    ok = 200 <= status < 300
    first.attempts += 1
    first.state = DeliveryState.DELIVERED if ok else DeliveryState.FAILED
    first.last_status = status
    session.add(
        DeliveryAttempt(
            delivery_id=first.id,
            attempt=first.attempts,
            started_at=now,
            status_code=status,
            error=None if ok else f"HTTP {status}: upstream database unreachable",
            latency_ms=12,
        )
    )
    message = await session.get_one(OutboundMessage, first.message_id)
    await session.commit()
    return message.event_type


async def get_timeline(
    client: httpx.AsyncClient, tenant: Tenant, event_id: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/events/{event_id}/timeline", params=params, headers=tenant.headers
    )


@pytest.fixture
async def story(client: httpx.AsyncClient, session: AsyncSession, fleet: Fleet) -> str:
    """At T0 the utility dispatches a discharge (3 batteries, 2 homes); the OEM's endpoint
    answers the first message 503 at T0+1m, home-1 opts out at T0+2m, b-1's device confirms its
    opted-out command at T0+3m, the retry of the first message succeeds at T0+4m, the utility
    cancels at T0+5m (b-3's commands; the opted-out ones are already settled). Each battery
    has a pre-charge command and a discharge command."""
    await endpoints.create_endpoint(
        session,
        org_id=fleet.oem.org.id,
        data=WebhookEndpointCreate(url="https://oem.example/hook"),
        allow_private=True,
    )
    await session.commit()
    starts_at = isoformat_z(T0 + timedelta(hours=2))
    action = {"mode": "DISCHARGE", "starts_at": starts_at, "duration_s": 3600}
    body = {
        "program_id": str(fleet.program.id),
        "target_type": "PROGRAM",
        "target_ids": [str(fleet.program.id)],
        "actions": [{**action, "power_mode": "SETPOINT", "setpoint_w": 3000}],
    }
    created = await client.post("/v1/events", json=body, headers=fleet.utility.headers)
    assert created.status_code == 200, created.text
    event_id: str = created.json()["id"]
    with frozen_time(T0 + MINUTE):
        assert await deliver_first(session, T0 + MINUTE, 503) == "event.created"
    with frozen_time(T0 + 2 * MINUTE):
        headers = await site_token(session, fleet.oem, fleet.sites["home-1"])
        path = f"/v1/site/home-1/event/{event_id}"
        out = await client.patch(path, json={"is_participating": False}, headers=headers)
        assert out.status_code == 200, out.text
    with frozen_time(T0 + 3 * MINUTE):
        commands = (await client.get("/v1/commands", headers=fleet.oem.headers)).json()
        [b1] = [c for c in commands if c["device_id"] == "b-1" and not c["is_preparatory_action"]]
        ack = await client.patch(
            f"/v1/command/{b1['id']}", json={"device_status": "OK"}, headers=fleet.oem.headers
        )
        assert ack.status_code == 200, ack.text
    with frozen_time(T0 + 4 * MINUTE):
        assert await deliver_first(session, T0 + 4 * MINUTE, 204) == "event.created"
    with frozen_time(T0 + 5 * MINUTE):
        canceled = await client.delete(f"/v1/events/{event_id}", headers=fleet.utility.headers)
        assert canceled.status_code == 204, canceled.text
    return event_id


def at(minutes: int) -> str:
    return isoformat_z(T0 + minutes * MINUTE)


def kinds_at(entries: list[dict[str, Any]], minutes: int) -> Counter[tuple[Any, ...]]:
    return Counter(
        (e["kind"], e["object_type"], e["site_id"], e["device_id"])
        for e in entries
        if e["at"] == at(minutes)
    )


class TestTimeline:
    async def test_every_change_attempt_and_answer_in_order(
        self, client: httpx.AsyncClient, fleet: Fleet, story: str
    ) -> None:
        response = await get_timeline(client, fleet.utility, story, limit=1000)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["next_cursor"] is None
        entries = page["entries"]
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
        assert {e["at"] for e in entries} == {at(m) for m in range(6)}
        assert kinds_at(entries, 0) == Counter(
            {
                ("event.created", "event", None, None): 1,  # the utility's
                ("event.created", "event", "home-1", None): 1,
                ("event.created", "event", "home-2", None): 1,
                ("command.created", "command", "home-1", "b-1"): 2,
                ("command.created", "command", "home-1", "b-2"): 2,
                ("command.created", "command", "home-2", "b-3"): 2,
            }
        )
        [failed] = [e for e in entries if e["at"] == at(1)]
        assert failed["kind"] == "delivery.failed"
        assert failed["object_type"] == "delivery"
        # The status, not what the OEM's endpoint said.
        assert failed["detail"] == "event.created attempt 1: HTTP 503"
        assert kinds_at(entries, 2) == Counter(
            {
                ("event.updated", "event", "home-1", None): 2,  # to the OEM and the utility
                ("command.updated", "command", "home-1", "b-1"): 2,
                ("command.updated", "command", "home-1", "b-2"): 2,
            }
        )
        [ack] = [e for e in entries if e["at"] == at(3)]
        created = [e for e in entries if e["kind"] == "command.created"]
        b1_commands = {e["object_id"] for e in created if e["device_id"] == "b-1"}
        assert ack["object_id"] in b1_commands
        assert ack == {
            "at": at(3),
            "kind": "command.acknowledged",
            "object_type": "command",
            "object_id": ack["object_id"],
            "site_id": "home-1",
            "device_id": "b-1",
            "detail": "device answered OK",
        }
        [succeeded] = [e for e in entries if e["at"] == at(4)]
        assert succeeded["kind"] == "delivery.succeeded"
        # The same delivery (webhook-id) failed, then succeeded.
        assert succeeded["object_id"] == failed["object_id"]
        assert succeeded["detail"] == "event.created attempt 2: HTTP 204"
        assert kinds_at(entries, 5) == Counter(
            {
                ("event.canceled", "event", None, None): 1,
                ("event.canceled", "event", "home-1", None): 1,
                ("event.canceled", "event", "home-2", None): 1,
                ("command.canceled", "command", "home-2", "b-3"): 2,
            }
        )

    async def test_pages_follow_each_other_without_gaps_or_repeats(
        self, client: httpx.AsyncClient, fleet: Fleet, story: str
    ) -> None:
        whole = (await get_timeline(client, fleet.utility, story, limit=1000)).json()["entries"]
        paged: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 4} if cursor is None else {"limit": 4, "cursor": cursor}
            page = (await get_timeline(client, fleet.utility, story, **params)).json()
            assert len(page["entries"]) <= 4
            paged += page["entries"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == whole
        assert len(whole) > 12  # several pages, with entries tied on time across pages

    async def test_the_attempt_that_uses_up_the_retries_is_the_deliverys_death(
        self, client: httpx.AsyncClient, session: AsyncSession, fleet: Fleet, story: str
    ) -> None:
        last = await session.scalar(sa.select(Delivery).order_by(Delivery.seq.desc()).limit(1))
        assert last is not None
        last.attempts, last.state = 9, DeliveryState.DEAD
        for attempt, minutes in ((8, 6), (9, 7)):
            session.add(
                DeliveryAttempt(
                    delivery_id=last.id,
                    attempt=attempt,
                    started_at=T0 + minutes * MINUTE,
                    status_code=None,
                    error="timeout: ReadTimeout",
                    latency_ms=5000,
                )
            )
        sent = (await session.get_one(OutboundMessage, last.message_id)).event_type
        await session.commit()
        entries = (await get_timeline(client, fleet.utility, story)).json()["entries"]
        assert [(e["kind"], e["detail"]) for e in entries[-2:]] == [
            ("delivery.failed", f"{sent} attempt 8: timeout: ReadTimeout"),
            ("delivery.dead", f"{sent} attempt 9: timeout: ReadTimeout"),
        ]

    async def test_another_utilitys_event_is_not_found(
        self, client: httpx.AsyncClient, other_utility: Tenant, story: str
    ) -> None:
        response = await get_timeline(client, other_utility, story)
        assert response.status_code == 404

    async def test_a_forged_cursor_is_422(
        self, client: httpx.AsyncClient, fleet: Fleet, story: str
    ) -> None:
        response = await get_timeline(client, fleet.utility, story, cursor="bm90IGEgY3Vyc29y")
        assert response.status_code == 422
