"""Storing a planned event: the event, its site events, commands and outbox rows.

An event over 100,000 batteries writes some 100,000 site events, 200,000 commands and 300,000
outbound messages inside the request's transaction (system.md §4). So rows are plain tuples
built straight from the planner's `PlannedCommand`s and written with one bulk statement per
table (`db.bulk.insert_rows`: COPY on PostgreSQL, executemany on SQLite): no ORM object
and no SQLAlchemy processing per row. Rows are generated as the database takes them, so on
PostgreSQL the server inserts one batch while the next is being built.

Each JSON value is serialised once. The wire forms of site events and commands, which differ
only in an id or two between thousands of rows, are built by the functions that build them for
every other message (`views.site_event_payload`, `command_service.command_payload`) once per
shape, with placeholders for the ids, and stored once as a payload template that the messages
name (webhooks/templates.py). Explanations are stored once per
`PlannedCommand.explanation_key` (`CommandExplanation`); a command keeps only its own reasons.
Superseded commands are canceled in bulk too: one UPDATE ... RETURNING per chunk of ids, and
their `command.canceled` messages from templates.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import rows as command_rows
from gridhive.commands.models import Command, CommandStatus, DeviceStatus
from gridhive.db.bulk import DriverValues, insert_rows, json_text, uuid7_hex_stream
from gridhive.events import repository, ticks, views
from gridhive.events.models import CommandExplanation, Event, SiteEvent
from gridhive.events.planning.types import (
    PER_COMMAND_REASONS,
    EventPlan,
    Explanation,
)
from gridhive.events.repository import CanceledCommand, TargetRow
from gridhive.events.schemas import EventCreate
from gridhive.kit.time import isoformat_z
from gridhive.programs.models import Program
from gridhive.webhooks import service as webhook_service
from gridhive.webhooks.service import MessageRow, TemplatedMessages
from gridhive.webhooks.templates import COMMAND_PLACEHOLDER, SUBJECT_PLACEHOLDER, Template

SITE_EVENT_COLUMNS = (
    "pk",
    "event_id",
    "site_pk",
    "tenant_id",
    "site_id",
    "is_participating",
    "created_at",
    "updated_at",
)
# status_reason, device_status_reason and acknowledged_at start NULL and are left out.
COMMAND_COLUMNS = (
    "id",
    "event_id",
    "site_event_pk",
    "tenant_id",
    "device_pk",
    "device_id",
    "action_index",
    "starts_at",
    "ends_at",
    "duration_s",
    "is_preparatory_action",
    "mode",
    "power_mode",
    "setpoint_w",
    "enable_grid_import",
    "backup_reserve_percentage",
    "status",
    "device_status",
    "explanation_number",
    "explanation",
    "created_at",
    "updated_at",
)
EXPLANATION_COLUMNS = ("event_id", "number", "body")


class _Memo(dict[Hashable, Any]):
    """`memo[key]` computes `make(key)` once per distinct key (a C-speed lookup after that)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: Hashable) -> Any:
        value = self[key] = self._make(key)
        return value


async def store_event(
    session: AsyncSession,
    program: Program,
    event_id: uuid.UUID,
    data: EventCreate,
    plan: EventPlan,
) -> Event:
    actions = [a.model_dump(mode="json") for a in data.actions]
    for stored, action in zip(actions, data.actions, strict=True):
        stored["starts_at"] = isoformat_z(action.starts_at)
    starts_at = min(a.starts_at for a in data.actions)
    ends_at = max(a.starts_at + timedelta(seconds=a.duration_s) for a in data.actions)
    event = Event(
        id=event_id,
        program_id=program.id,
        utility_id=program.utility_id,
        target_type=data.target_type,
        target_ids=list(data.target_ids),
        actions=actions,
        starts_at=starts_at,
        ends_at=ends_at,
        duration_s=int((ends_at - starts_at).total_seconds()),
        plan=plan.as_json(),
    )
    session.add(event)
    await session.flush()
    return event


async def store_plan(
    session: AsyncSession,
    event: Event,
    plan: EventPlan,
    targets: Sequence[TargetRow],
    now: datetime,
) -> None:
    """Site events, commands, supersessions and their outbox rows, in bulk statements."""
    site_messages = TemplatedMessages(session, event_type="event.created", object_type="event")
    command_messages = TemplatedMessages(
        session, event_type="command.created", object_type="command"
    )
    rows = _PlanRows(event, plan, targets, DriverValues.of(session), now)
    await insert_rows(session, SiteEvent, SITE_EVENT_COLUMNS, rows.site_events(site_messages))
    await insert_rows(session, Command, COMMAND_COLUMNS, rows.commands(command_messages))
    await insert_rows(session, CommandExplanation, EXPLANATION_COLUMNS, rows.shared_explanations)
    await _supersede(session, plan, now)
    await webhook_service.emit(
        session,
        org_id=event.utility_id,
        event_type="event.created",
        object_type="event",
        subject_id=str(event.id),
        event_object=views.utility_event_payload(event, now),
        event_id=event.id,
    )
    await webhook_service.emit_batch(session, site_messages)
    await webhook_service.emit_batch(session, command_messages)
    await ticks.schedule_event(session, event, plan)


class _PlanRows:
    """The rows of one plan, generated in `store_plan`'s order (site events first: commands
    refer to them) with what they share worked out once."""

    def __init__(
        self,
        event: Event,
        plan: EventPlan,
        targets: Sequence[TargetRow],
        values: DriverValues,
        now: datetime,
    ) -> None:
        self.event = event
        self.commands_planned = plan.commands
        self.now = now
        self.values = values
        self.stamp = values.datetime(now)
        self.event_pk = event.id.hex
        # Keyed by the UUID's int: a UUID hashes in Python code, an int in C.
        self.tenant_of_site = {t.site_pk.int: t.tenant_id for t in targets}
        self.tenant_pk = _Memo(lambda tenant_id: tenant_id.hex)
        # One site event per site that got at least one command, in plan order.
        self.sites = {pc.site_pk.int: pc for pc in plan.commands}
        self.pk_of_site = dict(zip(self.sites, uuid7_hex_stream(), strict=False))
        # Explanation number by key, and the rows of `command_explanations`, as `commands()`
        # meets each kind of command for the first time.
        self.explanation_numbers: dict[Hashable, int] = {}
        self.shared_explanations: list[tuple[str, int, str]] = []

    def site_events(self, messages: TemplatedMessages) -> Iterator[tuple[Any, ...]]:
        """Site event rows; each site's `event.created` (its OEM's) goes into `messages`."""
        stamp, event_pk, tenant_pk = self.stamp, self.event_pk, self.tenant_pk
        template = _site_event_template(self.event, self.now)
        announce = messages.add
        for key, pc in self.sites.items():
            tenant = tenant_pk[self.tenant_of_site[key]]
            yield (
                self.pk_of_site[key],
                event_pk,
                pc.site_pk.hex,
                tenant,
                pc.site_id,
                True,
                stamp,
                stamp,
            )
            announce(tenant, pc.site_id, template, event_pk)

    def commands(self, messages: TemplatedMessages) -> Iterator[tuple[Any, ...]]:
        """Command rows; each command's `command.created` (its OEM's) goes into `messages`,
        its wire form a template per shape of command."""
        stamp, event_pk, tenant_pk = self.stamp, self.event_pk, self.tenant_pk
        pk_of_site, tenant_of_site = self.pk_of_site, self.tenant_of_site
        when = _Memo(self.values.datetime)
        event_id, now = self.event.id, self.now
        templates = _Memo(lambda shape: _command_template(event_id, now, *shape))
        announce = messages.add
        ok, pending = CommandStatus.OK.value, DeviceStatus.PENDING.value
        number_of = self.explanation_numbers
        for pc in self.commands_planned:
            site = pc.site_pk.int
            key = pc.explanation_key
            own: str | None
            if key is None:  # no promise to share: all its reasons are its own
                number, own = None, json_text(pc.explanation)
            else:
                number = number_of.get(key)
                if number is None:
                    number = number_of[key] = self._share(pc.explanation, len(number_of))
                own = _own_reasons(pc.explanation)
            command_pk, tenant = pc.id.hex, tenant_pk[tenant_of_site[site]]
            # What the wire form depends on besides the ids (`_command_template`).
            shape = (
                pc.starts_at,
                pc.ends_at,
                pc.duration_s,
                pc.is_preparatory_action,
                pc.mode,
                pc.power_mode,
                pc.setpoint_w,
                pc.enable_grid_import,
                pc.backup_reserve_percentage,
            )
            yield (
                command_pk,
                event_pk,
                pk_of_site[site],
                tenant,
                pc.device_pk.hex,
                pc.device_id,
                pc.action_index,
                when[pc.starts_at],
                when[pc.ends_at],
                *shape[2:],
                ok,
                pending,
                number,
                own,
                stamp,
                stamp,
            )
            announce(tenant, pc.device_id, templates[shape], event_pk, command_pk)

    def _share(self, explanation: Explanation, number: int) -> int:
        """Keep the shared reasons of a new kind of command as explanation `number`."""
        shared = {k: v for k, v in explanation.items() if k not in PER_COMMAND_REASONS}
        self.shared_explanations.append((self.event_pk, number, json_text(shared)))
        return number


def _own_reasons(explanation: Explanation) -> str | None:
    """The JSON of the reasons that are this command's alone, if it has any."""
    if explanation.keys().isdisjoint(PER_COMMAND_REASONS):
        return None
    return json_text({k: explanation[k] for k in PER_COMMAND_REASONS if k in explanation})


async def _supersede(session: AsyncSession, plan: EventPlan, now: datetime) -> None:
    """Cancel the older commands the plan supersedes and tell their OEMs (`command.canceled`).

    What `command_service.change_status` does for a handful of commands, in bulk: a new event
    over a fleet already in another one supersedes a command or two per battery. One UPDATE
    per chunk of ids returns what the wire form needs, and the messages reuse the templates.
    Only commands still in force change: one canceled since planning stays as it is.
    """
    if not plan.superseded:
        return
    reason = f"Superseded by event {plan.event_id}"
    ids = [entry.command_id for entry in plan.superseded]
    canceled = await repository.cancel_commands_in_force(session, ids, reason=reason, now=now)
    await webhook_service.emit_many(
        session,
        event_type="command.canceled",
        object_type="command",
        messages=_canceled_messages(canceled, reason, now),
    )


def _canceled_messages(
    rows: Sequence[CanceledCommand], reason: str, now: datetime
) -> Iterator[MessageRow]:
    def template(shape: tuple[Any, ...]) -> Template:
        return _command_template(
            *shape,
            status=CommandStatus.CANCELED,
            device_status_reason=reason,
            updated_at=now,
        )

    templates = _Memo(template)
    for command_id, device_id, tenant_id, *shape in rows:
        yield tenant_id, device_id, templates[tuple(shape)], shape[0], command_id


def _site_event_template(event: Event, now: datetime) -> Template:
    """`views.site_event_payload` for every site of the event, with the site id left open."""
    placeholder = SiteEvent(
        site_id=SUBJECT_PLACEHOLDER, is_participating=True, created_at=now, updated_at=now
    )
    return Template.of(views.site_event_payload(event, placeholder, now), command=False)


# A placeholder's tenant: the wire form does not show it (`command_service.command_payload`).
_NO_TENANT = uuid.UUID(int=0)


def _command_template(
    event_id: uuid.UUID,
    created_at: datetime,
    *battery_command: Any,
    status: CommandStatus = CommandStatus.OK,
    device_status_reason: str | None = None,
    updated_at: datetime | None = None,
) -> Template:
    """`command_service.command_payload` of a command of this shape, ids left open."""
    starts_at, ends_at, duration_s, preparatory, mode, power_mode, setpoint_w, grid, reserve = (
        battery_command
    )
    placeholder = command_rows.CommandRow(
        id=COMMAND_PLACEHOLDER,
        event_id=event_id,
        tenant_id=_NO_TENANT,
        device_id=SUBJECT_PLACEHOLDER,
        starts_at=starts_at,
        ends_at=ends_at,
        duration_s=duration_s,
        is_preparatory_action=preparatory,
        mode=mode,
        power_mode=power_mode,
        setpoint_w=setpoint_w,
        enable_grid_import=grid,
        backup_reserve_percentage=reserve,
        status=status,
        device_status=DeviceStatus.PENDING,
        device_status_reason=device_status_reason,
        created_at=created_at,
        updated_at=updated_at or created_at,
    )
    return Template.of(command_rows.payload(placeholder), command=True)
