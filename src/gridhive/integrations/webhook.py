"""HTTP webhooks: Standard Webhooks signing, one shared client, and the private-address guard.

The guard works at two moments: when an endpoint is registered (`check_url`, so the tenant
gets a 422) and at every connection (`PublicOnlyBackend`, so a name that later resolves to a
private address - DNS rebinding - is still refused). Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import socket
import time
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpcore
import httpx
from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
USER_AGENT = "gridhive-webhooks/1"
# Enough of an error response to see what the receiver said, never the whole of it.
MAX_ERROR_BODY = 200
RESOLVE_TIMEOUT_S = 2.0


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def signature_header(msg_id: str, timestamp: datetime, body: str, secrets: Sequence[str]) -> str:
    """`v1,<sig>` for each secret, space-separated (several during a secret rotation)."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


def signed_headers(
    msg_id: str, timestamp: datetime, body: str, secrets: Sequence[str]
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(msg_id, timestamp, body, secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    error: str | None
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def send(
    client: httpx.AsyncClient,
    *,
    url: str,
    msg_id: str,
    timestamp: datetime,
    body: str,
    secrets: Sequence[str],
) -> SendResult:
    """POST one signed message; any 2xx is success. Never raises for network trouble."""
    headers = signed_headers(msg_id, timestamp, body, secrets)
    started = time.perf_counter()
    try:
        async with client.stream("POST", url, content=body.encode(), headers=headers) as response:
            status = response.status_code
            error = None
            if not 200 <= status < 300:
                error = f"HTTP {status}" + await _body_excerpt(response)
    except httpx.TimeoutException as exc:
        return SendResult(None, f"timeout: {type(exc).__name__}", _ms_since(started))
    except httpx.HTTPError as exc:
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], _ms_since(started))
    return SendResult(status, error, _ms_since(started))


async def _body_excerpt(response: httpx.Response) -> str:
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        return ""
    text = data[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def make_client(
    *, timeout_s: float, allow_private: bool, max_connections: int
) -> httpx.AsyncClient:
    """The delivery client: keep-alive, a hard timeout, no redirects, no proxies from env."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not allow_private:
        # httpx has no public hook for the network backend, so the pool is rebuilt with one.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicOnlyBackend(),
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


# Private addresses ---------------------------------------------------------------------------


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses (not private, loopback, link-local...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (a literal IP resolves to itself)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook endpoint, judging by its form alone (None if it can)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except Exception:  # httpx raises several types for malformed URLs
        return "must be an absolute http(s) URL"
    if parsed.scheme not in ("http", "https"):
        return "must use http or https"
    if not parsed.host:
        return "must name a host"
    if port is not None and not 0 < port < 65536:
        return "has an invalid port"
    return None


async def check_url(url: str, *, allow_private: bool) -> str | None:
    """Why `url` is refused (None if accepted); resolves the host when private ones are banned."""
    problem = url_problem(url)
    if problem or allow_private:
        return problem
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = await resolve(parsed.host, port)
    except (OSError, TimeoutError):
        return f"host {parsed.host!r} does not resolve"
    private = [a for a in addresses if not is_public_address(a)]
    if private:
        return f"host {parsed.host!r} resolves to a non-public address ({private[0]})"
    return None


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """Connects only to public addresses: resolves the name itself and checks every answer.

    TLS still verifies the original host name: httpcore passes it to `start_tls` as SNI.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    # The signatures are httpcore's interface, `timeout` parameters included.
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        private = [a for a in addresses if not is_public_address(a)]
        if private or not addresses:
            raise httpcore.ConnectError(f"refused: {host!r} resolves to a non-public address")
        return await self._inner.connect_tcp(
            addresses[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not webhook endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
