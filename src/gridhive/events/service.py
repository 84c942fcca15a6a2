"""Events: dispatch (validate, resolve, plan, store in one transaction), read, cancel, opt out."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.service import Principal
from gridhive.commands import service as command_service
from gridhive.commands import stamps as command_stamps
from gridhive.commands.models import Command, CommandStatus
from gridhive.errors import FieldError, Unprocessable
from gridhive.events import persistence, repository, views
from gridhive.events.errors import AmbiguousTarget, EventFinished, EventNotFound
from gridhive.events.models import CommandExplanation, Event, SiteEvent
from gridhive.events.planner import plan_event
from gridhive.events.planning.bulk import gc_paused
from gridhive.events.planning.types import (
    ActionSpec,
    DeviceState,
    EventPlan,
    ProgramRules,
)
from gridhive.events.repository import TargetRow
from gridhive.events.schemas import EventCreate
from gridhive.events.state import event_status, is_finished, status_condition
from gridhive.events.validation import ProgramConstraints, event_count_windows, validate_event
from gridhive.kit.ids import new_uuid
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.programs.errors import ProgramNotFound
from gridhive.programs.models import Program
from gridhive.programs.schemas import DispatchRules
from gridhive.webhooks import service as webhook_service


async def get_event_or_raise(
    session: AsyncSession, *, utility_id: uuid.UUID, event_id: uuid.UUID
) -> Event:
    event = await session.get(Event, event_id)
    if event is None or event.utility_id != utility_id:
        raise EventNotFound(f"No event with id {event_id}")
    return event


async def search_events(
    session: AsyncSession, *, utility_id: uuid.UUID, page: Page, statuses: Sequence[str] = ()
) -> Sequence[Event]:
    stmt = sa.select(Event).where(Event.utility_id == utility_id)
    if statuses:
        now = utc_now()
        stmt = stmt.where(sa.or_(*(status_condition(s, now) for s in statuses)))
    stmt = stmt.order_by(Event.starts_at.desc(), Event.id).offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).all()


# Dispatch ------------------------------------------------------------------------------------


async def dispatch_event(session: AsyncSession, principal: Principal, data: EventCreate) -> Event:
    """Validate, resolve targets, plan and store the event, its site events and commands.

    Everything, outbox rows included, is written in the caller's transaction: if any step
    fails nothing of the event exists.
    """
    program = await _program_of_caller(session, principal, data.program_id)
    # Before the stamp: polls wait for this transaction instead of reading past it.
    await command_stamps.hold_for_large_change(session)
    now = utc_now()
    await _validate(session, program, data, now)
    # At 100,000 devices targets, plan and rows are a few million small objects, none of them
    # in a cycle; with the collector on, it walks them again and again (2 s of a 15 s request
    # in bench/plan_event.py). Paused until they are gone (`_plan_and_store` has returned);
    # other tasks on this event loop meanwhile free memory by reference counting only.
    with gc_paused():
        return await _plan_and_store(session, program, data, now)


async def _plan_and_store(
    session: AsyncSession, program: Program, data: EventCreate, now: datetime
) -> Event:
    actions = [ActionSpec(**a.model_dump()) for a in data.actions]
    targets = await _resolve_targets(session, program, data)
    event_id = new_uuid()
    plan = await _plan(session, program, event_id, actions, targets, now)
    event = await persistence.store_event(session, program, event_id, data, plan)
    await persistence.store_plan(session, event, plan, targets, now)
    return event


async def _program_of_caller(
    session: AsyncSession, principal: Principal, program_id: str
) -> Program:
    try:
        program_uuid = uuid.UUID(program_id)
    except ValueError as exc:
        raise ProgramNotFound(f"No program with id {program_id}") from exc
    return await program_service.get_program_or_raise(
        session, program_uuid, utility_id=principal.org_id
    )


async def _validate(
    session: AsyncSession, program: Program, data: EventCreate, now: datetime
) -> None:
    constraints = ProgramConstraints.from_program(
        DispatchRules.model_validate(program.dispatch_rules),
        minimum_reserve_percentage=program.minimum_reserve_percentage,
        participation_months=program.participation_months,
        timezone=program.timezone,
    )
    actions = [ActionSpec(**a.model_dump()) for a in data.actions]
    this_year = this_season = 0
    if actions and (constraints.max_events_per_year or constraints.max_events_per_season):
        windows = event_count_windows(constraints, min(a.starts_at for a in actions))
        this_year = await repository.count_events(session, program.id, *windows.year)
        for start, end in windows.season:
            this_season += await repository.count_events(session, program.id, start, end)
    errors = validate_event(
        constraints,
        data.target_type,
        data.target_ids,
        actions,
        now,
        events_this_year=this_year,
        events_this_season=this_season,
    )
    if errors:
        raise Unprocessable(_summarise(errors), errors=errors)


def _summarise(errors: Sequence[FieldError]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Invalid event at '{first.path}': {first.message}{more}"


async def _resolve_targets(
    session: AsyncSession, program: Program, data: EventCreate
) -> list[TargetRow]:
    """The enrolled devices the event aims at; unknown ids are a 422 naming them."""
    ids = data.target_ids
    if data.target_type == "PROGRAM":
        _require_known(ids, {str(program.id)}, what="program")
        return await repository.devices_of_program(session, program.id)
    if data.target_type == "GROUP":
        rows, known = await repository.devices_of_groups(session, program.id, ids)
        _require_known(ids, known, what="group")
        return rows
    if data.target_type == "SITE":
        rows = await repository.devices_of_sites(session, program.id, ids)
        _require_unambiguous(rows, key=lambda r: r.site_id, what="site")
        _require_known(ids, {r.site_id for r in rows}, what="enrolled site")
        return rows
    rows = await repository.devices_by_ids(session, program.id, ids)
    _require_unambiguous(rows, key=lambda r: r.device_id, what="device")
    _require_known(ids, {r.device_id for r in rows}, what="enrolled device")
    return rows


def _require_known(ids: Sequence[str], known: set[str], *, what: str) -> None:
    unknown = [i for i in dict.fromkeys(ids) if i not in known]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        raise Unprocessable.field(
            "target_ids", f"not a known {what} of this program: {shown}{more}"
        )


def _require_unambiguous(
    rows: Sequence[TargetRow], *, key: Callable[[TargetRow], str], what: str
) -> None:
    """Site and device ids are unique per OEM only; one id naming two OEMs' objects is a 409."""
    tenants: dict[str, set[uuid.UUID]] = defaultdict(set)
    for row in rows:
        tenants[key(row)].add(row.tenant_id)
    clashes = sorted(i for i, owners in tenants.items() if len(owners) > 1)
    if clashes:
        raise AmbiguousTarget(
            f"{what} ids used by more than one device maker in this program: "
            f"{', '.join(clashes[:20])}; target them through a group",
            errors=[FieldError(message=f"ambiguous {what} id", path="target_ids")],
        )


async def _plan(
    session: AsyncSession,
    program: Program,
    event_id: uuid.UUID,
    actions: list[ActionSpec],
    targets: Sequence[TargetRow],
    now: datetime,
) -> EventPlan:
    rules = DispatchRules.model_validate(program.dispatch_rules)
    window_start = min(a.starts_at for a in actions)
    if rules.allow_grid_charging:
        window_start -= timedelta(seconds=rules.max_precharge_s)
    overlapping = await repository.overlapping_commands(
        session, {t.device_pk for t in targets}, window_start, max(a.ends_at for a in actions)
    )
    return plan_event(
        event_id=event_id,
        actions=actions,
        devices=[_device_state(t) for t in targets],
        rules=ProgramRules.from_dispatch_rules(
            rules, minimum_reserve_percentage=program.minimum_reserve_percentage
        ),
        now=now,
        existing_commands=overlapping,
    )


def _device_state(row: TargetRow) -> DeviceState:
    # Positional, in DeviceState's field order: once per device, and keywords cost double.
    return DeviceState(
        row.device_pk,
        row.device_id,
        row.site_pk,
        row.site_id,
        row.device_type,  # type: ignore[arg-type]
        row.capacity_wh,
        row.power_input_w,
        row.power_output_w,
        row.reserve_percentage,
        row.state_of_charge_pct,
        row.is_online,
    )


# Lifecycle -----------------------------------------------------------------------------------


async def cancel_event(session: AsyncSession, event: Event) -> Event:
    """Cancel an unfinished event: unfinished commands become CANCELED and await a new ack."""
    await command_stamps.hold_for_large_change(session)  # before the stamp, as a dispatch
    now = utc_now()
    if is_finished(event, now):
        raise EventFinished(f"Event {event.id} is already {event_status(event, now)}")
    event.canceled_at = now
    event.updated_at = now
    await session.flush()
    commands = await command_service.unfinished_commands(session, event_id=event.id, now=now)
    await command_service.change_status(
        session,
        commands,
        status=CommandStatus.CANCELED,
        reason="Event canceled by the utility",
        event_type="command.canceled",
    )
    await _announce(session, event, "event.canceled", now)
    return event


async def _announce(session: AsyncSession, event: Event, event_type: str, now: datetime) -> None:
    """Tell the utility and every targeted site's OEM that the event changed."""
    site_events = (
        await session.scalars(sa.select(SiteEvent).where(SiteEvent.event_id == event.id))
    ).all()
    await webhook_service.emit(
        session,
        org_id=event.utility_id,
        event_type=event_type,
        object_type="event",
        subject_id=str(event.id),
        event_object=views.utility_event_payload(event, now),
        event_id=event.id,
    )
    await webhook_service.emit_many(
        session,
        event_type=event_type,
        object_type="event",
        messages=[
            (se.tenant_id, se.site_id, views.site_event_payload(event, se, now), event.id, None)
            for se in site_events
        ],
    )


# Site-scoped reads and participation -----------------------------------------------------------


async def search_site_events(
    session: AsyncSession, *, site_pk: uuid.UUID, statuses: Sequence[str], page: Page
) -> Sequence[tuple[Event, SiteEvent]]:
    """The site's events, newest start first."""
    stmt = (
        sa.select(Event, SiteEvent)
        .join(SiteEvent, SiteEvent.event_id == Event.id)
        .where(SiteEvent.site_pk == site_pk)
    )
    if statuses:
        now = utc_now()
        stmt = stmt.where(sa.or_(*(status_condition(s, now) for s in statuses)))
    stmt = stmt.order_by(Event.starts_at.desc(), Event.id).offset(page.skip).limit(page.limit)
    return [(e, se) for e, se in await session.execute(stmt)]


async def get_site_event_or_raise(
    session: AsyncSession, *, site_pk: uuid.UUID, event_id: uuid.UUID
) -> tuple[Event, SiteEvent]:
    row = (
        await session.execute(
            sa.select(Event, SiteEvent)
            .join(SiteEvent, SiteEvent.event_id == Event.id)
            .where(SiteEvent.site_pk == site_pk, Event.id == event_id)
        )
    ).one_or_none()
    if row is None:
        raise EventNotFound(f"No event with id {event_id} for this site")
    event, site_event = row
    return event, site_event


async def set_participation(
    session: AsyncSession, event: Event, site_event: SiteEvent, is_participating: bool
) -> SiteEvent:
    """Opt out until the event ends; opt back in only before it starts (system.md §3)."""
    now = utc_now()
    if site_event.is_participating == is_participating:
        return site_event
    status = event_status(event, now)
    if is_participating and status != "UPCOMING":
        raise EventFinished(f"Opting back in is possible only before the event starts ({status})")
    if not is_participating and status in ("COMPLETED", "CANCELED"):
        raise EventFinished(f"The event is {status}; there is nothing to opt out of")
    site_event.is_participating = is_participating
    site_event.opted_out_at = None if is_participating else now
    site_event.updated_at = now
    await session.flush()
    await _update_site_commands(session, event, site_event, is_participating, now)
    await _announce_site(session, event, site_event, now)
    return site_event


async def _update_site_commands(
    session: AsyncSession,
    event: Event,
    site_event: SiteEvent,
    is_participating: bool,
    now: datetime,
) -> None:
    current = CommandStatus.OPT_OUT if is_participating else CommandStatus.OK
    commands = await command_service.unfinished_commands(
        session, event_id=event.id, now=now, site_event_pk=site_event.pk, status=current
    )
    await command_service.change_status(
        session,
        commands,
        status=CommandStatus.OK if is_participating else CommandStatus.OPT_OUT,
        reason="The homeowner opted back in" if is_participating else "The homeowner opted out",
        event_type="command.updated",
    )


async def _announce_site(
    session: AsyncSession, event: Event, site_event: SiteEvent, now: datetime
) -> None:
    payload = views.site_event_payload(event, site_event, now)
    for org_id in (site_event.tenant_id, event.utility_id):
        await webhook_service.emit(
            session,
            org_id=org_id,
            event_type="event.updated",
            object_type="event",
            subject_id=site_event.site_id,
            event_object=payload,
            event_id=event.id,
        )


# Utility reads ---------------------------------------------------------------------------------


async def event_sites(session: AsyncSession, event: Event) -> list[dict[str, object]]:
    """Participation per site, and what the plan expects of it.

    Expected energy is the sum of setpoint x duration over the site's event commands still in
    force (pre-charges excluded; an opted-out site expects nothing); expected power is that
    energy spread over the event window. Actual figures come from telemetry (None until then).
    """
    in_force = sa.and_(Command.is_preparatory_action.is_(False), Command.status == CommandStatus.OK)
    energy_ws = sa.func.sum(sa.case((in_force, Command.setpoint_w * Command.duration_s), else_=0))
    rows = await session.execute(
        sa.select(SiteEvent.site_id, SiteEvent.is_participating, energy_ws)
        # The event named on both sides: commands are indexed by (event_id, site_event_pk).
        .join(
            Command,
            sa.and_(Command.event_id == event.id, Command.site_event_pk == SiteEvent.pk),
            isouter=True,
        )
        .where(SiteEvent.event_id == event.id)
        .group_by(SiteEvent.pk, SiteEvent.site_id, SiteEvent.is_participating)
        .order_by(SiteEvent.site_id)
    )
    hours = event.duration_s / 3600
    return [
        {
            "site_id": site_id,
            "is_participating": participating,
            "performance_expected_energy_wh": round((total or 0) / 3600, 1),
            "performance_expected_power_w": round((total or 0) / 3600 / hours, 1),
            "performance_actual_energy_wh": None,
            "performance_actual_power_w": None,
        }
        for site_id, participating, total in rows
    ]


async def event_plan(session: AsyncSession, event: Event) -> dict[str, object]:
    """The plan: totals and summary of the event, and every command with its reasons."""
    shared = CommandExplanation
    rows = await session.execute(
        sa.select(Command, shared.body)
        .outerjoin(
            shared,
            sa.and_(
                shared.event_id == Command.event_id, shared.number == Command.explanation_number
            ),
        )
        .where(Command.event_id == event.id)
        .order_by(Command.device_id, Command.starts_at)
    )
    by_device: dict[str, list[dict[str, object]]] = defaultdict(list)
    for command, shared_reasons in rows:
        by_device[command.device_id].append(
            {
                **command_service.command_payload(command),
                "status_reason": command.status_reason,
                "explanation": {**(shared_reasons or {}), **(command.explanation or {})},
            }
        )
    return {
        "event_id": str(event.id),
        "status": event_status(event, utc_now()),
        **event.plan,
        "devices": [{"device_id": d, "commands": c} for d, c in by_device.items()],
    }
