"""The OEM side of gridhive's public API, as the simulator uses it (aiohttp, an OEM key).

`transport` is injectable so that tests drive an in-process app through `httpx.ASGITransport`
(or a mock): the requests then go through httpx instead, with the same retries and errors.
Requests are retried on 5xx, 429, timeouts and connection errors: every call here is safe to
repeat (GETs, idempotent acks, telemetry that replaces by (device, start_time), and POSTs that
carry an `Idempotency-Key`).
"""

from __future__ import annotations

import asyncio
import json as _json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import httpx

from gridhive.kit.time import isoformat_z

USER_AGENT = "gridhive-simulator/1"
COMMAND_TYPES = (
    "command.created",
    "command.updated",
    "command.canceled",
    "command.started",
    "command.ended",
)


class ApiError(Exception):
    """A non-2xx answer (after retries), or no answer at all (`status_code` None)."""

    def __init__(self, method: str, path: str, status_code: int | None, detail: str) -> None:
        super().__init__(f"{method} {path}: {status_code or 'no answer'}: {detail}")
        self.status_code = status_code
        self.detail = detail


class EndpointMissing(ApiError):
    """The server does not offer this route (404): an older or partial gridhive."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, read whole."""

    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return _json.loads(self.content)


class NoAnswer(Exception):
    """The request got no HTTP answer: timeout, refused, reset."""


class _Http(Protocol):
    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> Answer: ...

    async def aclose(self) -> None: ...


class _AiohttpHttp:
    """The simulator's own connection pool: aiohttp, made on first use inside the loop.

    An ack is one small request: httpx's request and response models and httpcore's pool
    cost several times the round trip itself, aiohttp a fraction of it.
    """

    def __init__(
        self, base_url: str, headers: dict[str, str], timeout_s: float, max_connections: int
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.max_connections = max_connections
        # Per phase, like httpx's timeout: connecting, and each wait for the server's bytes.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> Answer:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self.headers, timeout=self.timeout, trust_env=False
            )
        try:
            async with self._session.request(
                method, self.base_url + path, data=body, params=params, headers=headers
            ) as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _HttpxHttp:
    """Through an httpx transport: what tests inject (a mock, or an in-process app)."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout_s: float,
        transport: httpx.AsyncBaseTransport,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=timeout_s, headers=headers
        )

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> Answer:
        try:
            response = await self.http.request(
                method, path, content=body, params=params, headers=headers
            )
        except httpx.TransportError as exc:  # timeouts, refused, reset
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from exc
        return Answer(response.status_code, response.content)

    async def aclose(self) -> None:
        await self.http.aclose()


def _detail(response: Answer) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.content.decode("utf-8", "replace")[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:500]
    return str(body)[:300]


class GridhiveClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 15.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_connections: int = 64,
    ) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        self.http: _Http = (
            _AiohttpHttp(base_url, headers, timeout_s, max_connections)
            if transport is None
            else _HttpxHttp(base_url, headers, timeout_s, transport)
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Answer:
        """The answer, 2xx only; raises ApiError otherwise (EndpointMissing for a 404)."""
        body = None if json is None else _json.dumps(json, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in range(self.retries + 1):
            last_try = attempt == self.retries
            try:
                response = await self.http.send(method, path, body, params, headers)
            except NoAnswer as exc:
                if last_try:
                    raise ApiError(method, path, None, str(exc)) from exc
            else:
                if response.is_success:
                    return response
                if response.status_code == 404:
                    raise EndpointMissing(method, path, 404, _detail(response))
                if last_try or not (response.status_code >= 500 or response.status_code == 429):
                    raise ApiError(method, path, response.status_code, _detail(response))
            await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.request(method, path, **kwargs)).json()

    # Cloud API --------------------------------------------------------------------------------

    async def commission(self, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST", "/v1/commission", json=body, idempotency_key=idempotency_key
        )
        return result

    async def site_programs(self, site_id: str, device_type: str = "BATTERY") -> list[Any]:
        params = {"device_type": device_type, "limit": 1000}
        result: list[Any] = await self._json("GET", f"/v1/site/{site_id}/programs", params=params)
        return result

    async def enroll(
        self, site_id: str, body: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        path = f"/v1/site/{site_id}/enrollments"
        result: dict[str, Any] = await self._json(
            "POST", path, json=body, idempotency_key=idempotency_key
        )
        return result

    async def commands(
        self, *, updated_since: datetime | None, skip: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"skip": skip, "limit": limit}
        if updated_since is not None:
            params["updated_since"] = isoformat_z(updated_since)
        result: list[dict[str, Any]] = await self._json("GET", "/v1/commands", params=params)
        return result

    async def ack(
        self, command_id: str, device_status: str, reason: str | None = None
    ) -> dict[str, Any]:
        body = {"device_status": device_status, "device_status_reason": reason}
        result: dict[str, Any] = await self._json("PATCH", f"/v1/command/{command_id}", json=body)
        return result

    async def report_settings(
        self, request_id: str, status: str, message: str | None = None
    ) -> dict[str, Any]:
        """The outcome of a `settings.apply`: APPLIED or FAILED."""
        body = {"status": status, "message": message}
        result: dict[str, Any] = await self._json("PATCH", f"/v1/settings/{request_id}", json=body)
        return result

    async def post_telemetry(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per-item `{status, message}` in request order."""
        result: list[dict[str, Any]] = await self._json(
            "POST", "/v1/telemetry/BATTERY", json={"telemetry": items}
        )
        return result

    # Delivery set-up (gridhive's additions) ---------------------------------------------------

    async def delivery_settings(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/v1/delivery-settings")
        return result

    async def set_delivery_mode(self, mode: str) -> dict[str, Any]:
        body = {"delivery_mode": mode}
        result: dict[str, Any] = await self._json("PATCH", "/v1/delivery-settings", json=body)
        return result

    async def create_webhook_endpoint(
        self, url: str, event_types: list[str] | tuple[str, ...] = COMMAND_TYPES
    ) -> dict[str, Any]:
        """`{id, url, secret, event_types, status}`; the secret is shown only here."""
        body = {"url": url, "event_types": list(event_types)}
        result: dict[str, Any] = await self._json("POST", "/v1/webhook-endpoints", json=body)
        return result

    async def webhook_endpoints(self) -> list[dict[str, Any]]:
        params = {"limit": 1000}
        result: list[dict[str, Any]] = await self._json(
            "GET", "/v1/webhook-endpoints", params=params
        )
        return result

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        await self.request("DELETE", f"/v1/webhook-endpoints/{endpoint_id}")
