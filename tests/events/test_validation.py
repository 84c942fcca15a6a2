"""validate_event: one FieldError per broken rule, its path naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gridhive.errors import FieldError
from gridhive.events.planner import ActionSpec, BatteryMode, PowerMode, SetpointMode
from gridhive.events.validation import (
    ProgramConstraints,
    event_count_windows,
    validate_event,
)
from gridhive.programs.schemas import DispatchRules

NOW = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
# 17:00 UTC is 10:00 in Los Angeles (PDT, UTC-7) in July.
START = NOW + timedelta(hours=5)
PROGRAM = ProgramConstraints(minimum_reserve_percentage=20, timezone="America/Los_Angeles")


def action(
    mode: BatteryMode = "DISCHARGE",
    *,
    at: datetime = START,
    duration_s: int = 3600,
    power_mode: PowerMode | None = "SETPOINT",
    setpoint_w: int | None = 5000,
    setpoint_mode: SetpointMode | None = None,
    reserve: int | None = None,
) -> ActionSpec:
    return ActionSpec(
        mode=mode,
        starts_at=at,
        duration_s=duration_s,
        power_mode=power_mode,
        setpoint_w=setpoint_w,
        setpoint_mode=setpoint_mode,
        backup_reserve_percentage=reserve,
    )


def validate(
    actions: Sequence[ActionSpec] = (),
    *,
    program: ProgramConstraints = PROGRAM,
    target_type: str = "SITE",
    target_ids: Sequence[str] = ("site-1", "site-2"),
    now: datetime = NOW,
    events_this_year: int = 0,
    events_this_season: int = 0,
) -> list[FieldError]:
    return validate_event(
        program,
        target_type,
        target_ids,
        list(actions) or [action()],
        now,
        events_this_year=events_this_year,
        events_this_season=events_this_season,
    )


def paths(errors: Sequence[FieldError]) -> list[str]:
    return [error.path for error in errors]


def test_a_valid_event_has_no_errors() -> None:
    actions = [
        action("CHARGE", at=START - timedelta(hours=2), duration_s=7200),
        action(at=START, setpoint_mode="EVEN", reserve=20),
        action("STANDBY", at=START + timedelta(hours=1), power_mode=None, setpoint_w=None),
    ]

    assert validate(actions) == []


def test_every_broken_rule_is_reported() -> None:
    actions = [
        action(duration_s=0, reserve=101),
        action("STANDBY", at=START - timedelta(hours=1), power_mode="FOLLOW_LOAD"),
    ]

    errors = validate(actions, target_ids=[])

    assert paths(errors) == [
        "target_ids",
        "actions.0.duration_s",
        "actions.0.backup_reserve_percentage",
        "actions.1.power_mode",
        "actions.1.setpoint_w",
        "actions.1.starts_at",
    ]


class TestTargets:
    def test_target_ids_must_not_be_empty(self) -> None:
        errors = validate(target_ids=[])

        assert errors == [FieldError("at least one target id is needed", "target_ids")]

    def test_duplicate_target_ids_are_named_where_they_repeat(self) -> None:
        errors = validate(target_ids=["a", "b", "a", "b", "a"])

        assert paths(errors) == ["target_ids.2", "target_ids.3", "target_ids.4"]
        assert errors[0].message == "duplicate target id 'a'"

    def test_target_type_must_be_known(self) -> None:
        assert paths(validate(target_type="REGION")) == ["target_type"]


class TestActions:
    def test_at_least_one_action(self) -> None:
        errors = validate_event(PROGRAM, "SITE", ["site-1"], [], NOW)

        assert errors == [FieldError("an event needs at least one action", "actions")]

    def test_actions_must_be_sorted(self) -> None:
        actions = [action(at=START + timedelta(hours=2)), action(at=START)]

        errors = validate(actions)

        assert errors == [FieldError("actions must be sorted by starts_at", "actions.1.starts_at")]

    def test_actions_must_not_overlap(self) -> None:
        actions = [action(at=START, duration_s=3600), action(at=START + timedelta(minutes=59))]

        errors = validate(actions)

        assert errors == [FieldError("action overlaps the previous action", "actions.1.starts_at")]

    def test_back_to_back_actions_are_fine(self) -> None:
        actions = [action(at=START, duration_s=3600), action(at=START + timedelta(hours=1))]

        assert validate(actions) == []

    @pytest.mark.parametrize(("seconds_ago", "valid"), [(60, True), (61, False)])
    def test_starts_at_may_be_at_most_60_s_in_the_past(self, seconds_ago: int, valid: bool) -> None:
        errors = validate([action(at=NOW - timedelta(seconds=seconds_ago))])

        assert errors == (
            [] if valid else [FieldError("starts_at is in the past", "actions.0.starts_at")]
        )

    @pytest.mark.parametrize("duration_s", [0, -60])
    def test_duration_must_be_positive(self, duration_s: int) -> None:
        assert paths(validate([action(duration_s=duration_s)])) == ["actions.0.duration_s"]

    @pytest.mark.parametrize("mode", ["STANDBY", "BACKUP", "SELF_CONSUMPTION", "SAVINGS"])
    def test_power_mode_only_on_charge_and_discharge(self, mode: BatteryMode) -> None:
        errors = validate([action(mode, power_mode="FOLLOW_LOAD", setpoint_w=None)])

        assert paths(errors) == ["actions.0.power_mode"]
        assert mode in errors[0].message

    @pytest.mark.parametrize("setpoint_w", [None, 0, -5])
    def test_setpoint_must_be_positive_with_power_mode_setpoint(
        self, setpoint_w: int | None
    ) -> None:
        errors = validate([action(power_mode="SETPOINT", setpoint_w=setpoint_w)])

        assert paths(errors) == ["actions.0.setpoint_w"]
        assert "greater than 0" in errors[0].message

    @pytest.mark.parametrize("power_mode", [None, "FOLLOW_LOAD"])
    def test_setpoint_only_with_power_mode_setpoint(self, power_mode: PowerMode | None) -> None:
        errors = validate([action(power_mode=power_mode, setpoint_w=5000)])

        assert paths(errors) == ["actions.0.setpoint_w"]
        assert "only with power_mode SETPOINT" in errors[0].message

    def test_setpoint_mode_only_with_power_mode_setpoint(self) -> None:
        errors = validate([action(power_mode="FOLLOW_LOAD", setpoint_w=None, setpoint_mode="EVEN")])

        assert paths(errors) == ["actions.0.setpoint_mode"]

    @pytest.mark.parametrize("reserve", [-1, 101])
    def test_reserve_must_be_a_percentage(self, reserve: int) -> None:
        errors = validate([action(reserve=reserve)])

        assert errors == [
            FieldError(
                "backup_reserve_percentage must be between 0 and 100",
                "actions.0.backup_reserve_percentage",
            )
        ]

    @pytest.mark.parametrize(("reserve", "valid"), [(19, False), (20, True), (100, True)])
    def test_reserve_must_not_be_below_the_program_minimum(self, reserve: int, valid: bool) -> None:
        errors = validate([action(reserve=reserve)])

        assert paths(errors) == ([] if valid else ["actions.0.backup_reserve_percentage"])
        if not valid:
            assert "below the program minimum of 20%" in errors[0].message


class TestParticipationMonths:
    SUMMER = replace(PROGRAM, participation_months=frozenset({6, 7, 8}))

    def test_an_action_outside_the_months_is_refused(self) -> None:
        september = datetime(2026, 9, 10, 17, tzinfo=UTC)

        errors = validate([action(at=september)], program=self.SUMMER)

        assert paths(errors) == ["actions.0.starts_at"]
        assert "month 9 (America/Los_Angeles) is not a participation month" in errors[0].message

    def test_months_are_taken_in_the_program_timezone(self) -> None:
        # 1 September 05:00 UTC is 01:00 in New York but still 31 August, 22:00 in Los Angeles.
        late_august = datetime(2026, 9, 1, 5, tzinfo=UTC)

        assert validate([action(at=late_august)], program=self.SUMMER, now=late_august) == []
        new_york = replace(self.SUMMER, timezone="America/New_York")
        assert paths(validate([action(at=late_august)], program=new_york, now=late_august)) == [
            "actions.0.starts_at"
        ]

    def test_an_action_running_into_another_month_is_refused(self) -> None:
        # 31 August 23:00 to 1 September 01:00, Los Angeles time.
        starts_at = datetime(2026, 9, 1, 6, tzinfo=UTC)

        errors = validate(
            [action(at=starts_at, duration_s=7200)], program=self.SUMMER, now=starts_at
        )

        assert paths(errors) == ["actions.0.duration_s"]

    def test_an_action_ending_at_midnight_stays_in_its_month(self) -> None:
        starts_at = datetime(2026, 9, 1, 6, tzinfo=UTC)  # 23:00 on 31 August in Los Angeles

        errors = validate(
            [action(at=starts_at, duration_s=3600)], program=self.SUMMER, now=starts_at
        )

        assert errors == []


class TestDispatchRules:
    def test_the_event_must_not_last_longer_than_the_maximum(self) -> None:
        program = replace(PROGRAM, max_event_duration_s=7200)
        within = [action(at=START), action(at=START + timedelta(hours=1))]
        beyond = [action(at=START), action(at=START + timedelta(hours=1, seconds=1))]

        assert validate(within, program=program) == []
        assert paths(validate(beyond, program=program)) == ["actions"]

    def test_the_event_must_start_after_the_earliest_local_hour(self) -> None:
        program = replace(PROGRAM, earliest_hour=14)
        two_pm_local = datetime(2026, 7, 15, 21, tzinfo=UTC)

        assert validate([action(at=two_pm_local)], program=program) == []
        errors = validate([action(at=two_pm_local - timedelta(minutes=1))], program=program)
        assert paths(errors) == ["actions.0.starts_at"]
        assert "starts at 13:59 America/Los_Angeles" in errors[0].message

    def test_the_event_must_end_by_the_latest_local_hour(self) -> None:
        program = replace(PROGRAM, latest_hour=20)
        seven_pm_local = datetime(2026, 7, 16, 2, tzinfo=UTC)
        actions = [
            action("CHARGE", at=seven_pm_local - timedelta(hours=1)),
            action(at=seven_pm_local, duration_s=3600),
        ]

        assert validate(actions, program=program) == []
        actions[-1] = action(at=seven_pm_local, duration_s=3601)
        assert paths(validate(actions, program=program)) == ["actions.1.duration_s"]

    def test_an_event_may_not_run_past_midnight_into_the_next_day(self) -> None:
        program = replace(PROGRAM, earliest_hour=18, latest_hour=24)
        eleven_pm_local = datetime(2026, 7, 16, 6, tzinfo=UTC)

        assert validate([action(at=eleven_pm_local)], program=program) == []
        errors = validate([action(at=eleven_pm_local, duration_s=3660)], program=program)
        assert paths(errors) == ["actions.0.duration_s"]

    def test_hours_follow_daylight_saving_time(self) -> None:
        program = replace(PROGRAM, earliest_hour=14)
        # 14:00 in Los Angeles is 22:00 UTC in winter (PST) and 21:00 UTC in summer (PDT).
        january_now = datetime(2026, 1, 15, 12, tzinfo=UTC)
        january = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)

        assert paths(validate([action(at=january)], program=program, now=january_now)) == [
            "actions.0.starts_at"
        ]

    def test_the_event_must_give_the_minimum_notice(self) -> None:
        program = replace(PROGRAM, minimum_notice_s=3600)

        assert validate([action(at=NOW + timedelta(hours=1))], program=program) == []
        errors = validate([action(at=NOW + timedelta(minutes=59))], program=program)
        assert paths(errors) == ["actions.0.starts_at"]
        assert "at least 3600 s from now" in errors[0].message

    @pytest.mark.parametrize(("count", "valid"), [(9, True), (10, False)])
    def test_yearly_limit(self, count: int, valid: bool) -> None:
        program = replace(PROGRAM, max_events_per_year=10)

        errors = validate(program=program, events_this_year=count)

        assert paths(errors) == ([] if valid else ["program_id"])

    @pytest.mark.parametrize(("count", "valid"), [(4, True), (5, False)])
    def test_seasonal_limit(self, count: int, valid: bool) -> None:
        program = replace(PROGRAM, max_events_per_season=5)

        errors = validate(program=program, events_this_season=count)

        assert paths(errors) == ([] if valid else ["program_id"])
        if not valid:
            assert errors[0].message == "the program allows 5 events per season and has 5"

    def test_no_rules_means_no_limits(self) -> None:
        long_event = [action(at=NOW, duration_s=30 * 24 * 3600)]

        assert validate(long_event, events_this_year=10_000, events_this_season=10_000) == []


class TestCountWindows:
    def test_year_and_season_windows_in_the_program_timezone(self) -> None:
        program = replace(PROGRAM, participation_months=frozenset({6, 7, 8, 12}))

        windows = event_count_windows(program, datetime(2026, 7, 15, 17, tzinfo=UTC))

        assert windows.year == (
            datetime(2026, 1, 1, 8, tzinfo=UTC),
            datetime(2027, 1, 1, 8, tzinfo=UTC),
        )
        assert windows.season == [
            (datetime(2026, 6, 1, 7, tzinfo=UTC), datetime(2026, 9, 1, 7, tzinfo=UTC)),
            (datetime(2026, 12, 1, 8, tzinfo=UTC), datetime(2027, 1, 1, 8, tzinfo=UTC)),
        ]

    def test_the_year_is_the_events_local_year(self) -> None:
        # 1 January 2027 05:00 UTC is still New Year's Eve 2026 in Los Angeles.
        windows = event_count_windows(PROGRAM, datetime(2027, 1, 1, 5, tzinfo=UTC))

        assert windows.year[0] == datetime(2026, 1, 1, 8, tzinfo=UTC)


def test_constraints_from_the_programs_dispatch_rules() -> None:
    rules = DispatchRules(
        max_event_duration_s=14_400,
        max_events_per_year=30,
        max_events_per_season=10,
        earliest_hour=12,
        latest_hour=22,
        minimum_notice_s=3600,
    )

    program = ProgramConstraints.from_program(
        rules,
        minimum_reserve_percentage=25,
        participation_months=[7, 6, 7],
        timezone="America/Chicago",
    )

    assert program == ProgramConstraints(
        minimum_reserve_percentage=25,
        participation_months=frozenset({6, 7}),
        timezone="America/Chicago",
        max_event_duration_s=14_400,
        max_events_per_year=30,
        max_events_per_season=10,
        earliest_hour=12,
        latest_hour=22,
        minimum_notice_s=3600,
    )
