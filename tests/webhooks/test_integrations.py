"""The outbound channels on their own: address checks, signing, MQTT topics and URLs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from gridhive.integrations import webhook
from gridhive.integrations.mqtt import BrokerAddress, parse_broker_url, topic_for


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # link-local (cloud metadata)
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert webhook.is_public_address(address) is public


async def test_check_url_resolves_names_only_when_private_ones_are_banned() -> None:
    assert await webhook.check_url("http://localhost/x", allow_private=True) is None
    problem = await webhook.check_url("http://localhost/x", allow_private=False)
    assert problem is not None
    assert "non-public" in problem
    unresolvable = await webhook.check_url("http://no-such-host.invalid/", allow_private=False)
    assert unresolvable is not None
    assert "does not resolve" in unresolvable


def test_signatures_verify_with_the_standard_library() -> None:
    secret, other = webhook.new_secret(), webhook.new_secret()
    now = datetime.now(UTC)
    body = '{"event_type":"command.created"}'
    headers = webhook.signed_headers("msg_1", now, body, [secret, other])
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(body, headers) == {"event_type": "command.created"}
    assert Webhook(other).verify(body, headers) == {"event_type": "command.created"}


def test_topics_escape_what_mqtt_would_read_as_levels_or_wildcards() -> None:
    assert topic_for("org", "command", "battery-1") == "gridhive/org/command/battery-1"
    assert topic_for("org", "event", "a/b+c#d%e") == "gridhive/org/event/a%2Fb%2Bc%23d%25e"
    assert topic_for("org", "site", "urn:site:1") == "gridhive/org/site/urn:site:1"


def test_broker_urls() -> None:
    assert parse_broker_url("mqtt://127.0.0.1:1883") == BrokerAddress("127.0.0.1", 1883)
    assert parse_broker_url("mqtts://u:p%40ss@broker.example") == BrokerAddress(
        "broker.example", 8883, "u", "p@ss", tls=True
    )
    with pytest.raises(ValueError, match="not an MQTT broker URL"):
        parse_broker_url("http://broker.example")
