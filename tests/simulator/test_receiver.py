"""The webhook receiver checks every delivery with `standardwebhooks` and drops repeats."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from gridhive.simulator.faults import DeliveryFaults
from gridhive.simulator.receiver import WEBHOOK_PATH, WebhookReceiver
from gridhive.simulator.sources import WebhookServer

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()
ENVELOPE = {
    "event_type": "command.created",
    "event_object": {"id": "c-1", "device_id": "b-1", "object_type": "command"},
    "timestamp": "2026-07-01T10:00:00.000Z",
}


def signed(
    msg_id: str, body: str, *, secret: str = SECRET, at: datetime | None = None
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }


class Received:
    def __init__(self) -> None:
        self.envelopes: list[tuple[dict[str, Any], str]] = []

    def __call__(self, envelope: dict[str, Any], message_id: str) -> None:
        self.envelopes.append((envelope, message_id))


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def receiver(received: Received) -> WebhookReceiver:
    return WebhookReceiver(received, secret=SECRET)


@pytest.fixture
async def http(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=receiver.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://oem") as client:
        yield client


async def post(http: httpx.AsyncClient, headers: dict[str, str], body: str) -> httpx.Response:
    return await http.post(WEBHOOK_PATH, content=body, headers=headers)


BODY = json.dumps(ENVELOPE)


class TestVerification:
    async def test_a_signed_delivery_is_accepted_and_handed_on(
        self, http: httpx.AsyncClient, receiver: WebhookReceiver, received: Received
    ) -> None:
        response = await post(http, signed("msg-1", BODY), BODY)
        assert response.status_code == 204
        assert received.envelopes == [(ENVELOPE, "msg-1")]
        assert receiver.stats.verified == 1

    async def test_a_forged_signature_is_a_400_and_nothing_is_processed(
        self, http: httpx.AsyncClient, receiver: WebhookReceiver, received: Received
    ) -> None:
        response = await post(http, signed("msg-1", BODY, secret=OTHER_SECRET), BODY)
        assert response.status_code == 400
        assert received.envelopes == []
        assert receiver.stats.rejected == 1

    async def test_a_tampered_body_is_a_400(
        self, http: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        headers = signed("msg-1", BODY)
        response = await post(http, headers, BODY.replace("c-1", "c-2"))
        assert response.status_code == 400

    async def test_a_stale_delivery_is_a_400(
        self, http: httpx.AsyncClient, receiver: WebhookReceiver, received: Received
    ) -> None:
        stale = datetime.now(UTC) - timedelta(minutes=10)
        response = await post(http, signed("msg-1", BODY, at=stale), BODY)
        assert response.status_code == 400
        assert receiver.stats.rejected == 1
        assert received.envelopes == []

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"webhook-id": "m", "webhook-timestamp": "soon", "webhook-signature": "v1,x"},
            {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "garbage"},
        ],
    )
    async def test_missing_or_malformed_headers_are_a_400(
        self, http: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        assert (await post(http, headers, BODY)).status_code == 400

    async def test_before_the_secret_is_known_deliveries_are_503_to_be_retried(
        self, received: Received
    ) -> None:
        receiver = WebhookReceiver(received)
        transport = httpx.ASGITransport(app=receiver.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://oem") as http:
            response = await post(http, signed("msg-1", BODY), BODY)
        assert response.status_code == 503


class TestDedupe:
    async def test_a_repeated_webhook_id_is_acknowledged_but_processed_once(
        self, http: httpx.AsyncClient, receiver: WebhookReceiver, received: Received
    ) -> None:
        first = await post(http, signed("msg-1", BODY), BODY)
        again = await post(http, signed("msg-1", BODY), BODY)
        assert (first.status_code, again.status_code) == (204, 204)
        assert len(received.envelopes) == 1
        assert receiver.stats.duplicates == 1
        assert receiver.stats.verified == 2


class TestInjectedFaults:
    async def test_an_injected_5xx_fails_the_attempt_before_processing(
        self, received: Received
    ) -> None:
        receiver = WebhookReceiver(
            received, secret=SECRET, faults=DeliveryFaults({"webhook-5xx": 1.0})
        )
        transport = httpx.ASGITransport(app=receiver.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://oem") as http:
            response = await post(http, signed("msg-1", BODY), BODY)
        assert response.status_code == 503
        assert received.envelopes == []
        assert receiver.stats.failed_5xx == 1

    async def test_an_injected_timeout_answers_after_the_sender_gave_up(
        self, received: Received
    ) -> None:
        receiver = WebhookReceiver(
            received,
            secret=SECRET,
            faults=DeliveryFaults({"webhook-timeout": 1.0}),
            timeout_fault_s=0.01,
        )
        transport = httpx.ASGITransport(app=receiver.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://oem") as http:
            response = await post(http, signed("msg-1", BODY), BODY)
        assert response.status_code == 504
        assert receiver.stats.timed_out == 1
        assert received.envelopes == []


class TestServed:
    async def test_under_uvicorn_a_signed_delivery_is_accepted_and_health_is_reported(
        self, receiver: WebhookReceiver, received: Received
    ) -> None:
        server = WebhookServer(receiver.app, "127.0.0.1", 0)
        port = await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                response = await post(http, signed("msg-1", BODY), BODY)
                health = await http.get("/healthz")
                elsewhere = await http.get("/nowhere")
        finally:
            await server.stop()
        assert response.status_code == 204
        assert received.envelopes == [(ENVELOPE, "msg-1")]
        assert health.json() == {"ok": True, **asdict(receiver.stats)}
        assert health.json()["verified"] == 1
        assert elsewhere.status_code == 404
