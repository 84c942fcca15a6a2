"""A fake gridhive for the simulator's unit tests: records acks, serves scripted commands."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from gridhive.simulator.client import GridhiveClient


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class FakeServer:
    acks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    command_queries: list[dict[str, str]] = field(default_factory=list)
    ack_status: int = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and request.url.path.startswith("/v1/command/"):
            command_id = request.url.path.rsplit("/", 1)[1]
            self.acks.append((command_id, json.loads(request.content)))
            return httpx.Response(self.ack_status, json={"id": command_id})
        if request.method == "GET" and request.url.path == "/v1/commands":
            return httpx.Response(200, json=self.page(dict(request.url.params)))
        return httpx.Response(404, json={"message": "Not Found"})

    def page(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Like gridhive: updated_since inclusive, ordered by (updated_at, id), skip/limit."""
        self.command_queries.append(params)
        since = params.get("updated_since")
        rows = sorted(self.commands, key=lambda c: (_at(c["updated_at"]), c["id"]))
        if since is not None:
            rows = [c for c in rows if _at(c["updated_at"]) >= _at(since)]
        skip, limit = int(params.get("skip", 0)), int(params.get("limit", 100))
        return rows[skip : skip + limit]


@pytest.fixture
def fake_server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def fake_client(fake_server: FakeServer) -> AsyncIterator[GridhiveClient]:
    client = GridhiveClient(
        "http://gridhive",
        "ghk_test",
        transport=httpx.MockTransport(fake_server.handle),
        retries=1,
        backoff_s=0,
    )
    yield client
    await client.aclose()
