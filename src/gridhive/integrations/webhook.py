"""HTTP webhooks: Standard Webhooks signing, one shared client, and the private-address guard.

The guard works at two moments: when an endpoint is registered (`check_url`, so the tenant
gets a 422) and at every connection (the delivery client's resolver and socket factory, so a
name that later resolves to a private address - DNS rebinding - or a literal private address
is still refused). Redirects are never followed.

The delivery client is aiohttp: on this path every message is one request, and httpx's own
layers (its request and response models, httpcore's pool, anyio) cost several times the
round trip itself. Tests hand the worker an httpx client instead (`HttpxWebhookClient`), so a
scripted receiver needs no socket.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
USER_AGENT = "gridhive-webhooks/1"
# Enough of an error response to see what the receiver said, never the whole of it.
MAX_ERROR_BODY = 200
# A success's body is read (so the connection can be reused) up to this much, then dropped.
MAX_DRAINED_BODY = 64 * 1024
RESOLVE_TIMEOUT_S = 2.0
KEEPALIVE_S = 5.0  # how long an idle connection is kept (httpx's default)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


@functools.lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    # A Webhook decodes its secret once; an endpoint's secret signs many messages.
    return Webhook(secret)


def signature_header(
    msg_id: str, timestamp: datetime, body: str | bytes, secrets: Sequence[str]
) -> str:
    """`v1,<sig>` for each secret, space-separated (several during a secret rotation)."""
    return " ".join(_signer(secret).sign(msg_id, timestamp, body) for secret in secrets)


def signed_headers(
    msg_id: str, timestamp: datetime, body: str | bytes, secrets: Sequence[str]
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


class WebhookClient(Protocol):
    """POSTs one signed body; answers (status, None) or (status, error text) for a non-2xx,
    and raises `Unreachable` when no answer came."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str | None]: ...

    async def aclose(self) -> None: ...


class Unreachable(Exception):
    """No HTTP answer: timeout, refused, reset, or a non-public address."""

    def __init__(self, description: str, *, timeout: bool = False) -> None:
        super().__init__(description)
        self.timeout = timeout


async def send(
    client: WebhookClient,
    *,
    url: str,
    msg_id: str,
    timestamp: datetime,
    body: str,
    secrets: Sequence[str],
) -> SendResult:
    """POST one signed message; any 2xx is success. Never raises for network trouble."""
    content = body.encode()
    headers = signed_headers(msg_id, timestamp, content, secrets)
    started = time.perf_counter()
    try:
        status, error = await client.post(url, content, headers)
    except Unreachable as exc:
        error = f"timeout: {exc}" if exc.timeout else str(exc)
        return SendResult(None, error[:500], _ms_since(started))
    return SendResult(status, error, _ms_since(started))


def _error_text(status: int, excerpt: bytes) -> str:
    text = excerpt[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def make_client(*, timeout_s: float, allow_private: bool, max_connections: int) -> WebhookClient:
    """The delivery client: keep-alive, a hard timeout, no redirects, no proxies from env."""
    return AiohttpWebhookClient(
        timeout_s=timeout_s, allow_private=allow_private, max_connections=max_connections
    )


class AiohttpWebhookClient:
    """The production client. Its session is made on first use, inside the running loop."""

    def __init__(self, *, timeout_s: float, allow_private: bool, max_connections: int) -> None:
        self.allow_private = allow_private
        self.max_connections = max_connections
        # Per phase, like httpx's: connecting, and each wait for the receiver's bytes.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        guard: dict[str, Any] = {}
        if not self.allow_private:
            guard = {"resolver": PublicOnlyResolver(), "socket_factory": _public_socket}
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, keepalive_timeout=KEEPALIVE_S, **guard
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            trust_env=False,
        )

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str | None]:
        if self._session is None:
            self._session = self._new_session()
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    await _drain(response)
                    return status, None
                return status, _error_text(status, await _excerpt(response))
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            raise Unreachable(type(exc).__name__, timeout=True) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read a success's body, so that the connection goes back to the pool. One larger than
    MAX_DRAINED_BODY is left unread (the connection is then closed, not reused); a body that
    breaks or stalls does not undo the delivery: the receiver has answered 2xx."""
    length = response.content_length
    if length is not None and length > MAX_DRAINED_BODY:
        return
    read = 0
    try:
        while read <= MAX_DRAINED_BODY:
            chunk = await response.content.readany()
            if not chunk:
                return
            read += len(chunk)
    except (aiohttp.ClientError, TimeoutError):
        return


async def _excerpt(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.read(MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):  # the status alone then
        return b""


class HttpxWebhookClient:
    """Delivers through an httpx client (tests give the worker one with a mock transport)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str | None]:
        try:
            async with self.http.stream(
                "POST", url, content=body, headers=headers, follow_redirects=False
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    return status, None
                return status, _error_text(status, await _httpx_excerpt(response))
        except httpx.TimeoutException as exc:
            raise Unreachable(type(exc).__name__, timeout=True) from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self.http.aclose()


async def _httpx_excerpt(response: httpx.Response) -> bytes:
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        return b""
    return data


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


class PublicOnlyResolver(AbstractResolver):
    """Resolves a name and refuses it when any of its addresses is not public.

    aiohttp does not ask a resolver about literal addresses: `_public_socket` checks those
    (and, again, every address actually connected to).
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve(host, port)
        except TimeoutError as exc:
            raise OSError(errno.ETIMEDOUT, f"cannot resolve {host!r} in time") from exc
        private = [a for a in addresses if not is_public_address(a)]
        if private or not addresses:
            raise OSError(errno.EACCES, f"refused: {host!r} resolves to a non-public address")
        return [_resolved(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _resolved(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


def _public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """The connector's socket factory: no socket at all for a non-public address."""
    family, kind, proto, _, address = addr_info
    if not is_public_address(str(address[0])):
        raise OSError(errno.EACCES, f"refused: {address[0]} is a non-public address")
    return socket.socket(family, kind, proto)
