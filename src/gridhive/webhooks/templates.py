"""Payload templates: one stored event object for thousands of messages that differ in ids only.

An event over 100,000 batteries announces 200,000 commands and 100,000 site events. Their wire
forms differ only in the command id and the device or site id, yet stored whole they were
three quarters of the bytes a dispatch writes. So such a message stores no payload of its own:
it names a `PayloadTemplate`, whose body holds `SUBJECT_PLACEHOLDER` where the message's
`subject_id` goes and `COMMAND_PLACEHOLDER` where its `command_id` goes. Filling them in gives
exactly the text the message would have stored (`render`), so what is delivered is still a
snapshot taken in the transaction that made the message, never the resource's later state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as json_string
from typing import Any

import sqlalchemy as sa

from gridhive.db.bulk import json_text, uuid7_hex_stream
from gridhive.webhooks.models import OutboundMessage, PayloadTemplate

# Values no real object carries: a fixed random UUID, and a string with a fixed random part.
# Both are JSON-safe text on both databases (no NUL), so the body is valid JSON as stored and
# SQL can read its other fields (`payload_field`).
COMMAND_PLACEHOLDER = uuid.UUID("9d6e0c57-3a1f-4b8e-a2c4-5f71d08e6b3a")
SUBJECT_PLACEHOLDER = "gridhive-subject-7c41e9b2d05a4f63"
_COMMAND_TOKEN = f'"{COMMAND_PLACEHOLDER}"'
_SUBJECT_TOKEN = json_string(SUBJECT_PLACEHOLDER)

_ids = uuid7_hex_stream()


@dataclass(frozen=True, slots=True)
class Template:
    """A template made in this process and not yet necessarily stored: `emit_many` stores the
    ones its messages use. `text` is the event object's JSON without `object_type`."""

    id: str  # 32 hex digits, as `db.bulk.insert_rows` takes it
    text: str

    @classmethod
    def of(cls, event_object: dict[str, Any], *, command: bool) -> Template:
        """The template of `event_object`, built with the placeholders in place of the ids.

        `command`: whether the object's id is `COMMAND_PLACEHOLDER` (a command's wire form)
        or only its subject is a placeholder (a site event's).
        """
        text = json_text(event_object)
        tokens = (_SUBJECT_TOKEN, _COMMAND_TOKEN) if command else (_SUBJECT_TOKEN,)
        for token in tokens:
            # A wire form that stopped carrying an id verbatim would send the placeholder out.
            if token not in text:
                raise ValueError(f"event object without its placeholder {token}: {text[:200]}")
        return cls(id=next(_ids), text=text)


def render(body: str, subject_id: str, command_id: uuid.UUID | None) -> str:
    """The payload text of a message of this template: its ids in place of the placeholders."""
    text = body.replace(_SUBJECT_TOKEN, json_string(subject_id))
    if command_id is not None:
        text = text.replace(_COMMAND_TOKEN, f'"{command_id}"')
    return text


def payload_field(key: str) -> sa.ColumnElement[str | None]:
    """SQL for the text of `key` in a message's event object, stored whole or by template.

    For queries that join `PayloadTemplate` on `OutboundMessage.template_id` (outer join). A
    template's field that is the subject placeholder reads as the message's `subject_id`.
    """
    own = OutboundMessage.payload[key].as_string()
    shared = PayloadTemplate.body[key].as_string()
    by_template = sa.case((shared == SUBJECT_PLACEHOLDER, OutboundMessage.subject_id), else_=shared)
    return sa.func.coalesce(own, by_template)


def template_join() -> sa.ColumnElement[bool]:
    """The outer-join condition from `OutboundMessage` to its template."""
    return PayloadTemplate.id == OutboundMessage.template_id
