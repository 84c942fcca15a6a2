"""The event planner's pure core: setpoints, pre-charge, skips, supersession, explanations."""

from __future__ import annotations

import gc
import json
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

import pytest

from gridhive.db.bulk import uuid7_hex_stream
from gridhive.events.planner import (
    ActionSpec,
    DeviceState,
    EventPlan,
    ExistingCommand,
    PlannedCommand,
    PowerMode,
    ProgramRules,
    plan_event,
)
from gridhive.events.planning.bulk import gc_paused, uuid4_stream, uuid7_stream
from gridhive.events.planning.setpoints import split_evenly
from gridhive.events.planning.types import PER_COMMAND_REASONS
from gridhive.programs.schemas import DispatchRules

NOW = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
EVENT_ID = UUID("00000000-0000-4000-8000-00000000e001")
OLD_EVENT_ID = UUID("00000000-0000-4000-8000-00000000e000")
RULES = ProgramRules(minimum_reserve_percentage=20)


def battery(
    number: int,
    *,
    output_w: int | None = 5000,
    input_w: int | None = 5000,
    capacity_wh: int | None = 13_500,
    soc: float | None = 100.0,
    reserve: int = 20,
    online: bool | None = True,
    participating: bool = True,
) -> DeviceState:
    return DeviceState(
        device_pk=UUID(int=number + 1),
        device_id=f"bat-{number:03d}",
        site_pk=UUID(int=1_000_000 + number),
        site_id=f"site-{number:03d}",
        type="BATTERY",
        capacity_wh=capacity_wh,
        power_input_w=input_w,
        power_output_w=output_w,
        reserve_percentage=reserve,
        state_of_charge_pct=soc,
        is_online=online,
        is_participating=participating,
    )


def ev_charger(number: int) -> DeviceState:
    return DeviceState(
        device_pk=UUID(int=number + 1),
        device_id=f"ev-{number:03d}",
        site_pk=UUID(int=1_000_000 + number),
        site_id=f"site-{number:03d}",
        type="EV_CHARGER",
        capacity_wh=None,
        power_input_w=11_000,
        power_output_w=None,
    )


def discharge(
    *,
    at: datetime = NOW + timedelta(hours=5),
    hours: float = 2,
    setpoint_w: int | None = None,
    even: bool = False,
    reserve: int | None = None,
    follow_load: bool = False,
) -> ActionSpec:
    power_mode: PowerMode | None = (
        "FOLLOW_LOAD" if follow_load else ("SETPOINT" if setpoint_w else None)
    )
    return ActionSpec(
        mode="DISCHARGE",
        starts_at=at,
        duration_s=int(hours * 3600),
        power_mode=power_mode,
        setpoint_w=setpoint_w,
        setpoint_mode="EVEN" if even else None,
        backup_reserve_percentage=reserve,
    )


def charge(
    *, at: datetime, hours: float = 2, setpoint_w: int | None = None, even: bool = False
) -> ActionSpec:
    return ActionSpec(
        mode="CHARGE",
        starts_at=at,
        duration_s=int(hours * 3600),
        power_mode="SETPOINT" if setpoint_w else None,
        setpoint_w=setpoint_w,
        setpoint_mode="EVEN" if even else None,
        enable_grid_import=True,
    )


def standby(*, at: datetime, hours: float = 1) -> ActionSpec:
    return ActionSpec(mode="STANDBY", starts_at=at, duration_s=int(hours * 3600))


def plan(
    actions: Sequence[ActionSpec],
    devices: Sequence[DeviceState],
    *,
    rules: ProgramRules = RULES,
    now: datetime = NOW,
    existing: Sequence[ExistingCommand] = (),
) -> EventPlan:
    return plan_event(
        event_id=EVENT_ID,
        actions=actions,
        devices=devices,
        rules=rules,
        now=now,
        existing_commands=existing,
    )


def commands_of(
    result: EventPlan, action_index: int = 0, *, preparatory: bool = False
) -> dict[str, PlannedCommand]:
    return {
        command.device_id: command
        for command in result.commands
        if command.action_index == action_index and command.is_preparatory_action == preparatory
    }


def setpoints_of(result: EventPlan, action_index: int = 0) -> dict[str, int]:
    commands = commands_of(result, action_index)
    setpoints = {device_id: command.setpoint_w for device_id, command in commands.items()}
    return {device_id: setpoint for device_id, setpoint in setpoints.items() if setpoint}


def assert_json_ready(value: Any) -> None:
    """Only str/int/float/bool/None and lists and dicts of those (no tuples, UUIDs, times)."""
    if isinstance(value, dict):
        assert all(isinstance(key, str) for key in value)
        for item in value.values():
            assert_json_ready(item)
    elif isinstance(value, list):
        for item in value:
            assert_json_ready(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), repr(value)


class TestPerDeviceSetpoints:
    def test_each_device_gets_the_setpoint_capped_at_its_rated_output(self) -> None:
        devices = [battery(0, output_w=3000), battery(1, output_w=5000), battery(2, output_w=7600)]
        result = plan([discharge(setpoint_w=5000)], devices)

        assert setpoints_of(result) == {"bat-000": 3000, "bat-001": 5000, "bat-002": 5000}
        capped = commands_of(result)["bat-000"].explanation
        assert capped["capped"] is True
        assert capped["rating_w"] == 3000
        assert "capped at rated output 3,000 W" in capped["notes"]
        assert commands_of(result)["bat-002"].explanation["capped"] is False
        action = result.actions[0]
        assert (action.requested_w, action.expected_w) == (15_000, 13_000)
        assert action.setpoint_mode == "PER_DEVICE"
        assert action.capped_device_count == 1

    def test_charge_is_capped_at_the_rated_input(self) -> None:
        devices = [battery(0, input_w=3000, output_w=9000), battery(1, input_w=6000)]
        result = plan([charge(at=NOW + timedelta(hours=1), setpoint_w=4000)], devices)

        assert setpoints_of(result) == {"bat-000": 3000, "bat-001": 4000}
        assert (
            "capped at rated input 3,000 W" in commands_of(result)["bat-000"].explanation["notes"]
        )

    def test_summary_names_the_per_device_setpoint_and_the_caps(self) -> None:
        devices = [battery(0, output_w=3000), battery(1, output_w=5000)]
        result = plan([discharge(setpoint_w=5000)], devices)

        assert (
            "Action 1 DISCHARGE 2026-07-15 17:00\u201319:00 UTC: 5,000 W per battery over"
            " 2 batteries (10,000 W requested); expected 8,000 W (80.0%): 1 battery capped at"
            " its 3,000 W rating"
        ) in result.summary

    def test_battery_commands_carry_the_action(self) -> None:
        result = plan([discharge(setpoint_w=4000, reserve=35)], [battery(0)])
        command = commands_of(result)["bat-000"]

        assert command.battery_commands == {
            "mode": "DISCHARGE",
            "power_mode": "SETPOINT",
            "setpoint_w": 4000,
            "enable_grid_import": None,
            "backup_reserve_percentage": 35,
        }
        assert command.explanation["reserve_source"] == "action"
        assert command.event_id == EVENT_ID
        assert command.id.version == 7
        assert command.ends_at - command.starts_at == timedelta(seconds=command.duration_s)


class TestCommandFields:
    """Commands are built positionally for speed: pin every field of both kinds."""

    def test_action_and_precharge_commands_map_onto_flips_command(self) -> None:
        device = battery(7, soc=40.0, input_w=4000, output_w=6000)
        action = discharge(setpoint_w=5000, reserve=30)
        result = plan([action], [device])
        precharge, command = result.commands

        assert command == PlannedCommand(
            id=command.id,
            event_id=EVENT_ID,
            device_pk=device.device_pk,
            device_id="bat-007",
            site_pk=device.site_pk,
            site_id="site-007",
            action_index=0,
            starts_at=action.starts_at,
            ends_at=action.ends_at,
            duration_s=7200,
            is_preparatory_action=False,
            mode="DISCHARGE",
            power_mode="SETPOINT",
            setpoint_w=5000,
            enable_grid_import=None,
            backup_reserve_percentage=30,
            explanation=command.explanation,
        )
        # 13,500 Wh x 60% = 8,100 Wh at 4,000 W = 7,290 s.
        assert precharge == PlannedCommand(
            id=precharge.id,
            event_id=EVENT_ID,
            device_pk=device.device_pk,
            device_id="bat-007",
            site_pk=device.site_pk,
            site_id="site-007",
            action_index=0,
            starts_at=action.starts_at - timedelta(seconds=7290),
            ends_at=action.starts_at,
            duration_s=7290,
            is_preparatory_action=True,
            mode="CHARGE",
            power_mode="SETPOINT",
            setpoint_w=4000,
            enable_grid_import=True,
            backup_reserve_percentage=30,
            explanation=precharge.explanation,
        )
        assert precharge.id != command.id

    def test_equal_explanation_keys_mean_equal_explanations(self) -> None:
        # Storage encodes one explanation per key: a key shared by two different
        # explanations would store the wrong reasons for one of them.
        devices = [
            battery(
                n,
                output_w=(3000, 5000, 7600)[n % 3],
                input_w=(3000, 5000)[n % 2],
                soc=(None, 10.0, 55.5, 100.0)[n % 4],
                reserve=(10, 20)[n % 2],
                online=n % 5 != 0,
            )
            for n in range(60)
        ]
        start = NOW + timedelta(hours=5)
        actions = [
            discharge(at=start, setpoint_w=60 * 4000, even=True),
            charge(at=start + timedelta(hours=2), setpoint_w=4000),
            discharge(at=start + timedelta(hours=4), follow_load=True),
        ]
        result = plan(actions, devices)

        by_key: dict[object, list[dict[str, Any]]] = {}
        for command in result.commands:
            assert command.explanation_key is not None
            by_key.setdefault(command.explanation_key, []).append(command.explanation)
        for explanations in by_key.values():
            assert all(e == explanations[0] for e in explanations)
        assert len(by_key) < len(result.commands)  # alike devices do share keys

    def test_explanations_are_not_shared_between_alike_devices(self) -> None:
        result = plan([discharge()], [battery(0, soc=40.0), battery(1, soc=40.0)])
        first, second = commands_of(result, preparatory=True).values()

        first.explanation["notes"].append("changed")

        assert "changed" not in second.explanation["notes"]
        assert first.explanation is not second.explanation


class TestEvenSplit:
    def test_equal_devices_share_the_total_equally(self) -> None:
        devices = [battery(n) for n in range(4)]
        result = plan([discharge(setpoint_w=12_000, even=True)], devices)

        assert set(setpoints_of(result).values()) == {3000}
        explanation = commands_of(result)["bat-000"].explanation
        assert explanation["share_of_total"] == 0.25
        assert explanation["setpoint_mode"] == "EVEN"
        assert explanation["requested_w"] == 12_000
        assert explanation["capped"] is False
        assert result.actions[0].capped_device_count == 0
        assert result.actions[0].expected_w == 12_000

    def test_water_filling_gives_small_devices_their_rating_and_the_rest_to_the_others(
        self,
    ) -> None:
        ratings = [8000, 1000, 8000, 3000, 8000]
        devices = [battery(n, output_w=rating) for n, rating in enumerate(ratings)]
        result = plan([discharge(setpoint_w=25_001, even=True)], devices)

        # 1,000 and 3,000 are below the even share; 21,001 W left over three 8,000 W devices
        # is 7,000 W each and one leftover watt, for the last of them by device id.
        assert setpoints_of(result) == {
            "bat-000": 7000,
            "bat-001": 1000,
            "bat-002": 7000,
            "bat-003": 3000,
            "bat-004": 7001,
        }
        assert sum(setpoints_of(result).values()) == result.actions[0].expected_w == 25_001
        assert result.actions[0].capped_device_count == 2
        assert result.actions[0].capped_ratings_w == (1000, 3000)

    def test_a_fleet_that_cannot_reach_the_total_runs_every_device_at_its_rating(self) -> None:
        devices = [battery(0, output_w=3000), battery(1, output_w=5000)]
        result = plan([discharge(setpoint_w=10_000, even=True)], devices)

        assert setpoints_of(result) == {"bat-000": 3000, "bat-001": 5000}
        action = result.actions[0]
        assert (action.requested_w, action.expected_w) == (10_000, 8000)
        assert action.capped_device_count == 2
        assert "the fleet cannot reach the requested power: 2,000 W short" in action.notes
        assert (
            "Action 1 DISCHARGE 2026-07-15 17:00\u201319:00 UTC: 10,000 W requested evenly over"
            " 2 batteries; expected 8,000 W (80.0%): the fleet cannot reach the total, all"
            " 2 batteries at their rating (2,000 W short)"
        ) in result.summary

    def test_the_rounding_remainder_goes_to_devices_by_id_whatever_the_input_order(self) -> None:
        devices = [battery(n) for n in range(7)]
        shuffled = devices[:]
        random.Random(7).shuffle(shuffled)
        first = setpoints_of(plan([discharge(setpoint_w=10_000, even=True)], devices))
        second = setpoints_of(plan([discharge(setpoint_w=10_000, even=True)], shuffled))

        # 10,000 / 7 = 1,428 and 4 watts left: the last four by device id get one more.
        assert first == second
        assert sum(first.values()) == 10_000
        assert [first[f"bat-{n:03d}"] for n in range(7)] == [1428] * 3 + [1429] * 4

    def test_share_percentage_is_rounded_down_so_a_shortfall_never_reads_100_percent(
        self,
    ) -> None:
        devices = [battery(n, output_w=5000) for n in range(2)] + [battery(2, output_w=4999)]
        result = plan([discharge(setpoint_w=15_000, even=True)], devices)

        assert result.actions[0].expected_w == 14_999
        assert any("expected 14,999 W (99.9%)" in line for line in result.summary)

    def test_devices_without_output_rating_are_skipped_for_the_action(self) -> None:
        devices = [battery(0), battery(1, output_w=0), battery(2, output_w=None)]
        result = plan([discharge(setpoint_w=6000, even=True)], devices)

        assert setpoints_of(result) == {"bat-000": 5000}
        skipped = {entry.device_id: entry for entry in result.skipped}
        assert set(skipped) == {"bat-001", "bat-002"}
        assert skipped["bat-001"].reason == "NO_OUTPUT_RATING"
        assert skipped["bat-001"].action_index == 0
        assert result.actions[0].skipped_device_count == 2
        assert result.skipped_counts == {"NO_OUTPUT_RATING": 2}
        assert result.devices_skipped == 2

    def test_a_total_too_small_to_share_skips_the_devices_left_with_zero(self) -> None:
        result = plan([discharge(setpoint_w=2, even=True)], [battery(n) for n in range(3)])

        assert setpoints_of(result) == {"bat-001": 1, "bat-002": 1}
        assert [entry.reason for entry in result.skipped] == ["ZERO_SHARE"]

    def test_shares_of_the_total_add_up_to_one(self) -> None:
        devices = [battery(n, output_w=1000 + 700 * n) for n in range(9)]
        result = plan([discharge(setpoint_w=30_000, even=True)], devices)

        shares = [c.explanation["share_of_total"] for c in commands_of(result).values()]
        assert sum(shares) == pytest.approx(1.0)


class TestSplitEvenly:
    def test_water_filling_is_exact_capped_and_fair_on_random_fleets(self) -> None:
        generator = random.Random(2026)
        for _ in range(300):
            count = generator.randint(1, 40)
            ratings = [generator.choice([1, 700, 3000, 5000, 7600, 11_520]) for _ in range(count)]
            total = generator.randint(1, sum(ratings) + 20_000)
            allocation = split_evenly(total, ratings, [f"d{n:03d}" for n in range(count)])
            setpoints = allocation.setpoints

            assert sum(setpoints) == allocation.expected_w == min(total, sum(ratings))
            assert all(0 <= s <= r for s, r in zip(setpoints, ratings, strict=True))
            # Max-min fair: a device below its rating gets at least any other's share - 1 W.
            lowest_free = [s for s, r in zip(setpoints, ratings, strict=True) if s < r]
            if lowest_free:
                assert min(lowest_free) >= max(setpoints) - 1


class TestPrecharge:
    def test_known_soc_charges_just_long_enough_to_fill_the_battery(self) -> None:
        device = battery(0, capacity_wh=13_500, soc=40.0, input_w=5000)
        result = plan([discharge(setpoint_w=5000)], [device])

        # 13,500 Wh x 60% = 8,100 Wh at 5,000 W = 1.62 h = 5,832 s.
        precharge = commands_of(result, preparatory=True)["bat-000"]
        assert precharge.duration_s == 5832
        assert precharge.ends_at == NOW + timedelta(hours=5)
        assert precharge.starts_at == NOW + timedelta(hours=5, seconds=-5832)
        assert precharge.action_index == 0
        assert precharge.battery_commands == {
            "mode": "CHARGE",
            "power_mode": "SETPOINT",
            "setpoint_w": 5000,
            "enable_grid_import": True,
            "backup_reserve_percentage": 20,
        }
        assert precharge.explanation["soc_pct_used"] == 40.0
        assert precharge.explanation["soc_source"] == "telemetry"
        assert precharge.explanation["expected_soc_pct_at_end"] == 100.0
        assert commands_of(result)["bat-000"].explanation["precharge"] == {
            "planned": True,
            "duration_s": 5832,
        }

    def test_unknown_soc_assumes_the_reserve(self) -> None:
        device = battery(0, capacity_wh=10_000, soc=None, input_w=4000, reserve=20)
        result = plan([discharge()], [device])

        # 10,000 Wh x 80% = 8,000 Wh at 4,000 W = 2 h.
        precharge = commands_of(result, preparatory=True)["bat-000"]
        assert precharge.duration_s == 7200
        assert precharge.explanation["soc_source"] == "assumed_reserve"
        assert "SOC unknown, assumed reserve 20%" in precharge.explanation["notes"]
        assert result.actions[0].precharge is not None
        assert result.actions[0].precharge.outcomes["soc_assumed_reserve"] == 1

    @pytest.mark.parametrize("soc", [99.0, 99.5, 100.0])
    def test_a_full_battery_gets_no_precharge(self, soc: float) -> None:
        result = plan([discharge()], [battery(0, soc=soc)])

        assert commands_of(result, preparatory=True) == {}
        reason = commands_of(result)["bat-000"].explanation["precharge"]["reason"]
        assert "already full" in reason

    def test_just_below_the_full_tolerance_still_tops_up(self) -> None:
        result = plan([discharge()], [battery(0, soc=98.9)])

        # 13,500 Wh x 1.1% = 148.5 Wh at 5,000 W = 106.92 s.
        assert commands_of(result, preparatory=True)["bat-000"].duration_s == 107

    def test_the_program_limit_caps_the_precharge(self) -> None:
        device = battery(0, capacity_wh=40_000, soc=0.0, input_w=5000)
        rules = ProgramRules(minimum_reserve_percentage=20, max_precharge_s=4 * 3600)
        result = plan([discharge(at=NOW + timedelta(hours=10))], [device], rules=rules)

        # 40,000 Wh at 5,000 W needs 8 h; 4 h reach 50%.
        precharge = commands_of(result, preparatory=True)["bat-000"]
        assert precharge.duration_s == 4 * 3600
        assert precharge.explanation["needed_s"] == 8 * 3600
        assert (
            "capped by the 4 h pre-charge limit: will reach ~50%" in precharge.explanation["notes"]
        )

    def test_a_precharge_never_starts_before_now(self) -> None:
        device = battery(0, capacity_wh=13_500, soc=40.0, input_w=5000)
        result = plan([discharge(at=NOW + timedelta(hours=1))], [device])

        # 1 h at 5,000 W adds 5,000 Wh = 37% of 13,500 Wh: from 40% to ~77%.
        precharge = commands_of(result, preparatory=True)["bat-000"]
        assert (precharge.starts_at, precharge.duration_s) == (NOW, 3600)
        assert "window shortened by now: will reach ~77%" in precharge.explanation["notes"]
        assert result.actions[0].precharge is not None
        assert result.actions[0].precharge.outcomes["shortened"] == 1

    def test_a_now_with_microseconds_rounds_the_window_down(self) -> None:
        now = NOW + timedelta(microseconds=500_000)
        device = battery(0, soc=40.0)
        result = plan([discharge(at=NOW + timedelta(hours=1))], [device], now=now)

        precharge = commands_of(result, preparatory=True)["bat-000"]
        assert precharge.duration_s == 3599
        assert precharge.starts_at >= now

    def test_no_precharge_when_the_program_forbids_grid_charging(self) -> None:
        rules = ProgramRules(minimum_reserve_percentage=20, allow_grid_charging=False)
        result = plan([discharge()], [battery(0, soc=10.0)], rules=rules)

        assert commands_of(result, preparatory=True) == {}
        reason = commands_of(result)["bat-000"].explanation["precharge"]["reason"]
        assert "does not allow charging from the grid" in reason
        assert (
            "Pre-charge before action 1: none, the program does not allow charging from the grid"
            in result.summary
        )

    @pytest.mark.parametrize(
        ("charge_ends_before_discharge", "precharged"),
        [
            (timedelta(0), False),  # back to back
            (timedelta(hours=1), False),  # ends inside the 1 h 37 min the pre-charge needs
            (timedelta(hours=3), True),  # ends long before: top up again
        ],
    )
    def test_no_precharge_when_the_previous_action_charges(
        self, charge_ends_before_discharge: timedelta, precharged: bool
    ) -> None:
        starts_at = NOW + timedelta(hours=6)
        charge_start = starts_at - charge_ends_before_discharge - timedelta(hours=1)
        actions = [charge(at=charge_start, hours=1), discharge(at=starts_at)]
        result = plan(actions, [battery(0, soc=40.0)])

        assert bool(commands_of(result, 1, preparatory=True)) is precharged
        if not precharged:
            reason = commands_of(result, 1)["bat-000"].explanation["precharge"]["reason"]
            assert reason == "no pre-charge: the previous action charges it"

    def test_a_discharge_starting_now_gets_no_precharge(self) -> None:
        result = plan([discharge(at=NOW)], [battery(0, soc=40.0)])

        assert commands_of(result, preparatory=True) == {}
        reason = commands_of(result)["bat-000"].explanation["precharge"]["reason"]
        assert "under 60 s left before the discharge (limited by now)" in reason

    def test_a_precharge_never_overlaps_the_previous_action(self) -> None:
        starts_at = NOW + timedelta(hours=5)
        actions = [standby(at=NOW + timedelta(hours=1), hours=3.5), discharge(at=starts_at)]
        result = plan(actions, [battery(0, soc=40.0)])

        precharge = commands_of(result, 1, preparatory=True)["bat-000"]
        assert precharge.starts_at == NOW + timedelta(hours=4.5)
        assert precharge.duration_s == 1800
        assert any(
            note.startswith("window shortened by the previous action")
            for note in precharge.explanation["notes"]
        )

    def test_a_later_discharge_assumes_the_earlier_one_drained_to_its_reserve(self) -> None:
        actions = [
            discharge(at=NOW + timedelta(hours=2), hours=1, reserve=30),
            discharge(at=NOW + timedelta(hours=8), hours=1),
        ]
        result = plan(actions, [battery(0, soc=100.0)])

        assert commands_of(result, 0, preparatory=True) == {}
        precharge = commands_of(result, 1, preparatory=True)["bat-000"]
        # 13,500 Wh x 70% = 9,450 Wh at 5,000 W = 6,804 s.
        assert precharge.duration_s == 6804
        assert precharge.explanation["soc_source"] == "assumed_after_discharge"
        assert precharge.backup_reserve_percentage == 20

    def test_summary_counts_the_precharge_outcomes(self) -> None:
        devices = [battery(0, soc=40.0), battery(1, soc=None), battery(2, soc=100.0)]
        result = plan([discharge()], devices)

        assert (
            "Pre-charge before action 1: 2 batteries charge from the grid at their input rating,"
            " the earliest from 2026-07-15 14:50 UTC; 1 SOC unknown, assumed at reserve;"
            " none for 1 already full"
        ) in result.summary


class TestModesWithoutSetpoint:
    def test_standby_has_no_power_mode_and_no_setpoint(self) -> None:
        result = plan([standby(at=NOW + timedelta(hours=1))], [battery(0), battery(1)])

        command = commands_of(result)["bat-000"]
        assert (command.mode, command.power_mode, command.setpoint_w) == ("STANDBY", None, None)
        assert command.backup_reserve_percentage == 20
        assert command.explanation["reserve_source"] == "program minimum"
        assert "share_w" not in command.explanation
        action = result.actions[0]
        assert (action.requested_w, action.expected_w, action.device_count) == (None, None, 2)
        assert action.precharge is None
        assert any(line.endswith("2 batteries; no setpoint") for line in result.summary)

    def test_standby_needs_no_rating(self) -> None:
        device = battery(0, output_w=0, input_w=0)
        result = plan([standby(at=NOW + timedelta(hours=1))], [device])

        assert list(commands_of(result)) == ["bat-000"]

    def test_follow_load_discharge_has_unknown_expected_power(self) -> None:
        result = plan([discharge(follow_load=True)], [battery(0)])

        command = commands_of(result)["bat-000"]
        assert (command.power_mode, command.setpoint_w) == ("FOLLOW_LOAD", None)
        assert (
            "expected power unknown: FOLLOW_LOAD follows the home's load"
            in (command.explanation["notes"])
        )
        assert result.actions[0].expected_w is None
        assert any("expected power unknown" in line for line in result.summary)


class TestSkippedDevices:
    def test_ev_chargers_and_opted_out_sites_get_no_command(self) -> None:
        devices = [battery(0), ev_charger(1), battery(2, participating=False)]
        result = plan([discharge(setpoint_w=3000)], devices)

        assert list(commands_of(result)) == ["bat-000"]
        reasons = {entry.device_id: entry.reason for entry in result.skipped}
        assert reasons == {"ev-001": "NOT_A_BATTERY", "bat-002": "SITE_OPTED_OUT"}
        assert all(entry.action_index is None for entry in result.skipped)
        assert (result.devices_targeted, result.devices_participating) == (3, 1)

    def test_offline_devices_are_still_commanded_with_a_note(self) -> None:
        result = plan([discharge(setpoint_w=3000)], [battery(0, online=False, soc=50.0)])

        assert "offline at planning time" in commands_of(result)["bat-000"].explanation["notes"]
        precharge = commands_of(result, preparatory=True)["bat-000"]
        assert "offline at planning time" in precharge.explanation["notes"]

    def test_a_device_listed_twice_is_planned_once(self) -> None:
        result = plan([discharge(setpoint_w=3000)], [battery(0), battery(0)])

        assert len(result.commands) == 1
        assert (result.devices_targeted, result.devices_skipped) == (1, 0)


class TestMultiActionEvent:
    def plan_charge_discharge_standby(self) -> EventPlan:
        devices = [
            battery(0, soc=40.0, output_w=3000),
            battery(1, soc=None, output_w=5000),
            battery(2, soc=95.0, output_w=7600, online=False),
            ev_charger(3),
            battery(4, participating=False),
        ]
        actions = [
            charge(at=NOW + timedelta(hours=1), hours=2, setpoint_w=4000),
            discharge(at=NOW + timedelta(hours=5), hours=2, setpoint_w=12_000, even=True),
            standby(at=NOW + timedelta(hours=7), hours=1),
        ]
        return plan(actions, devices)

    def test_commands_per_device_and_action(self) -> None:
        result = self.plan_charge_discharge_standby()

        assert set(commands_of(result, 0)) == {"bat-000", "bat-001", "bat-002"}
        assert setpoints_of(result, 1) == {"bat-000": 3000, "bat-001": 4500, "bat-002": 4500}
        assert set(commands_of(result, 2)) == {"bat-000", "bat-001", "bat-002"}
        # The CHARGE ends 2 h before the discharge. bat-001's SOC is unknown (assumed 20%):
        # 10,800 Wh need 2 h 9 min, a window the CHARGE overlaps, so it gets no pre-charge.
        assert {d: c.duration_s for d, c in commands_of(result, 1, preparatory=True).items()} == {
            "bat-000": 5832,  # 8,100 Wh at 5,000 W
            "bat-002": 486,  # 675 Wh
        }
        reason = commands_of(result, 1)["bat-001"].explanation["precharge"]["reason"]
        assert reason == "no pre-charge: the previous action charges it"
        assert len(result.commands) == 11
        assert (result.devices_targeted, result.devices_participating) == (5, 3)
        assert result.skipped_counts == {"NOT_A_BATTERY": 1, "SITE_OPTED_OUT": 1}

    def test_each_devices_commands_are_in_time_order_and_do_not_overlap(self) -> None:
        result = self.plan_charge_discharge_standby()

        by_device: dict[str, list[PlannedCommand]] = {}
        for command in result.commands:
            by_device.setdefault(command.device_id, []).append(command)
        for commands in by_device.values():
            for earlier, later in pairwise(commands):
                assert earlier.ends_at <= later.starts_at

    def test_plan_and_explanations_are_json_ready(self) -> None:
        result = self.plan_charge_discharge_standby()

        assert_json_ready(result.as_json())
        for command in result.commands:
            assert_json_ready(command.explanation)
            assert_json_ready(command.battery_commands)
        assert json.loads(json.dumps(result.as_json()))["devices_skipped"] == 2

    def test_summary_reads_as_the_plan(self) -> None:
        result = self.plan_charge_discharge_standby()

        assert result.summary == [
            "3 of 5 devices targeted get commands",
            "Action 1 CHARGE 2026-07-15 13:00\u201315:00 UTC: 4,000 W per battery over"
            " 3 batteries (12,000 W requested); expected 12,000 W (100.0%)",
            "Pre-charge before action 2: 2 batteries charge from the grid at their input rating,"
            " the earliest from 2026-07-15 15:22 UTC; none for 1 charged by the previous action",
            "Action 2 DISCHARGE 2026-07-15 17:00\u201319:00 UTC: 12,000 W requested evenly over"
            " 3 batteries; expected 12,000 W (100.0%): 1 battery capped at its 3,000 W rating",
            "Action 3 STANDBY 2026-07-15 19:00\u201320:00 UTC: 3 batteries; no setpoint",
            "Skipped: not a battery: 1, site opted out: 1",
        ]


class TestSupersession:
    def existing(
        self,
        starts_at: datetime,
        ends_at: datetime | None,
        *,
        device: int = 0,
        status: str = "OK",
        number: int = 1,
    ) -> ExistingCommand:
        return ExistingCommand(
            command_id=UUID(int=number),
            device_pk=UUID(int=device + 1),
            event_id=OLD_EVENT_ID,
            starts_at=starts_at,
            ends_at=ends_at,
            status=status,
        )

    def test_overlapping_commands_in_force_are_superseded(self) -> None:
        start = NOW + timedelta(hours=5)
        old = self.existing(start + timedelta(hours=1), start + timedelta(hours=3))
        result = plan([discharge(at=start)], [battery(0)], existing=[old])

        new = commands_of(result)["bat-000"]
        assert len(result.superseded) == 1
        entry = result.superseded[0]
        assert (entry.command_id, entry.event_id) == (old.command_id, OLD_EVENT_ID)
        assert entry.reason == f"superseded by event {EVENT_ID}"
        assert entry.superseded_by == [new.id]
        assert new.explanation["supersedes"] == [str(old.command_id)]
        assert "Supersedes 1 command of 1 earlier event" in result.summary

    def test_superseding_commands_still_share_the_rest_of_their_explanation(self) -> None:
        # What a command supersedes is its own reason; everything else stays shared by its
        # key, so the stored plan keeps one explanation per kind even over a re-dispatch.
        start = NOW + timedelta(hours=5)
        old = self.existing(start + timedelta(hours=1), start + timedelta(hours=3))
        result = plan([discharge(at=start)], [battery(0), battery(1)], existing=[old])

        superseding, alike = commands_of(result)["bat-000"], commands_of(result)["bat-001"]
        assert superseding.explanation_key == alike.explanation_key
        assert superseding.explanation == {
            **alike.explanation,
            "supersedes": [str(old.command_id)],
        }
        assert set(superseding.explanation) - set(alike.explanation) <= PER_COMMAND_REASONS
        assert "Supersedes 1 command of 1 earlier event" in result.summary

    @pytest.mark.parametrize(
        ("offset_h", "length_h", "status", "device"),
        [
            (2, 1, "OK", 0),  # starts exactly when the new command ends
            (-1, 1, "OK", 0),  # ends exactly when the new command starts
            (0, 2, "CANCELED", 0),  # no longer in force
            (0, 2, "OPT_OUT", 0),
            (0, 2, "OK", 1),  # another device, not in this event
        ],
    )
    def test_adjacent_canceled_or_other_devices_commands_are_left_alone(
        self, offset_h: int, length_h: int, status: str, device: int
    ) -> None:
        start = NOW + timedelta(hours=5)
        old_start = start + timedelta(hours=offset_h)
        old = self.existing(
            old_start, old_start + timedelta(hours=length_h), device=device, status=status
        )
        result = plan([discharge(at=start)], [battery(0)], existing=[old])

        assert result.superseded == []
        assert all("supersedes" not in c.explanation for c in result.commands)

    def test_a_command_without_end_is_superseded(self) -> None:
        old = self.existing(NOW - timedelta(days=1), None)
        result = plan([discharge()], [battery(0)], existing=[old])

        assert [entry.command_id for entry in result.superseded] == [old.command_id]

    def test_one_old_command_overlapped_twice_is_listed_once(self) -> None:
        start = NOW + timedelta(hours=5)
        old = self.existing(start - timedelta(hours=1), start + timedelta(hours=1))
        result = plan([discharge(at=start)], [battery(0, soc=40.0)], existing=[old])

        assert len(result.superseded) == 1
        precharge = commands_of(result, preparatory=True)["bat-000"]
        command = commands_of(result)["bat-000"]
        assert result.superseded[0].superseded_by == [precharge.id, command.id]


class TestInputs:
    def test_naive_times_are_taken_as_utc(self) -> None:
        action = ActionSpec(mode="STANDBY", starts_at=datetime(2026, 7, 15, 17), duration_s=60)

        assert action.starts_at == datetime(2026, 7, 15, 17, tzinfo=UTC)

    def test_unsorted_actions_are_a_callers_bug(self) -> None:
        actions = [standby(at=NOW + timedelta(hours=3)), standby(at=NOW + timedelta(hours=1))]

        with pytest.raises(ValueError, match="sorted"):
            plan(actions, [battery(0)])

    def test_no_actions_is_a_callers_bug(self) -> None:
        with pytest.raises(ValueError, match="at least one action"):
            plan([], [battery(0)])

    def test_rules_from_the_programs_dispatch_rules(self) -> None:
        dispatch_rules = DispatchRules(allow_grid_charging=False, max_precharge_s=7200)

        rules = ProgramRules.from_dispatch_rules(dispatch_rules, minimum_reserve_percentage=25)

        assert rules == ProgramRules(
            minimum_reserve_percentage=25, allow_grid_charging=False, max_precharge_s=7200
        )

    def test_an_empty_fleet_plans_nothing_and_says_so(self) -> None:
        result = plan([discharge(setpoint_w=1000, even=True)], [])

        assert result.commands == []
        assert result.actions[0].notes[0] == "no battery can take this action"


class TestLargeFleet:
    def test_100k_devices_even_split_totals(self) -> None:
        generator = random.Random(100_000)
        ratings = (3000, 5000, 7600)
        devices = [
            DeviceState(
                device_pk=uuid.uuid4(),
                device_id=f"dev-{n:06d}",
                site_pk=uuid.uuid4(),
                site_id=f"site-{n:06d}",
                type="BATTERY",
                capacity_wh=13_500,
                power_input_w=generator.choice(ratings),
                power_output_w=generator.choice(ratings),
                reserve_percentage=20,
                state_of_charge_pct=generator.choice((None, 40.0, 80.0, 100.0)),
                is_online=True,
            )
            for n in range(100_000)
        ]
        total_w = 480_000_000
        result = plan([discharge(setpoint_w=total_w, even=True)], devices)

        action_commands = [c for c in result.commands if not c.is_preparatory_action]
        setpoints = [c.setpoint_w or 0 for c in action_commands]
        ratings_total = sum(d.power_output_w or 0 for d in devices)
        assert len(action_commands) == 100_000
        assert sum(setpoints) == result.actions[0].expected_w == min(total_w, ratings_total)
        assert len({c.id for c in result.commands}) == len(result.commands)
        precharges = sum(1 for c in result.commands if c.is_preparatory_action)
        assert result.actions[0].precharge is not None
        assert precharges == result.actions[0].precharge.planned > 0
        assert result.devices_participating == 100_000


class TestBulkHelpers:
    def test_uuid4_stream_gives_distinct_rfc_4122_version_4_ids_across_batches(self) -> None:
        stream = uuid4_stream(batch=8)
        ids = [next(stream) for _ in range(100)]

        assert len(set(ids)) == 100
        assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)

    def test_uuid7_stream_gives_increasing_rfc_9562_version_7_ids(self) -> None:
        stream = uuid7_stream()
        ids = [next(stream) for _ in range(1000)]

        assert ids == sorted(ids, key=lambda i: i.int)
        assert len(set(ids)) == 1000
        assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)

    def test_uuid7_hex_stream_gives_increasing_version_7_ids_as_rows_store_them(self) -> None:
        stream = uuid7_hex_stream()
        ids = [next(stream) for _ in range(1000)]

        assert ids == sorted(ids)
        assert len(set(ids)) == 1000
        parsed = [uuid.UUID(i) for i in ids]
        assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in parsed)
        assert all(i.hex == text for i, text in zip(parsed, ids, strict=True))
        # The time in the id is now's, as RFC 9562 says (48-bit Unix milliseconds).
        millis = parsed[0].int >> 80
        assert abs(millis - time.time() * 1000) < 60_000

    def test_planned_command_ids_follow_the_plan_order(self) -> None:
        # Stored in plan order, increasing ids append to the commands' indexes.
        devices = [battery(i, soc=50.0) for i in range(20)]  # a pre-charge each
        result = plan([discharge(setpoint_w=3000)], devices)

        ids = [c.id.int for c in result.commands]
        assert ids == sorted(ids)

    def test_gc_paused_restores_the_collector_even_on_error(self) -> None:
        seen_inside: list[bool] = []

        def fail_while_paused() -> None:
            with gc_paused():
                seen_inside.append(gc.isenabled())
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_while_paused()

        assert seen_inside == [False]
        assert gc.isenabled()
