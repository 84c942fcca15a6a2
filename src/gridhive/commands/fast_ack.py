"""The acknowledgement's fast lane: `PATCH /v1/command/{id}` (and `/v1/commands/{id}`) served
in front of FastAPI when nothing about the request is unusual.

A device maker's cloud acknowledges every command of every event, so this is the Cloud API's
hottest call. FastAPI spends more CPU finding the route among ~250 and solving its dependency
tree (session, bearer scheme, principal, body) than the UPDATE itself costs
(docs/benchmarks_whole_path.md, "The acknowledgement route"). This ASGI layer answers the
common case with the same building blocks the route uses - `auth.service.authenticate`,
`CommandAck`, `commands.service.acknowledge`, one unit of work committed before the answer -
and hands everything else to FastAPI untouched (the body replayed): a missing or refused
credential, another kind of caller, a body that does not validate, an unknown command. So
every error is still the route's own answer, and the route stays the documented one.
"""

from __future__ import annotations

import json
import re
import uuid
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pydantic
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.commands import service
from gridhive.commands.schemas import CommandAck
from gridhive.db.session import get_session

_PATH = re.compile(r"^/v1/commands?/([0-9a-fA-F-]{32,36})$")
_ACK = pydantic.TypeAdapter(CommandAck)


class _HandOver(Exception):
    """The request is not the common case: FastAPI's route answers it."""


class FastAck:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "PATCH":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its body
            return
        try:
            payload = await self._acknowledge(scope, match.group(1), body)
        except _HandOver:
            await self.app(scope, _replay(body), send)
            return
        await _send_json(send, payload)

    async def _acknowledge(self, scope: Scope, command_id: str, body: bytes) -> dict[str, Any]:
        headers = dict(scope["headers"])
        credential = _bearer(headers.get(b"authorization", b""))
        if not _is_json(headers.get(b"content-type")):
            raise _HandOver
        try:
            parsed_id = uuid.UUID(command_id)
            ack = _ACK.validate_json(body)
        except (ValueError, pydantic.ValidationError):
            raise _HandOver from None
        try:
            async with _request_session(scope) as session:
                principal = await auth_service.authenticate(session, credential)
                if principal.kind is not OrgKind.OEM or principal.via == "site":
                    raise _HandOver
                return await service.acknowledge(
                    session, tenant_id=principal.org_id, command_id=parsed_id, ack=ack
                )
        except Exception:  # any failure is the route's to answer
            # The unit of work rolled back, or its commit failed: either way the route may run
            # the acknowledgement again, which is idempotent, and answers (or reports) as usual.
            raise _HandOver from None


def _request_session(scope: Scope) -> AbstractAsyncContextManager[AsyncSession]:
    """The unit of work the routes get from `get_session` (or what replaces it, as tests do):
    committed when the block ends, rolled back if it raises."""
    app = scope["app"]
    provider = app.dependency_overrides.get(get_session, get_session)
    return asynccontextmanager(provider)(Request(scope))


def _bearer(header: bytes) -> str:
    scheme, _, credential = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise _HandOver
    return credential.strip()


def _is_json(content_type: bytes | None) -> bool:
    """As FastAPI reads a body: JSON when the type is absent, `application/json` or `+json`."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (BodySizeLimit, outside, stops one that is too large), or None when the
    client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, payload: dict[str, Any]) -> None:
    # The bytes Starlette's JSONResponse would send for the same answer.
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    encoded = body.encode("utf-8")
    headers = [
        (b"content-length", str(len(encoded)).encode("latin-1")),
        (b"content-type", b"application/json"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": encoded})


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
