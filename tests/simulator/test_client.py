"""The simulator's client over real HTTP (its own connection pool, no injected transport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from gridhive.simulator.client import ApiError, EndpointMissing, GridhiveClient
from gridhive.simulator.sources import WebhookServer


@dataclass
class Api:
    """A stand-in for gridhive: records requests; answers each with the next scripted status
    (then 200) and a JSON body."""

    script: list[int] = field(default_factory=list)
    requests: list[tuple[str, str, str, dict[str, str], Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        data = json.loads(body) if body else None
        self.requests.append((scope["method"], scope["path"], query, headers, data))
        status = self.script.pop(0) if self.script else 200
        answer = json.dumps({"id": "x"} if status < 300 else {"message": f"nope {status}"})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer.encode()})


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, GridhiveClient]]:
    app = Api()
    server = WebhookServer(app, "127.0.0.1", 0)
    port = await server.start()
    client = GridhiveClient(f"http://127.0.0.1:{port}", "ghk_test", retries=1, backoff_s=0)
    yield app, client
    await client.aclose()
    await server.stop()


async def test_an_ack_is_a_json_patch_with_the_oem_key(api: tuple[Api, GridhiveClient]) -> None:
    app, client = api
    assert await client.ack("c-1", "OK", "Command scheduled") == {"id": "x"}
    [(method, path, _, headers, body)] = app.requests
    assert (method, path) == ("PATCH", "/v1/command/c-1")
    assert headers["authorization"] == "Bearer ghk_test"
    assert headers["content-type"] == "application/json"
    assert body == {"device_status": "OK", "device_status_reason": "Command scheduled"}


async def test_query_parameters_and_idempotency_keys_are_sent(
    api: tuple[Api, GridhiveClient],
) -> None:
    app, client = api
    await client.commands(updated_since=None, skip=5, limit=10)
    await client.commission({"site": {}}, idempotency_key="k-1")
    [(_, _, query, _, _), (_, path, _, headers, _)] = app.requests
    assert query == "skip=5&limit=10"
    assert (path, headers["idempotency-key"]) == ("/v1/commission", "k-1")


async def test_a_5xx_is_retried_and_a_404_is_named(api: tuple[Api, GridhiveClient]) -> None:
    app, client = api
    app.script = [503]
    assert await client.ack("c-1", "OK") == {"id": "x"}
    assert len(app.requests) == 2
    app.script = [404]
    with pytest.raises(EndpointMissing):
        await client.delivery_settings()
    app.script = [422]
    with pytest.raises(ApiError, match="nope 422"):
        await client.ack("c-1", "OK")


async def test_no_server_is_an_api_error_without_a_status() -> None:
    client = GridhiveClient("http://127.0.0.1:9", "ghk_test", retries=0)
    try:
        with pytest.raises(ApiError) as raised:
            await client.ack("c-1", "OK")
    finally:
        await client.aclose()
    assert raised.value.status_code is None
