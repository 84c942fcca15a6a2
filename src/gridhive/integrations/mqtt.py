"""MQTT: QoS 1 publishes to the broker over one long-lived connection (aiomqtt, MQTT 5)."""

from __future__ import annotations

import asyncio
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOPIC_ROOT = "gridhive"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://[user:password@]host[:port]` (1883), or `mqtts://` with TLS (8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"not an MQTT broker URL: {url!r} (expected mqtt://host:port)")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        hostname=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def topic_level(value: str) -> str:
    """One topic level from any id: `/`, `+`, `#` and `%` are percent-encoded (ids are free text,
    and those characters would add levels or act as wildcards)."""
    return quote(value, safe="!$&'()*,;=:@-._~ ") or "%00"


def topic_for(org_id: str, object_type: str, subject_id: str) -> str:
    """`gridhive/<org id>/<object_type>/<device or site id>`."""
    return "/".join(
        [TOPIC_ROOT, topic_level(org_id), topic_level(object_type), topic_level(subject_id)]
    )


class MqttPublisher:
    """Publishes with QoS 1 and waits for the broker's PUBACK; reconnects after a failure."""

    def __init__(self, url: str, *, client_id: str, timeout_s: float = 5.0) -> None:
        self.address = parse_broker_url(url)
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._client: aiomqtt.Client | None = None
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is None:
                address = self.address
                client = aiomqtt.Client(
                    address.hostname,
                    address.port,
                    username=address.username,
                    password=address.password,
                    identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    timeout=self.timeout_s,
                    tls_context=ssl.create_default_context() if address.tls else None,
                )
                stack = AsyncExitStack()
                await stack.enter_async_context(client)
                self._client, self._stack = client, stack
            return self._client

    async def publish(self, topic: str, payload: bytes, *, message_id: str) -> None:
        """Publish and wait for the PUBACK; raises `aiomqtt.MqttError` (and drops the
        connection, to be rebuilt by the next call) when that fails."""
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("webhook-id", message_id)]
        properties.ContentType = "application/json"
        client = await self._connected()
        try:
            await client.publish(
                topic, payload, qos=1, properties=properties, timeout=self.timeout_s
            )
        except aiomqtt.MqttError:
            await self._drop(client)
            raise

    async def _drop(self, client: aiomqtt.Client) -> None:
        async with self._lock:
            if self._client is not client or self._stack is None:
                return
            stack, self._client, self._stack = self._stack, None, None
        try:
            await stack.aclose()
        except aiomqtt.MqttError:
            pass

    async def aclose(self) -> None:
        if self._client is not None:
            await self._drop(self._client)
