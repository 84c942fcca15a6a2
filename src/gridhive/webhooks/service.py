"""emit(): every outbound message is a row written in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

# The bulk plumbing lived here first; `as` re-exports keep older imports of it working.
from gridhive.db.bulk import DriverValues as DriverValues
from gridhive.db.bulk import insert_rows as insert_rows
from gridhive.db.bulk import json_text as json_text
from gridhive.db.bulk import uuid7_hex_stream as uuid7_hex_stream
from gridhive.kit.time import utc_now
from gridhive.webhooks import repository
from gridhive.webhooks.models import (
    Channel,
    Delivery,
    DeliveryMode,
    OutboundMessage,
    PayloadTemplate,
)
from gridhive.webhooks.templates import Template


async def emit(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    event_type: str,
    object_type: str,
    subject_id: str,
    event_object: dict[str, Any],
    event_id: uuid.UUID | None = None,
    command_id: uuid.UUID | None = None,
) -> OutboundMessage:
    """Record `event_type` for `org_id`; delivery happens after commit, never inside a request.

    `event_object` is the wire form of the resource (JSON-ready); `object_type` is added to it
    as the webhook envelope requires. `event_id` / `command_id` name the demand-response event
    and command the message is about, if any (timelines and ack deadlines look them up).
    """
    message = OutboundMessage(
        org_id=org_id,
        event_type=event_type,
        object_type=object_type,
        subject_id=subject_id,
        payload={**event_object, "object_type": object_type},
        event_id=event_id,
        command_id=command_id,
    )
    session.add(message)
    await session.flush()
    await fan_out(session, [(message.id, org_id, event_type)])
    return message


async def emit_many(
    session: AsyncSession,
    *,
    event_type: str,
    object_type: str,
    messages: Iterable[MessageRow],
) -> None:
    """Bulk form of `emit` for planning at fleet scale: one `MessageRow` per message.

    One bulk statement instead of an ORM object per row: an event over 100,000 batteries writes
    100,000 `command.created` messages inside the request's transaction. An `event_object` may
    also come as the JSON text of an object without `object_type`, to which it is added here,
    or as a `templates.Template` (an event's commands and site events: the message then stores
    no payload of its own, and the template is stored once). `messages` may be a generator:
    rows stream into the database as they are made.
    """
    if isinstance(messages, Sized) and not len(messages):
        return
    refs: list[MessageRef] = []
    used: dict[str, Template] = {}
    rows = _message_rows(session, event_type, object_type, messages, refs, used)
    await insert_rows(session, OutboundMessage, MESSAGE_COLUMNS, rows)
    await _store_templates(session, object_type, used.values())
    await fan_out(session, refs)


class TemplatedMessages:
    """Messages of one type, all with template payloads, added one by one by a caller that
    makes thousands at once (an event's site events and commands) and stored by `emit_batch`.

    `emit_many` takes the same messages as `MessageRow`s through a generator, with a type check
    and id conversions per row; here `add` appends the finished row, with ids already as 32 hex
    digits (`db.bulk.insert_rows`' form), so that a message costs one call.
    """

    def __init__(self, session: AsyncSession, *, event_type: str, object_type: str) -> None:
        self.event_type = event_type
        self.object_type = object_type
        self.rows: list[tuple[Any, ...]] = []
        self.templates: dict[str, Template] = {}
        self._created_at = DriverValues.of(session).datetime(utc_now())
        self._ids = uuid7_hex_stream()

    def add(
        self,
        org_hex: str,
        subject_id: str,
        template: Template,
        event_hex: str | None,
        command_hex: str | None = None,
    ) -> None:
        self.rows.append(
            (
                next(self._ids),
                org_hex,
                self.event_type,
                self.object_type,
                subject_id,
                None,  # payload: the template's
                template.id,
                event_hex,
                command_hex,
                self._created_at,
            )
        )
        if template.id not in self.templates:
            self.templates[template.id] = template


async def emit_batch(session: AsyncSession, batch: TemplatedMessages) -> None:
    """Store `batch` as `emit_many` stores its messages: rows, their templates, deliveries."""
    if not batch.rows:
        return
    await insert_rows(session, OutboundMessage, MESSAGE_COLUMNS, batch.rows)
    await _store_templates(session, batch.object_type, batch.templates.values())
    await fan_out(session, [row[:3] for row in batch.rows])  # (id, org, event type)


async def _store_templates(
    session: AsyncSession, object_type: str, templates: Iterable[Template]
) -> None:
    """Store the templates one `emit_many` call's messages named (a template serves one call:
    passing it to a second would store it twice, which its primary key refuses)."""
    created_at = DriverValues.of(session).datetime(utc_now())
    tail = _object_type_tail(object_type)
    rows = [(t.id, _with_object_type(t.text, tail), created_at) for t in templates]
    await insert_rows(session, PayloadTemplate, ("id", "body", "created_at"), rows)


def _object_type_tail(object_type: str) -> str:
    return f'"object_type":{json_text(object_type)}}}'


def _with_object_type(event_object: str, tail: str) -> str:
    """'{..."x":1}' -> '{..."x":1,"object_type":"..."}'; '{}' -> '{"object_type":"..."}'."""
    text = event_object if event_object[-1:] == "}" else event_object.rstrip()
    head = text[:-1]
    if head[-1:] in _OPENERS:  # '{' or whitespace: the object may be empty
        head = head.rstrip()
        return f"{head}{tail}" if head.endswith("{") else f"{head},{tail}"
    return f"{head},{tail}"


def _message_rows(
    session: AsyncSession,
    event_type: str,
    object_type: str,
    messages: Iterable[MessageRow],
    refs: list[MessageRef],
    templates: dict[str, Template],
) -> Iterator[tuple[Any, ...]]:
    """Outbound message rows for `insert_rows`; each message's reference goes into `refs` and
    each template a message names into `templates`."""
    created_at = DriverValues.of(session).datetime(utc_now())
    tail = _object_type_tail(object_type)
    ids = uuid7_hex_stream()
    encode = json_text
    # Thousands of messages in a row share their org and event: their hex is worked out once
    # per run of the same object (`UUID.hex` is Python code, and 300,000 calls show).
    last_org: uuid.UUID | None = None
    last_event: uuid.UUID | None = None
    org, event = "", None
    for org_id, subject_id, event_object, event_id, command_id in messages:
        template_id = None
        if isinstance(event_object, Template):
            payload, template_id = None, event_object.id
            templates[template_id] = event_object
        elif isinstance(event_object, str):
            payload = _with_object_type(event_object, tail)
        else:
            payload = encode({**event_object, "object_type": object_type})
        if org_id is not last_org:
            last_org, org = org_id, org_id.hex
        if event_id is not last_event:
            last_event, event = event_id, event_id and event_id.hex
        message_id = next(ids)
        refs.append((message_id, org, event_type))
        yield (
            message_id,
            org,
            event_type,
            object_type,
            subject_id,
            payload,
            template_id,
            event,
            command_id and command_id.hex,
            created_at,
        )


_OPENERS = frozenset("{ \t\r\n")


MESSAGE_COLUMNS = (
    "id",
    "org_id",
    "event_type",
    "object_type",
    "subject_id",
    "payload",
    "template_id",
    "event_id",
    "command_id",
    "created_at",
)

# (org_id, subject_id, event_object, event_id, command_id): the arguments of `emit`, as a row.
MessageRow = tuple[
    uuid.UUID, str, dict[str, Any] | str | Template, uuid.UUID | None, uuid.UUID | None
]


# Fan-out: messages -> deliveries ---------------------------------------------------------------

# (message id, org id, event type); ids as UUIDs or as 32 hex digits (`UUID.hex`).
MessageRef = tuple[uuid.UUID | str, uuid.UUID | str, str]
TEST_EVENT_TYPE = "webhook.test"  # sent to one endpoint on request, never fanned out

DELIVERY_COLUMNS = (
    "id",
    "message_id",
    "endpoint_id",
    "channel",
    "state",
    "seq",
    "attempts",
    "due_at",
    "created_at",
)


def _hex(value: uuid.UUID | str) -> str:
    if isinstance(value, str) and len(value) == 32:
        return value
    return value.hex if isinstance(value, uuid.UUID) else uuid.UUID(value).hex


async def fan_out(session: AsyncSession, messages: Sequence[MessageRef]) -> int:
    """Create, in the caller's transaction, one delivery per message and target, in order.

    Targets follow the organisation's delivery mode: `webhook` (no settings row) - every
    enabled or suspended endpoint subscribed to the event type; `mqtt` - one MQTT delivery;
    `polling` - none. Returns the number of deliveries created.
    """
    if not messages:
        return 0
    # Distinct first (a set of a few ids), then converted: one `_hex` call per org, not per row.
    orgs = {_hex(org) for org in {org for _, org, _ in messages}}
    routes = await repository.routes_for(session, [uuid.UUID(org) for org in orgs])
    by_hex = {org_id.hex: route for org_id, route in routes.items()}
    if not any(r.mode is DeliveryMode.MQTT or r.endpoints for r in by_hex.values()):
        return 0
    lanes_of = {org: _lanes(route) for org, route in by_hex.items()}
    lanes_by_given: dict[object, list[_Lane]] = {}  # by the org as the message names it
    targets: list[tuple[str, str | None, Channel]] = []
    for message_id, org, event_type in messages:
        lanes = lanes_by_given.get(org)
        if lanes is None:
            lanes = lanes_by_given[org] = lanes_of[_hex(org)]
        if not lanes or event_type == TEST_EVENT_TYPE:
            continue
        message = _hex(message_id)
        for endpoint, channel, types in lanes:
            if types is None or event_type in types:
                targets.append((message, endpoint, channel))
    return await enqueue_deliveries(session, targets)


# (endpoint id hex or None, channel, subscribed event types or None for all)
_Lane = tuple[str | None, Channel, frozenset[str] | None]


def _lanes(route: repository.Route) -> list[_Lane]:
    """Where each message of an organisation with this route goes (no lane: polling)."""
    if route.mode is DeliveryMode.POLLING:
        return []
    if route.mode is DeliveryMode.MQTT:
        return [(None, Channel.MQTT, None)]
    return [(endpoint_id.hex, Channel.WEBHOOK, types) for endpoint_id, types in route.endpoints]


async def enqueue_deliveries(
    session: AsyncSession, targets: Sequence[tuple[str, str | None, Channel]]
) -> int:
    """Insert pending deliveries (message id hex, endpoint id hex or None, channel), due now."""
    if not targets:
        return 0
    start = await repository.next_seq(session)
    now = DriverValues.of(session).datetime(utc_now())
    ids = uuid7_hex_stream()  # increasing: the primary-key index appends
    rows = [
        (next(ids), message_id, endpoint_id, channel.value, "pending", start + i, 0, now, now)
        for i, (message_id, endpoint_id, channel) in enumerate(targets)
    ]
    await insert_rows(session, Delivery, DELIVERY_COLUMNS, rows)
    return len(rows)
