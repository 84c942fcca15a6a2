"""Battery physics: ratings, reserve, 100 %, modes, grid balance, telemetry items."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gridhive.simulator.fleet import (
    BatterySpec,
    Fleet,
    ScheduledCommand,
    Setting,
    battery_power,
    battery_spec,
    make_specs,
    scheduled_command,
)

# 03:00 in California (PDT): no sun, so only the battery and the home load move.
NIGHT = datetime(2026, 7, 1, 10, 0, tzinfo=UTC).timestamp()
# 13:00 in California: sunny.
NOON = datetime(2026, 7, 1, 20, 0, tzinfo=UTC).timestamp()

SPEC = BatterySpec(
    site_id="s-1",
    device_id="b-1",
    capacity_wh=10_000,
    power_w=5_000,
    reserve_pct=10,
    initial_soc_pct=50.0,
    state_of_health_pct=98.0,
    base_load_w=800.0,
    solar_peak_w=0.0,
)


def one_battery(soc_pct: float = 50.0, **fields: float) -> Fleet:
    return Fleet([replace(SPEC, initial_soc_pct=soc_pct, **fields)])


def command(setting: Setting, *, starts: float = NIGHT, ends: float = math.inf) -> ScheduledCommand:
    return ScheduledCommand("c-1", starts, ends, setting)


def run(fleet: Fleet, minutes: int, start: float = NIGHT) -> list[float]:
    """SOC % after each minute."""
    socs = []
    for m in range(minutes):
        fleet.step(start + 60 * m)
        socs.append(fleet.soc_pct(0))
    return socs


class TestDischarge:
    def test_setpoint_discharges_at_the_setpoint_and_stops_exactly_at_the_reserve(self) -> None:
        fleet = one_battery(soc_pct=30.0)
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 5000, 20)))
        socs = run(fleet, 20)
        # 1 kWh above the 20 % reserve at 5 kW: 12 minutes, then nothing.
        assert socs[0] == pytest.approx(30 - 5000 / 60 / 100)
        assert socs[11] == pytest.approx(20.0)
        assert socs[-1] == pytest.approx(20.0)
        assert fleet.discharge_w[0] == 0.0

    def test_setpoint_above_the_rating_is_capped_at_the_rating(self) -> None:
        fleet = one_battery()
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 9000, 20)))
        run(fleet, 1)
        assert fleet.discharge_w[0] == 5000

    def test_setpoint_exports_what_the_home_does_not_use(self) -> None:
        fleet = one_battery()
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 4000, 20)))
        run(fleet, 1)
        assert fleet.grid_w[0] == pytest.approx(fleet.home_w[0] - 4000)
        assert fleet.grid_w[0] < 0

    def test_follow_load_covers_the_home_without_exporting(self) -> None:
        fleet = one_battery(soc_pct=90.0)
        fleet.schedule("b-1", command(Setting("DISCHARGE", "FOLLOW_LOAD", None, 20)))
        for m in range(30):
            fleet.step(NIGHT + 60 * m)
            assert fleet.discharge_w[0] == pytest.approx(fleet.home_w[0])
            assert fleet.grid_w[0] == pytest.approx(0.0, abs=1e-9)

    def test_follow_load_beyond_the_rating_imports_the_rest(self) -> None:
        charge, discharge = battery_power(
            Setting("DISCHARGE", "FOLLOW_LOAD"), 20, 9000, 1000, 5000, 10_000, 5000, 1 / 60, False
        )
        assert (charge, discharge) == (0.0, 5000)

    def test_a_battery_below_its_reserve_does_not_discharge(self) -> None:
        fleet = one_battery(soc_pct=15.0)
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 5000, 20)))
        assert run(fleet, 5) == [15.0] * 5


class TestCharge:
    def test_setpoint_charge_from_the_grid_stops_exactly_at_100(self) -> None:
        fleet = one_battery(soc_pct=95.0)
        fleet.schedule("b-1", command(Setting("CHARGE", "SETPOINT", 5000, None, True)))
        socs = run(fleet, 10)
        # 500 Wh of room at 5 kW: 6 minutes.
        assert socs[5] == pytest.approx(100.0)
        assert socs[-1] == 100.0
        assert fleet.charge_w[0] == 0.0

    def test_without_grid_import_a_battery_charges_from_solar_only(self) -> None:
        fleet = one_battery(soc_pct=50.0)
        fleet.schedule("b-1", command(Setting("CHARGE", "SETPOINT", 5000, None, False)))
        assert run(fleet, 10) == [50.0] * 10  # at night: nothing to charge from

    def test_charging_from_solar_uses_the_surplus_only(self) -> None:
        charge, _ = battery_power(
            Setting("CHARGE", "FOLLOW_LOAD"), 20, 1000, 4000, 5000, 10_000, 5000, 1 / 60, False
        )
        assert charge == 3000


class TestOtherModes:
    def test_standby_holds_the_state_of_charge(self) -> None:
        fleet = one_battery(soc_pct=42.0, solar_peak_w=6000.0)
        fleet.schedule("b-1", command(Setting("STANDBY"), starts=NOON))
        assert run(fleet, 60, start=NOON) == [42.0] * 60
        assert fleet.grid_w[0] == pytest.approx(fleet.home_w[0] - fleet.solar_w[0])

    def test_self_consumption_covers_the_home_but_keeps_the_device_reserve(self) -> None:
        fleet = one_battery(soc_pct=10.5)  # the device's reserve is 10 %
        socs = run(fleet, 60)
        assert min(socs) == pytest.approx(10.0)
        assert fleet.grid_w[0] > 0  # the home imports once the battery reached its reserve

    def test_self_consumption_stores_the_solar_surplus(self) -> None:
        fleet = one_battery(soc_pct=50.0, solar_peak_w=4000.0)  # surplus below the rating
        socs = run(fleet, 10, start=NOON)
        assert socs[-1] > 50.0
        assert fleet.charge_w[0] == pytest.approx(fleet.solar_w[0] - fleet.home_w[0])
        assert fleet.grid_w[0] == pytest.approx(0.0, abs=1e-9)  # no export below 100 %

    def test_backup_charges_and_never_discharges(self) -> None:
        charge, discharge = battery_power(
            Setting("BACKUP", grid_import=True), 20, 3000, 0, 5000, 10_000, 5000, 1 / 60, False
        )
        assert (charge, discharge) == (5000, 0.0)

    @pytest.mark.parametrize(("peak", "discharges"), [(True, True), (False, False)])
    def test_savings_discharges_only_in_the_evening_peak(
        self, peak: bool, discharges: bool
    ) -> None:
        _, discharge = battery_power(
            Setting("SAVINGS"), 20, 2000, 0, 5000, 10_000, 5000, 1 / 60, peak
        )
        assert (discharge > 0) is discharges

    def test_a_command_applies_only_inside_its_window(self) -> None:
        fleet = one_battery()
        setting = Setting("DISCHARGE", "SETPOINT", 3000, 20)
        fleet.schedule("b-1", command(setting, starts=NIGHT + 600, ends=NIGHT + 1200))
        run(fleet, 30)
        assert fleet.mode[0] == "SELF_CONSUMPTION"
        assert fleet.schedules[0] == []  # ended commands are dropped
        # 10 minutes at 3 kW plus the home's own draw on the other 20.
        assert fleet.soc_pct(0) < 50 - 3000 / 6 / 100

    def test_unscheduling_stops_a_command_at_once(self) -> None:
        fleet = one_battery(soc_pct=90.0)
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 5000, 20)))
        run(fleet, 1)
        fleet.unschedule("b-1", "c-1")
        run(fleet, 1, start=NIGHT + 60)
        assert fleet.discharge_w[0] == pytest.approx(fleet.home_w[0])  # self-consumption

    def test_a_battery_that_does_not_obey_ignores_commands(self) -> None:
        fleet = Fleet([SPEC], obeys=[False])
        assert not fleet.schedule("b-1", command(Setting("STANDBY")))
        assert fleet.schedules[0] == []


class TestBalance:
    def test_grid_equals_home_minus_solar_minus_discharge_plus_charge_and_energy_adds_up(
        self,
    ) -> None:
        fleet = Fleet(make_specs(50, seed=4), seed=4)
        for spec in fleet.specs[::3]:
            setting = Setting("DISCHARGE", "SETPOINT", 4000, 20)
            fleet.schedule(spec.device_id, ScheduledCommand("x", NIGHT, NIGHT + 7200, setting))
        start_wh = list(fleet.soc_wh)
        for m in range(24 * 60):
            fleet.step(NIGHT + 60 * m)
            for i in range(len(fleet)):
                expected = (
                    fleet.home_w[i] - fleet.solar_w[i] - fleet.discharge_w[i] + fleet.charge_w[i]
                )
                assert fleet.grid_w[i] == pytest.approx(expected)
                assert fleet.reserve_now[i] <= fleet.soc_pct(i) + 1e-6 or fleet.soc_pct(i) < 30
                assert 0 <= fleet.soc_wh[i] <= fleet.capacity_wh[i] + 1e-9
        for i in range(len(fleet)):
            stored = fleet.charge_wh[i] - fleet.discharge_wh[i]
            assert fleet.soc_wh[i] - start_wh[i] == pytest.approx(stored, abs=1e-6)


class TestSpecs:
    def test_a_seed_gives_the_same_fleet_and_a_battery_does_not_depend_on_the_fleet_size(
        self,
    ) -> None:
        assert make_specs(20, seed=7) == make_specs(20, seed=7)
        assert make_specs(20, seed=7)[7] == battery_spec(7, seed=7)
        assert make_specs(20, seed=7) != make_specs(20, seed=8)

    def test_ratings_are_in_the_documented_ranges(self) -> None:
        for spec in make_specs(500, seed=1):
            assert 10_000 <= spec.capacity_wh <= 20_000
            assert 3_300 <= spec.power_w <= 7_600
            assert spec.reserve_pct in (10, 15, 20, 25)
            assert 30 <= spec.initial_soc_pct <= 90


class TestTelemetry:
    def test_online_items_carry_every_field_and_the_interval_energy(self) -> None:
        fleet = one_battery(soc_pct=90.0)
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 3000, 20)))
        run(fleet, 5)
        [item] = fleet.telemetry(NIGHT, 300)
        assert item["start_time"] == "2026-07-01T10:00:00Z"
        assert item["last_is_online"] is True
        assert item["last_mode"] == "DISCHARGE"
        assert item["battery_total_energy_discharge_wh"] == 250  # 3 kW for 5 minutes
        assert item["battery_last_state_of_charge_percentage"] == 87.5
        assert None not in item.values()
        [again] = fleet.telemetry(NIGHT + 300, 300)
        assert again["battery_total_energy_discharge_wh"] == 0  # a fresh interval

    def test_a_compressed_interval_keeps_the_powers_and_scales_the_energy(self) -> None:
        fleet = one_battery(soc_pct=90.0)
        fleet.schedule("b-1", command(Setting("DISCHARGE", "SETPOINT", 3000, 20)))
        run(fleet, 5)
        [item] = fleet.telemetry(NIGHT, 5.0, energy_scale=1 / 60)  # 5 minutes shown as 5 s
        assert item["duration_s"] == 5.0
        assert item["battery_last_power_discharge_w"] == 3000
        assert item["battery_total_energy_discharge_wh"] == pytest.approx(250 / 60, abs=0.05)

    def test_offline_items_are_all_null_but_the_identity(self) -> None:
        fleet = Fleet([SPEC], online=[False])
        run(fleet, 5)
        [item] = fleet.telemetry(NIGHT, 300)
        assert item["last_is_online"] is False
        identity = {"start_time", "duration_s", "device_id", "last_is_online"}
        assert {k for k, v in item.items() if v is not None} == identity


class TestWireCommand:
    def test_a_flip_command_becomes_a_schedule_entry(self) -> None:
        scheduled = scheduled_command(
            {
                "id": "c-9",
                "starts_at": "2026-07-01T10:00:00Z",
                "ends_at": None,
                "battery_commands": {
                    "mode": "CHARGE",
                    "power_mode": "SETPOINT",
                    "setpoint_w": 4000,
                    "backup_reserve_percentage": None,
                    "enable_grid_import": True,
                },
            }
        )
        assert scheduled.starts_at_s == NIGHT
        assert scheduled.ends_at_s == math.inf
        assert scheduled.setting == Setting("CHARGE", "SETPOINT", 4000, None, True)
