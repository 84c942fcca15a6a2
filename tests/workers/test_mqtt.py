"""MQTT delivery through the real Mosquitto broker (`.ci/services.sh` starts it).

Without a broker these tests are skipped, unless GRIDHIVE_REQUIRE_SERVICES=1 (CI), where an
unreachable broker fails them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket

import aiomqtt
import pytest

from gridhive.db.session import unit_of_work
from gridhive.integrations.mqtt import MqttPublisher, parse_broker_url
from gridhive.webhooks import endpoints
from gridhive.webhooks.models import Channel, DeliveryMode, DeliveryState
from tests.factories import Tenant
from tests.workers import helpers
from tests.workers.conftest import CommittedDb, MakeWorker

BROKER = os.environ.get("GRIDHIVE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@pytest.fixture
def broker() -> str:
    address = parse_broker_url(BROKER)
    try:
        socket.create_connection((address.hostname, address.port), timeout=1).close()
    except OSError as exc:
        reason = f"MQTT broker not reachable at {BROKER} ({exc}); start it with .ci/services.sh"
        if os.environ.get("GRIDHIVE_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return BROKER


async def use_mqtt(db: CommittedDb, owner: Tenant) -> None:
    async with unit_of_work(db.sessionmaker) as session:
        await endpoints.set_delivery_mode(
            session, owner.org.id, DeliveryMode.MQTT, mqtt_available=True
        )


async def test_messages_are_published_with_qos_1_to_the_tenants_topics(
    committed: CommittedDb, make_worker: MakeWorker, broker: str
) -> None:
    oem = await helpers.tenant(committed)
    await use_mqtt(committed, oem)
    address = parse_broker_url(broker)
    publisher = MqttPublisher(broker, client_id=f"gridhive-test-{secrets.token_hex(4)}")
    try:
        async with aiomqtt.Client(
            address.hostname,
            address.port,
            identifier=f"subscriber-{secrets.token_hex(4)}",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as subscriber:
            await subscriber.subscribe(f"gridhive/{oem.org.id}/#", qos=1)
            await helpers.emit(committed, oem, ["battery-1", "site:7/battery#2"])

            worker = make_worker(mqtt=publisher)
            assert await worker.drain() == 2

            received = []
            async with asyncio.timeout(5):
                async for message in subscriber.messages:
                    received.append(message)
                    if len(received) == 2:
                        break
    finally:
        await publisher.aclose()

    rows = await helpers.deliveries(committed)
    assert [(r.channel, r.state, r.endpoint_id) for r in rows] == [
        (Channel.MQTT, DeliveryState.DELIVERED, None)
    ] * 2
    by_topic = {str(m.topic): m for m in received}
    assert set(by_topic) == {
        f"gridhive/{oem.org.id}/command/battery-1",
        f"gridhive/{oem.org.id}/command/site:7%2Fbattery%232",
    }
    first = by_topic[f"gridhive/{oem.org.id}/command/battery-1"]
    assert first.qos == 1
    assert isinstance(first.payload, bytes)
    body = json.loads(first.payload)
    assert body["event_type"] == "command.created"
    assert body["event_object"]["object_type"] == "command"
    assert body["timestamp"].endswith("Z")
    assert body["webhook_id"] == str(rows[0].id)
    assert first.properties is not None
    assert ("webhook-id", str(rows[0].id)) in first.properties.UserProperty


async def test_a_broker_that_is_down_means_a_retry(
    committed: CommittedDb, make_worker: MakeWorker
) -> None:
    oem = await helpers.tenant(committed)
    await use_mqtt(committed, oem)
    await helpers.emit(committed, oem, ["battery-1"])
    publisher = MqttPublisher("mqtt://127.0.0.1:1", client_id="gridhive-test-down", timeout_s=1)
    try:
        assert await make_worker(mqtt=publisher).drain() == 1
    finally:
        await publisher.aclose()
    [row] = await helpers.deliveries(committed)
    assert row.state is DeliveryState.FAILED
    assert row.last_error
