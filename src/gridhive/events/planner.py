"""The event planner's pure core: validated actions and device rows in, commands out.

No database and no HTTP: `events.service` feeds it rows, bulk-inserts the commands, cancels the
superseded ones and stores `EventPlan.as_json()` on the event, all in one transaction
(system.md §4). Linear in devices x actions apart from one sort per EVEN action: 100,000
devices with a pre-charge each plan in about a second on a slow machine, half that without.

Decisions where the spec is silent:
- Offline devices are still commanded (the OEM cloud queues it; the device may be back before
  the action starts); their explanation says "offline at planning time".
- A device listed twice (e.g. a site in two targeted groups) is planned once.
- `backup_reserve_percentage` is always set: the action's value, else the program minimum.
- Pre-charge details: see `planning/precharge.py`; setpoint rounding: `planning/setpoints.py`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from uuid import UUID

from gridhive.events.planning.bulk import gc_paused, uuid7_stream
from gridhive.events.planning.precharge import (
    Precharge,
    PrechargeDecider,
    precharge_window,
)
from gridhive.events.planning.setpoints import Allocation, cap_each, rating_for, split_evenly
from gridhive.events.planning.summary import summarize
from gridhive.events.planning.supersession import find_superseded
from gridhive.events.planning.types import (
    POWER_MODES,
    ActionPlan,
    ActionSpec,
    BatteryMode,
    DeviceState,
    DeviceType,
    EventPlan,
    ExistingCommand,
    Explanation,
    PlannedCommand,
    PowerMode,
    PrechargeTotals,
    ProgramRules,
    SetpointMode,
    SkippedDevice,
    SkipReason,
    SupersededCommand,
)
from gridhive.kit.time import ensure_utc

__all__ = [
    "ActionPlan",
    "ActionSpec",
    "BatteryMode",
    "DeviceState",
    "DeviceType",
    "EventPlan",
    "ExistingCommand",
    "PlannedCommand",
    "PowerMode",
    "PrechargeTotals",
    "ProgramRules",
    "SetpointMode",
    "SkipReason",
    "SkippedDevice",
    "SupersededCommand",
    "plan_event",
]

_NOT_ALLOWED = "no pre-charge: the program does not allow charging from the grid"
_OFFLINE = "offline at planning time"
_FOLLOWS_LOAD = "expected power unknown: FOLLOW_LOAD follows the home's load"


@dataclass(frozen=True, slots=True)
class _Context:
    """The whole event being planned; the lists are filled in as actions are planned."""

    event_id: UUID
    actions: Sequence[ActionSpec]
    rules: ProgramRules
    ids: Iterator[UUID]
    now: datetime
    reserves: list[int]
    batteries: list[DeviceState]
    commands: list[PlannedCommand]
    # commanded[i] is 1 once batteries[i] has a command (counts participating devices).
    commanded: bytearray
    skipped: list[SkippedDevice]


@dataclass(frozen=True, slots=True)
class _Step:
    """One action with what all its commands share, worked out once rather than per device."""

    index: int
    action: ActionSpec
    starts_at: datetime
    ends_at: datetime
    power_mode: PowerMode | None
    setpoint_mode: SetpointMode
    reserve: int
    reserve_source: str
    direction: str
    notes: tuple[str, ...]
    precharge: PrechargeDecider | None


@dataclass(frozen=True, slots=True)
class _Assignment:
    """The devices that take one action, with their setpoints when the action has them."""

    devices: list[int]
    ratings: list[int]
    allocation: Allocation | None


def plan_event(
    *,
    event_id: UUID,
    actions: Sequence[ActionSpec],
    devices: Sequence[DeviceState],
    rules: ProgramRules,
    now: datetime,
    existing_commands: Iterable[ExistingCommand] = (),
) -> EventPlan:
    """Plan one command per device and action, plus pre-charges, for validated `actions`.

    Commands come out action by action (time order) and, within an action, device by device,
    each pre-charge just before the discharge it prepares.
    """
    _require_validated(actions)
    with gc_paused():
        return _plan(event_id, actions, devices, rules, ensure_utc(now), existing_commands)


def _plan(
    event_id: UUID,
    actions: Sequence[ActionSpec],
    devices: Sequence[DeviceState],
    rules: ProgramRules,
    now: datetime,
    existing_commands: Iterable[ExistingCommand],
) -> EventPlan:
    batteries, skipped, distinct = _eligible_batteries(devices)
    context = _Context(
        event_id=event_id,
        actions=actions,
        rules=rules,
        ids=uuid7_stream(),
        now=now,
        reserves=[_reserve(action, rules) for action in actions],
        batteries=batteries,
        commands=[],
        commanded=bytearray(len(batteries)),
        skipped=skipped,
    )
    action_plans = [_plan_action(context, index) for index in range(len(actions))]
    commands = context.commands
    superseded = find_superseded(commands, existing_commands, event_id)
    participating = context.commanded.count(1)
    summary = summarize(
        action_plans,
        skipped,
        devices_targeted=distinct,
        devices_participating=participating,
        superseded_count=len(superseded),
        superseded_event_count=len({entry.event_id for entry in superseded}),
    )
    return EventPlan(
        event_id=event_id,
        commands=commands,
        superseded=superseded,
        actions=action_plans,
        skipped=skipped,
        devices_targeted=distinct,
        devices_participating=participating,
        summary=summary,
    )


def _require_validated(actions: Sequence[ActionSpec]) -> None:
    # validation.validate_event reports these to the utility; here they are a caller's bug.
    if not actions:
        raise ValueError("an event needs at least one action")
    for earlier, later in pairwise(actions):
        if later.starts_at < earlier.ends_at:
            raise ValueError("actions must be sorted and must not overlap; validate first")


def _reserve(action: ActionSpec, rules: ProgramRules) -> int:
    if action.backup_reserve_percentage is not None:
        return action.backup_reserve_percentage
    return rules.minimum_reserve_percentage


def _eligible_batteries(
    devices: Sequence[DeviceState],
) -> tuple[list[DeviceState], list[SkippedDevice], int]:
    """The batteries that can take commands, the devices skipped, and how many distinct."""
    batteries: list[DeviceState] = []
    skipped: list[SkippedDevice] = []
    seen: set[int] = set()
    for device in devices:
        # UUID's hash is Python code; its int hashes in C, and 100,000 lookups notice.
        key = device.device_pk.int
        if key in seen:
            continue
        seen.add(key)
        if device.type != "BATTERY":
            message = f"not a battery ({device.type}): takes no battery commands"
            skipped.append(_skip(device, "NOT_A_BATTERY", message))
        elif not device.is_participating:
            skipped.append(_skip(device, "SITE_OPTED_OUT", "site opted out of the event"))
        else:
            batteries.append(device)
    return batteries, skipped, len(seen)


def _skip(
    device: DeviceState, reason: SkipReason, message: str, action_index: int | None = None
) -> SkippedDevice:
    return SkippedDevice(
        device_pk=device.device_pk,
        device_id=device.device_id,
        site_id=device.site_id,
        reason=reason,
        message=message,
        action_index=action_index,
    )


def _plan_action(context: _Context, index: int) -> ActionPlan:
    action = context.actions[index]
    step = _step_for(context, index)
    skipped_before = len(context.skipped)
    assignment = _assign(context, step)
    precharge = PrechargeTotals() if action.mode == "DISCHARGE" else None
    device_count, capped = _command_devices(context, step, assignment, precharge)
    allocation = assignment.allocation
    return ActionPlan(
        action_index=index,
        mode=action.mode,
        starts_at=step.starts_at,
        ends_at=step.ends_at,
        power_mode=step.power_mode,
        setpoint_mode=step.setpoint_mode if allocation is not None else None,
        requested_w=allocation.requested_w if allocation is not None else None,
        expected_w=allocation.expected_w if allocation is not None else None,
        device_count=device_count,
        capped_device_count=len(capped),
        capped_ratings_w=(min(capped), max(capped)) if capped else None,
        skipped_device_count=len(context.skipped) - skipped_before,
        precharge=precharge,
        notes=_action_notes(step, allocation, device_count),
    )


def _step_for(context: _Context, index: int) -> _Step:
    action = context.actions[index]
    decider = None
    if action.mode == "DISCHARGE" and context.rules.allow_grid_charging:
        window = precharge_window(
            context.actions,
            index,
            context.now,
            max_precharge_s=context.rules.max_precharge_s,
            reserve_pct=context.reserves,
        )
        decider = PrechargeDecider(window)
    follows_load = action.mode == "DISCHARGE" and action.power_mode == "FOLLOW_LOAD"
    from_action = action.backup_reserve_percentage is not None
    return _Step(
        index=index,
        action=action,
        starts_at=action.starts_at,
        ends_at=action.ends_at,
        power_mode=action.power_mode if action.mode in POWER_MODES else None,
        setpoint_mode=action.setpoint_mode or "PER_DEVICE",
        reserve=context.reserves[index],
        reserve_source="action" if from_action else "program minimum",
        direction="output" if action.mode == "DISCHARGE" else "input",
        notes=(_FOLLOWS_LOAD,) if follows_load else (),
        precharge=decider,
    )


def _assign(context: _Context, step: _Step) -> _Assignment:
    """Which batteries can take the action, and their setpoints if it has any."""
    action = step.action
    batteries = context.batteries
    if action.mode not in POWER_MODES:
        return _Assignment(list(range(len(batteries))), [], None)
    able: list[int] = []
    ratings: list[int] = []
    for device_index, device in enumerate(batteries):
        rating = rating_for(action.mode, device)
        if rating > 0:
            able.append(device_index)
            ratings.append(rating)
        else:
            context.skipped.append(_no_rating(device, action.mode, step.index))
    if action.power_mode != "SETPOINT" or action.setpoint_w is None:
        return _Assignment(able, ratings, None)
    if action.setpoint_mode == "EVEN":
        tie_keys = [batteries[device_index].device_id for device_index in able]
        return _Assignment(able, ratings, split_evenly(action.setpoint_w, ratings, tie_keys))
    return _Assignment(able, ratings, cap_each(action.setpoint_w, ratings))


def _no_rating(device: DeviceState, mode: BatteryMode, index: int) -> SkippedDevice:
    if mode == "DISCHARGE":
        return _skip(device, "NO_OUTPUT_RATING", "rated output is 0 W: cannot discharge", index)
    return _skip(device, "NO_INPUT_RATING", "rated input is 0 W: cannot charge", index)


def _command_devices(
    context: _Context,
    step: _Step,
    assignment: _Assignment,
    precharge: PrechargeTotals | None,
) -> tuple[int, list[int]]:
    """Append the action's command (after its pre-charge, if any) for each able device.

    Returns how many devices got the command and the ratings of those capped. The hot loop of
    the planner: what all devices share is worked out once in `step`.
    """
    allocation = assignment.allocation
    capped_ratings: list[int] = []
    count = 0
    for position, device_index in enumerate(assignment.devices):
        device = context.batteries[device_index]
        setpoint = rating = capped = None
        if allocation is None:
            explanation = _explain(step, device)
        else:
            setpoint = allocation.setpoints[position]
            if setpoint == 0:
                message = "the even share rounds to 0 W"
                context.skipped.append(_skip(device, "ZERO_SHARE", message, step.index))
                continue
            rating = assignment.ratings[position]
            capped = allocation.capped[position]
            if capped:
                capped_ratings.append(rating)
            explanation = _explain_share(step, device, allocation, setpoint, rating, capped)
        note = None
        if precharge is not None:
            note = _add_precharge(context, step, device, precharge, explanation)
        # Everything the explanation was built from (see PlannedCommand.explanation_key).
        key = (step.index, setpoint, rating, capped, device.is_online is False, note)
        command = _action_command(context, step, device, setpoint, explanation, key)
        context.commands.append(command)
        context.commanded[device_index] = 1
        count += 1
    return count, capped_ratings


def _explain(step: _Step, device: DeviceState) -> Explanation:
    notes = list(step.notes)
    if device.is_online is False:
        notes.append(_OFFLINE)
    return {
        "kind": "action",
        "action_index": step.index,
        "mode": step.action.mode,
        "backup_reserve_percentage": step.reserve,
        "reserve_source": step.reserve_source,
        "notes": notes,
    }


def _explain_share(
    step: _Step,
    device: DeviceState,
    allocation: Allocation,
    share: int,
    rating: int,
    capped: bool,
) -> Explanation:
    notes = list(step.notes)
    if capped:
        notes.append(f"capped at rated {step.direction} {rating:,} W")
    if device.is_online is False:
        notes.append(_OFFLINE)
    return {
        "kind": "action",
        "action_index": step.index,
        "mode": step.action.mode,
        "backup_reserve_percentage": step.reserve,
        "reserve_source": step.reserve_source,
        "setpoint_mode": step.setpoint_mode,
        "requested_w": step.action.setpoint_w,
        "rating_w": rating,
        "share_w": share,
        # Of the expected total, so that the shares of an action add up to 1.
        "share_of_total": share / allocation.expected_w,
        "capped": capped,
        "notes": notes,
    }


def _action_command(
    context: _Context,
    step: _Step,
    device: DeviceState,
    setpoint: int | None,
    explanation: Explanation,
    explanation_key: Hashable,
) -> PlannedCommand:
    # Positional: keyword binding of 18 arguments cost three times the call itself, and this
    # runs once per command. Fields in PlannedCommand's order.
    return PlannedCommand(
        next(context.ids),  # id
        context.event_id,
        device.device_pk,
        device.device_id,
        device.site_pk,
        device.site_id,
        step.index,  # action_index
        step.starts_at,
        step.ends_at,
        step.action.duration_s,
        False,  # is_preparatory_action
        step.action.mode,
        step.power_mode,
        setpoint,  # setpoint_w
        step.action.enable_grid_import,
        step.reserve,  # backup_reserve_percentage
        explanation,
        explanation_key,
    )


def _add_precharge(
    context: _Context,
    step: _Step,
    device: DeviceState,
    totals: PrechargeTotals,
    explanation: Explanation,
) -> Hashable:
    """Decide the pre-charge before a DISCHARGE and note the outcome on the discharge command.

    Returns what the note depends on, for the discharge's explanation key.
    """
    decider = step.precharge
    if decider is None:
        totals.outcomes["not_allowed"] += 1
        explanation["precharge"] = {"planned": False, "reason": _NOT_ALLOWED}
        return _NOT_ALLOWED
    decision = decider.decide(device)
    for outcome in decision.outcomes:
        totals.outcomes[outcome] += 1
    precharge = decision.precharge
    if precharge is None:
        explanation["precharge"] = {"planned": False, "reason": decision.reason}
        return decision.reason
    totals.planned += 1
    if totals.earliest_starts_at is None or precharge.starts_at < totals.earliest_starts_at:
        totals.earliest_starts_at = precharge.starts_at
    explanation["precharge"] = {"planned": True, "duration_s": precharge.duration_s}
    context.commands.append(_precharge_command(context, step, device, precharge))
    return precharge.duration_s


def _precharge_command(
    context: _Context, step: _Step, device: DeviceState, precharge: Precharge
) -> PlannedCommand:
    # Flip's shape for a pre-charge: CHARGE at the input rating from the grid (system.md §4).
    explanation = precharge.explain()
    if device.is_online is False:
        explanation["notes"].append(_OFFLINE)
    return PlannedCommand(  # positional, as in _action_command
        next(context.ids),  # id
        context.event_id,
        device.device_pk,
        device.device_id,
        device.site_pk,
        device.site_id,
        step.index,  # action_index: the action it prepares
        precharge.starts_at,
        step.starts_at,  # ends_at: when the discharge starts
        precharge.duration_s,
        True,  # is_preparatory_action
        "CHARGE",
        "SETPOINT",
        device.power_input_w,  # setpoint_w
        True,  # enable_grid_import
        step.reserve,  # backup_reserve_percentage
        explanation,
        # The decider gives devices alike in these the same pre-charge (and explanation).
        (
            "precharge",
            step.index,
            device.power_input_w,
            device.capacity_wh,
            device.state_of_charge_pct,
            device.reserve_percentage,
            device.is_online is False,
        ),
    )


def _action_notes(step: _Step, allocation: Allocation | None, device_count: int) -> list[str]:
    notes: list[str] = []
    if device_count == 0:
        notes.append("no battery can take this action")
    if allocation is not None and allocation.expected_w < allocation.requested_w:
        shortfall = allocation.requested_w - allocation.expected_w
        notes.append(f"the fleet cannot reach the requested power: {shortfall:,} W short")
    notes.extend(step.notes)
    return notes
