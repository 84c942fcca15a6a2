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

It stands in front of FastAPI's whole middleware stack (`app.GridhiveAPI`), so it adds the
request id header itself. When the caller's credential worked in the last seconds
(`auth.service.remembered`), the acknowledgement is its one UPDATE ... RETURNING in
`db.session.single_statement_unit` (on PostgreSQL without BEGIN and COMMIT, and shared with
the acks that arrive meanwhile: `commands.ack_group`); otherwise the credential is looked up
and the ack written in one ordinary unit of work.
"""

from __future__ import annotations

import json
import re
import uuid
from contextlib import asynccontextmanager
from typing import Any

import pydantic
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.commands import service
from gridhive.commands.ack_group import AckGroup
from gridhive.commands.schemas import CommandAck
from gridhive.db.session import get_session, single_statement_unit

_PATH = re.compile(r"^/v1/commands?/([0-9a-fA-F-]{32,36})$")
_ACK = pydantic.TypeAdapter(CommandAck)


class _HandOver(Exception):
    """The request is not the common case: FastAPI's route answers it."""


class FastAck:
    """The lane, in front of `app` (FastAPI's whole stack: its middleware and ours).

    `application` is the FastAPI object whose state, settings and dependency overrides the lane
    uses; it stands in `scope["app"]` as it would for a route.
    """

    def __init__(self, app: ASGIApp, application: Any) -> None:
        self.app = app
        self.application = application
        self._group: AckGroup | None = None

    def _ack_group(self, engine: AsyncEngine) -> AckGroup | None:
        """Group commit on PostgreSQL; SQLite has one writer at a time and gains nothing."""
        if engine.dialect.name != "postgresql":
            return None
        if self._group is None or self._group.engine is not engine:
            self._group = AckGroup(engine, unit=lambda: single_statement_unit(engine))
        return self._group

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "PATCH":
            await self.app(scope, receive, send)
            return
        # Read as the middleware and Starlette read them: the last of a repeated header wins.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        if _declares_large_body(headers):
            await self.app(scope, receive, send)
            return
        scope["app"] = self.application
        chunks, complete = await _read_body(receive)
        if not complete:  # larger than an acknowledgement can be, or the client went away
            await self.app(scope, _replay(chunks, complete=False, then=receive), send)
            return
        body = b"".join(chunks)
        try:
            payload = await self._acknowledge(scope, headers, match.group(1), body)
        except _HandOver:
            await self.app(scope, _replay([body], complete=True, then=receive), send)
            return
        await _send_json(send, payload, _request_id(headers))

    async def _acknowledge(
        self, scope: Scope, headers: dict[bytes, bytes], command_id: str, body: bytes
    ) -> dict[str, Any]:
        credential = _bearer(headers.get(b"authorization", b""))
        if not _is_json(headers.get(b"content-type")):
            raise _HandOver
        try:
            parsed_id = uuid.UUID(command_id)
            ack = _ACK.validate_json(body)
        except (ValueError, pydantic.ValidationError):
            raise _HandOver from None
        try:
            return await self._store(scope, credential, parsed_id, ack)
        except Exception:  # any failure is the route's to answer
            # The unit of work rolled back, or its commit failed: either way the route may run
            # the acknowledgement again, which is idempotent, and answers (or reports) as usual.
            raise _HandOver from None

    async def _store(
        self, scope: Scope, credential: str, command_id: uuid.UUID, ack: CommandAck
    ) -> dict[str, Any]:
        app = scope["app"]
        provider = app.dependency_overrides.get(get_session, get_session)
        principal = auth_service.remembered(credential)
        if principal is None or provider is not get_session:
            # Look the credential up and store the ack in one unit of work, as the route does
            # (tests replace the unit of work: this is then the path they take).
            async with asynccontextmanager(provider)(Request(scope)) as session:
                principal = await auth_service.authenticate(session, credential)
                _check_caller(principal)
                return await service.acknowledge(
                    session, tenant_id=principal.org_id, command_id=command_id, ack=ack
                )
        # The common case: a caller seen in the last seconds, one UPDATE ... RETURNING, shared
        # with the acks that arrive meanwhile on PostgreSQL. A repeat or an unknown command
        # comes back empty from the group and is told apart one by one.
        _check_caller(principal)
        engine = app.state.engine
        if group := self._ack_group(engine):
            stored = await group.acknowledge(
                tenant_id=principal.org_id, command_id=command_id, ack=ack
            )
            if stored is not None:
                return stored
        async with single_statement_unit(engine) as connection:
            return await service.acknowledge(
                connection, tenant_id=principal.org_id, command_id=command_id, ack=ack
            )


def _check_caller(principal: auth_service.Principal) -> None:
    """Only a device maker's own key or token acknowledges; the route refuses anyone else."""
    if principal.kind is not OrgKind.OEM or principal.via == "site":
        raise _HandOver


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


# An acknowledgement is a status and a reason of at most 500 characters: anything larger is
# not one, and goes to the route (whose body limit answers a body that is too large).
_MAX_ACK_BYTES = 16 * 1024


def _declares_large_body(headers: dict[bytes, bytes]) -> bool:
    declared = headers.get(b"content-length")
    return declared is not None and (not declared.isdigit() or int(declared) > _MAX_ACK_BYTES)


async def _read_body(receive: Receive) -> tuple[list[bytes], bool]:
    """The body's chunks, and whether that is all of it: reading stops past `_MAX_ACK_BYTES`
    and at a disconnect, so the route can be handed what was read and the rest of the stream."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return chunks, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return chunks, True
        if size > _MAX_ACK_BYTES:
            return chunks, False


def _request_id(headers: dict[bytes, bytes]) -> bytes:
    """As `api.middleware.RequestId` would answer: the caller's X-Request-Id or a new one."""
    incoming = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
    return (incoming or uuid.uuid4().hex).encode()


async def _send_json(send: Send, payload: dict[str, Any], request_id: bytes) -> None:
    # The bytes Starlette's JSONResponse would send for the same answer, and RequestId's header.
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    encoded = body.encode("utf-8")
    headers = [
        (b"content-length", str(len(encoded)).encode("latin-1")),
        (b"content-type", b"application/json"),
        (b"x-request-id", request_id),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": encoded})


def _replay(chunks: list[bytes], *, complete: bool, then: Receive) -> Receive:
    """The body read so far as one message (the last one if `complete`), then whatever the
    request's own `receive` still has to give: the rest of the body, or the disconnect."""
    pending = [b"".join(chunks)]

    async def receive() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": not complete}
        return await then()

    return receive
