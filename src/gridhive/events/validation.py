"""The business rules a new event must pass (system.md §4), as one pure function.

`validate_event` returns one `FieldError` per broken rule, with a dotted path naming the field
(`actions.1.starts_at`); the service raises `Unprocessable` with all of them. Wire shapes
(types, enums) are the schema's job; unknown target ids are resolved against the database later.

Decisions where the spec is silent:
- Times are compared in UTC; hour and month rules use the program's IANA timezone.
- Hours: the event must start at or after `earliest_hour` and end at or before `latest_hour`
  on the local day it starts (`latest_hour=24` is midnight ending that day), so an event never
  runs across local midnight when `latest_hour` is set.
- Months: every action must start and end (its last instant) in a participation month.
- Year and season counts are the caller's: the program's events that are not canceled and
  start in the local calendar year of the new event's first start (not of `now`: an event on
  2 January planned on 31 December counts against the new year), and of those the ones whose
  local start month is a participation month ("season"). `event_count_windows` gives the UTC
  windows to count in. The new event must fit: count + 1 <= limit.
- Paths: rules about the event as a whole name `actions` (duration), the first action's
  `starts_at` (earliest hour, notice), the last action's `duration_s` (latest hour, since it
  sets the end) or `program_id` (yearly and seasonal limits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gridhive.errors import FieldError
from gridhive.events.planning.types import POWER_MODES, ActionSpec
from gridhive.kit.time import ensure_utc

if TYPE_CHECKING:
    from gridhive.programs.schemas import DispatchRules

PAST_GRACE_S = 60
TARGET_TYPES = frozenset({"DEVICE", "GROUP", "PROGRAM", "SITE"})
DEFAULT_TIMEZONE = "America/Los_Angeles"


@dataclass(frozen=True, slots=True)
class ProgramConstraints:
    """What validation needs from the program: reserve, months, timezone, dispatch rules."""

    minimum_reserve_percentage: int = 0
    participation_months: frozenset[int] = frozenset(range(1, 13))
    timezone: str = DEFAULT_TIMEZONE
    max_event_duration_s: int | None = None
    max_events_per_year: int | None = None
    max_events_per_season: int | None = None
    earliest_hour: int | None = None
    latest_hour: int | None = None
    minimum_notice_s: int | None = None

    @classmethod
    def from_program(
        cls,
        rules: DispatchRules,
        *,
        minimum_reserve_percentage: int,
        participation_months: Sequence[int],
        timezone: str,
    ) -> ProgramConstraints:
        return cls(
            minimum_reserve_percentage=minimum_reserve_percentage,
            participation_months=frozenset(participation_months),
            timezone=timezone,
            max_event_duration_s=rules.max_event_duration_s,
            max_events_per_year=rules.max_events_per_year,
            max_events_per_season=rules.max_events_per_season,
            earliest_hour=rules.earliest_hour,
            latest_hour=rules.latest_hour,
            minimum_notice_s=rules.minimum_notice_s,
        )


@dataclass(frozen=True, slots=True)
class CountWindows:
    """UTC windows [start, end) in which to count the program's earlier events."""

    year: tuple[datetime, datetime]
    season: list[tuple[datetime, datetime]]


def validate_event(
    program: ProgramConstraints,
    target_type: str,
    target_ids: Sequence[str],
    actions: Sequence[ActionSpec],
    now: datetime,
    *,
    events_this_year: int = 0,
    events_this_season: int = 0,
) -> list[FieldError]:
    """Every broken rule of a new event, in field order; empty when the event may go ahead."""
    now = ensure_utc(now)
    errors = list(_check_targets(target_type, target_ids))
    if not actions:
        errors.append(FieldError("an event needs at least one action", "actions"))
        return errors
    for index, action in enumerate(actions):
        errors.extend(_check_action(program, index, action, now))
    errors.extend(_check_order(actions))
    errors.extend(_check_months(program, actions))
    errors.extend(_check_dispatch_rules(program, actions, now))
    errors.extend(_check_counts(program, events_this_year, events_this_season))
    return errors


def event_count_windows(program: ProgramConstraints, first_starts_at: datetime) -> CountWindows:
    """Where to count the program's events for the yearly and seasonal limits (see above)."""
    zone = ZoneInfo(program.timezone)
    year = ensure_utc(first_starts_at).astimezone(zone).year
    season: list[tuple[datetime, datetime]] = []
    for month in sorted(program.participation_months):
        start, end = _month_start(year, month, zone), _month_start(year, month + 1, zone)
        if season and season[-1][1] == start:
            season[-1] = (season[-1][0], end)  # consecutive months make one window
        else:
            season.append((start, end))
    return CountWindows(
        year=(_month_start(year, 1, zone), _month_start(year + 1, 1, zone)), season=season
    )


def _check_targets(target_type: str, target_ids: Sequence[str]) -> Iterator[FieldError]:
    if target_type not in TARGET_TYPES:
        yield FieldError(
            f"target_type must be one of {', '.join(sorted(TARGET_TYPES))}", "target_type"
        )
    if not target_ids:
        yield FieldError("at least one target id is needed", "target_ids")
    seen: set[str] = set()
    for index, target_id in enumerate(target_ids):
        if target_id in seen:
            yield FieldError(f"duplicate target id {target_id!r}", f"target_ids.{index}")
        seen.add(target_id)


def _check_action(
    program: ProgramConstraints, index: int, action: ActionSpec, now: datetime
) -> Iterator[FieldError]:
    path = f"actions.{index}"
    if action.starts_at < now - timedelta(seconds=PAST_GRACE_S):
        yield FieldError("starts_at is in the past", f"{path}.starts_at")
    if action.duration_s <= 0:
        yield FieldError("duration_s must be greater than 0", f"{path}.duration_s")
    yield from _check_power(path, action)
    yield from _check_reserve(program, path, action.backup_reserve_percentage)


def _check_power(path: str, action: ActionSpec) -> Iterator[FieldError]:
    if action.power_mode is not None and action.mode not in POWER_MODES:
        yield FieldError(
            f"power_mode applies only to CHARGE and DISCHARGE, not {action.mode}",
            f"{path}.power_mode",
        )
    with_setpoint = action.power_mode == "SETPOINT"
    if with_setpoint and (action.setpoint_w is None or action.setpoint_w <= 0):
        yield FieldError(
            "setpoint_w must be greater than 0 with power_mode SETPOINT", f"{path}.setpoint_w"
        )
    if not with_setpoint and action.setpoint_w is not None:
        yield FieldError(
            "setpoint_w is allowed only with power_mode SETPOINT", f"{path}.setpoint_w"
        )
    if not with_setpoint and action.setpoint_mode is not None:
        yield FieldError(
            "setpoint_mode is allowed only with power_mode SETPOINT", f"{path}.setpoint_mode"
        )


def _check_reserve(
    program: ProgramConstraints, path: str, reserve: int | None
) -> Iterator[FieldError]:
    if reserve is None:
        return
    field_path = f"{path}.backup_reserve_percentage"
    if not 0 <= reserve <= 100:
        yield FieldError("backup_reserve_percentage must be between 0 and 100", field_path)
    elif reserve < program.minimum_reserve_percentage:
        yield FieldError(
            "backup_reserve_percentage is below the program minimum of"
            f" {program.minimum_reserve_percentage}%",
            field_path,
        )


def _check_order(actions: Sequence[ActionSpec]) -> Iterator[FieldError]:
    for index in range(1, len(actions)):
        earlier, later = actions[index - 1], actions[index]
        path = f"actions.{index}.starts_at"
        if later.starts_at < earlier.starts_at:
            yield FieldError("actions must be sorted by starts_at", path)
        elif later.starts_at < earlier.ends_at:
            yield FieldError("action overlaps the previous action", path)


def _check_months(
    program: ProgramConstraints, actions: Sequence[ActionSpec]
) -> Iterator[FieldError]:
    zone = ZoneInfo(program.timezone)
    months = program.participation_months
    for index, action in enumerate(actions):
        start_month = action.starts_at.astimezone(zone).month
        # The last instant the action runs, so that ending at midnight stays in the month.
        end_month = (action.ends_at - timedelta(microseconds=1)).astimezone(zone).month
        if start_month not in months:
            yield FieldError(_month_message(start_month, program), f"actions.{index}.starts_at")
        elif end_month not in months and action.duration_s > 0:
            yield FieldError(_month_message(end_month, program), f"actions.{index}.duration_s")


def _month_message(month: int, program: ProgramConstraints) -> str:
    allowed = ", ".join(str(m) for m in sorted(program.participation_months)) or "none"
    return (
        f"month {month} ({program.timezone}) is not a participation month of the program"
        f" (months: {allowed})"
    )


def _check_dispatch_rules(
    program: ProgramConstraints, actions: Sequence[ActionSpec], now: datetime
) -> Iterator[FieldError]:
    first, last = actions[0], actions[-1]
    last_path = f"actions.{len(actions) - 1}.duration_s"
    span_s = (last.ends_at - first.starts_at).total_seconds()
    if program.max_event_duration_s is not None and span_s > program.max_event_duration_s:
        yield FieldError(
            f"the event lasts {span_s:.0f} s, more than the program's maximum of"
            f" {program.max_event_duration_s} s",
            "actions",
        )
    notice_s = program.minimum_notice_s
    if notice_s is not None and first.starts_at < now + timedelta(seconds=notice_s):
        yield FieldError(
            f"the event must start at least {notice_s} s from now (program minimum notice)",
            "actions.0.starts_at",
        )
    yield from _check_hours(program, first.starts_at, last.ends_at, last_path)


def _check_hours(
    program: ProgramConstraints, starts_at: datetime, ends_at: datetime, end_path: str
) -> Iterator[FieldError]:
    zone = ZoneInfo(program.timezone)
    local_start = starts_at.astimezone(zone)
    day = local_start.date()
    if program.earliest_hour is not None and local_start < _local_hour(
        day, program.earliest_hour, zone
    ):
        yield FieldError(
            f"the event starts at {local_start:%H:%M} {program.timezone}, before the program's"
            f" earliest hour {program.earliest_hour}:00",
            "actions.0.starts_at",
        )
    if program.latest_hour is not None and ends_at > _local_hour(day, program.latest_hour, zone):
        local_end = ends_at.astimezone(zone)
        yield FieldError(
            f"the event ends at {local_end:%Y-%m-%d %H:%M} {program.timezone}, after the"
            f" program's latest hour {program.latest_hour}:00 on the day it starts",
            end_path,
        )


def _check_counts(
    program: ProgramConstraints, events_this_year: int, events_this_season: int
) -> Iterator[FieldError]:
    per_year, per_season = program.max_events_per_year, program.max_events_per_season
    if per_year is not None and events_this_year + 1 > per_year:
        yield FieldError(
            f"the program allows {per_year} events per year and has {events_this_year}",
            "program_id",
        )
    if per_season is not None and events_this_season + 1 > per_season:
        yield FieldError(
            f"the program allows {per_season} events per season and has {events_this_season}",
            "program_id",
        )


def _local_hour(day: date, hour: int, zone: ZoneInfo) -> datetime:
    # hour 24 is midnight at the end of `day`.
    return datetime.combine(day + timedelta(days=hour // 24), time(hour % 24), tzinfo=zone)


def _month_start(year: int, month: int, zone: ZoneInfo) -> datetime:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return ensure_utc(datetime(year, month, 1, tzinfo=zone))
