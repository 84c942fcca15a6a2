"""Battery physics, one simulated minute at a time: state of charge within the ratings, the
reserve and 100 %, a home load and solar panels with daily shapes, and the command in force.

Pure Python. Each quantity is a list indexed by battery rather than one object per battery, so
the step loop reads and writes local lists; see `Fleet.step` for the cost.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gridhive.kit.time import isoformat_z

MINUTES_PER_DAY = 1440
PEAK_START_MIN, PEAK_END_MIN = 16 * 60, 21 * 60  # SAVINGS discharges in the evening peak only
MODES = ("CHARGE", "DISCHARGE", "STANDBY", "BACKUP", "SELF_CONSUMPTION", "SAVINGS")


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """One simulated home: a site with one battery, as it is commissioned."""

    site_id: str
    device_id: str
    capacity_wh: int
    power_w: int  # rated charge and discharge power (input = output)
    reserve_pct: int
    initial_soc_pct: float
    state_of_health_pct: float
    base_load_w: float  # the home's mean load
    solar_peak_w: float  # 0: no panels


def make_specs(count: int, *, seed: int, prefix: str = "sim") -> list[BatterySpec]:
    return [battery_spec(i, seed=seed, prefix=prefix) for i in range(count)]


def battery_spec(index: int, *, seed: int, prefix: str = "sim") -> BatterySpec:
    # One generator per battery, seeded by (seed, index): battery 7 is the same whatever the
    # fleet size, so a larger fleet re-commissions the existing homes unchanged.
    rng = random.Random(f"{seed}:{index}")
    has_solar = rng.random() < 0.7
    return BatterySpec(
        site_id=f"{prefix}-site-{index:05d}",
        device_id=f"{prefix}-battery-{index:05d}",
        capacity_wh=rng.randrange(100, 201) * 100,  # 10-20 kWh
        power_w=rng.randrange(33, 77) * 100,  # 3.3-7.6 kW
        reserve_pct=rng.choice((10, 15, 20, 25)),
        initial_soc_pct=round(rng.uniform(30, 90), 1),
        state_of_health_pct=round(rng.uniform(92, 100), 1),
        base_load_w=float(round(rng.uniform(400, 1200))),
        solar_peak_w=float(round(rng.uniform(3000, 8000))) if has_solar else 0.0,
    )


def _load_shape(minute: int) -> float:
    # One sinusoid over the day: lowest about 06:30, highest about 18:30.
    return 1.0 + 0.6 * math.sin(2 * math.pi * (minute / 60 - 12.5) / 24)


def _solar_shape(minute: int) -> float:
    # Sunrise 06:00, sunset 19:00, highest at 12:30.
    return max(0.0, math.sin(math.pi * (minute / 60 - 6) / 13))


LOAD_SHAPE = tuple(_load_shape(m) for m in range(MINUTES_PER_DAY))
SOLAR_SHAPE = tuple(_solar_shape(m) for m in range(MINUTES_PER_DAY))


@dataclass(frozen=True, slots=True)
class Setting:
    """What the battery is asked to do (a command's `battery_commands`, or the default)."""

    mode: str = "SELF_CONSUMPTION"
    power_mode: str | None = None
    setpoint_w: float | None = None
    reserve_pct: float | None = None  # None: the battery's own reserve
    grid_import: bool = False


DEFAULT_SETTING = Setting()


@dataclass(frozen=True, slots=True)
class ScheduledCommand:
    command_id: str
    starts_at_s: float
    ends_at_s: float  # math.inf: until replaced
    setting: Setting


def _epoch_s(text: str | None, default: float) -> float:
    return default if text is None else datetime.fromisoformat(text).timestamp()


def scheduled_command(command: Mapping[str, Any]) -> ScheduledCommand:
    """The part of a Flip Command (§9.6) that the battery needs."""
    bc = command.get("battery_commands") or {}
    setting = Setting(
        mode=bc.get("mode") or "SELF_CONSUMPTION",
        power_mode=bc.get("power_mode"),
        setpoint_w=bc.get("setpoint_w"),
        reserve_pct=bc.get("backup_reserve_percentage"),
        grid_import=bc.get("enable_grid_import") is True,
    )
    return ScheduledCommand(
        command_id=str(command["id"]),
        starts_at_s=_epoch_s(command.get("starts_at"), -math.inf),
        ends_at_s=_epoch_s(command.get("ends_at"), math.inf),
        setting=setting,
    )


def battery_power(
    s: Setting,
    reserve_pct: float,
    home_w: float,
    solar_w: float,
    soc_wh: float,
    capacity_wh: float,
    power_w: float,
    dt_h: float,
    peak: bool,
) -> tuple[float, float]:
    """(charge W, discharge W) for one step: what the setting asks, within the rating, the room
    left below 100 % and the energy left above the reserve (all reached exactly, not passed).

    Positional arguments: this runs once per battery per simulated minute.
    """
    mode = s.mode
    if mode == "STANDBY":
        return 0.0, 0.0
    if s.reserve_pct is not None:
        reserve_pct = s.reserve_pct
    max_charge = min(power_w, max(0.0, (capacity_wh - soc_wh) / dt_h))
    max_discharge = min(power_w, max(0.0, (soc_wh - capacity_wh * reserve_pct / 100) / dt_h))
    net_w = home_w - solar_w  # > 0: the home needs more than the panels give
    surplus_w = -net_w if net_w < 0 else 0.0
    if mode == "DISCHARGE":
        if s.power_mode == "SETPOINT" and s.setpoint_w:
            return 0.0, min(s.setpoint_w, max_discharge)
        # FOLLOW_LOAD covers the home only (no export); solar surplus still charges as usual.
        return min(surplus_w, max_charge), min(max(net_w, 0.0), max_discharge)
    if mode in ("CHARGE", "BACKUP"):
        setpoint = mode == "CHARGE" and s.power_mode == "SETPOINT" and s.setpoint_w
        want = float(s.setpoint_w or 0) if setpoint else power_w
        if not s.grid_import:  # from the panels only (Flip: grid only if enable_grid_import)
            want = min(want, surplus_w)
        return min(want, max_charge), 0.0
    # SELF_CONSUMPTION; SAVINGS behaves so in the evening peak and only charges from solar
    # outside it (time-of-use: keep the energy for the expensive hours).
    discharge = min(max(net_w, 0.0), max_discharge)
    if mode == "SAVINGS" and not peak:
        discharge = 0.0
    return min(surplus_w, max_charge), discharge


class Fleet:
    """N batteries stepped together; commands are scheduled per battery by command id."""

    def __init__(
        self,
        specs: Sequence[BatterySpec],
        *,
        online: Sequence[bool] | None = None,
        obeys: Sequence[bool] | None = None,
        seed: int = 0,
        timezone: str = "America/Los_Angeles",
    ) -> None:
        n = len(specs)
        self.specs = list(specs)
        self.index = {s.device_id: i for i, s in enumerate(self.specs)}
        self.capacity_wh = [float(s.capacity_wh) for s in self.specs]
        self.power_w = [float(s.power_w) for s in self.specs]
        self.reserve_pct = [float(s.reserve_pct) for s in self.specs]
        self.base_load_w = [s.base_load_w for s in self.specs]
        self.solar_peak_w = [s.solar_peak_w for s in self.specs]
        self.soc_wh = [s.capacity_wh * s.initial_soc_pct / 100 for s in self.specs]
        self.online = list(online) if online is not None else [True] * n
        # A battery that is offline or faulty never runs a command.
        self.obeys = list(obeys) if obeys is not None else [True] * n
        self.schedules: list[list[ScheduledCommand]] = [[] for _ in range(n)]
        self.charge_w, self.discharge_w = [0.0] * n, [0.0] * n
        self.home_w, self.solar_w, self.grid_w = [0.0] * n, [0.0] * n, [0.0] * n
        self.mode = [DEFAULT_SETTING.mode] * n
        self.reserve_now = list(self.reserve_pct)
        self._reset_energy()
        self._rng = random.Random(f"{seed}:weather")
        self._cloud = [1.0] * n
        self._day: int | None = None
        self._tz = ZoneInfo(timezone)

    def __len__(self) -> int:
        return len(self.specs)

    def apply_settings(self, device_id: str, reserve_pct: float | None) -> str | None:
        """A homeowner's settings change (`settings.apply`); the reason it fails, or None.

        The new reserve is the battery's own from now on; a command that names its own reserve
        still overrides it while it runs.
        """
        i = self.index.get(device_id)
        if i is None:
            return f"unknown device {device_id}"
        if not self.online[i]:
            return "device offline"
        if reserve_pct is not None:
            self.reserve_pct[i] = float(reserve_pct)
        return None

    def _reset_energy(self) -> None:
        n = len(self.specs)
        self.charge_wh, self.discharge_wh = [0.0] * n, [0.0] * n
        self.home_wh, self.solar_wh = [0.0] * n, [0.0] * n

    # Commands -------------------------------------------------------------------------------

    def schedule(self, device_id: str, command: ScheduledCommand) -> bool:
        """Put the command in the battery's schedule (replacing an earlier version of it)."""
        i = self.index.get(device_id)
        if i is None or not self.obeys[i]:
            return False
        others = [c for c in self.schedules[i] if c.command_id != command.command_id]
        self.schedules[i] = [*others, command]
        return True

    def unschedule(self, device_id: str, command_id: str) -> None:
        """A CANCELED or OPT_OUT command stops applying at once."""
        i = self.index.get(device_id)
        if i is not None:
            self.schedules[i] = [c for c in self.schedules[i] if c.command_id != command_id]

    def setting_at(self, i: int, now_s: float) -> Setting:
        """The command in force for battery `i`: the latest-starting one whose window holds
        `now_s`; ended ones are dropped on the way."""
        best: ScheduledCommand | None = None
        ended = False
        for c in self.schedules[i]:
            if c.ends_at_s <= now_s:
                ended = True
            elif c.starts_at_s <= now_s and (best is None or c.starts_at_s >= best.starts_at_s):
                best = c
        if ended:
            self.schedules[i] = [c for c in self.schedules[i] if c.ends_at_s > now_s]
        return DEFAULT_SETTING if best is None else best.setting

    # Physics --------------------------------------------------------------------------------

    def _local_minute(self, now_s: float) -> tuple[int, int]:
        offset = self._tz.utcoffset(datetime.fromtimestamp(now_s, UTC))
        local_s = now_s + (offset.total_seconds() if offset else 0.0)
        return int(local_s % 86400 // 60), int(local_s // 86400)

    def _new_day(self, day: int) -> None:
        # A cloud factor per home per day: mostly sunny, sometimes overcast.
        rnd = self._rng.random
        self._cloud = [0.3 + 0.7 * math.sqrt(rnd()) for _ in self.specs]
        self._day = day

    def step(self, now_s: float, dt_s: float = 60.0) -> None:
        """Advance every battery by `dt_s` from `now_s` (epoch seconds of simulated time)."""
        minute, day = self._local_minute(now_s)
        if day != self._day:
            self._new_day(day)
        load_f, solar_f = LOAD_SHAPE[minute], SOLAR_SHAPE[minute]
        peak = PEAK_START_MIN <= minute < PEAK_END_MIN
        dt_h = dt_s / 3600
        rnd = self._rng.random
        soc, cap, power, reserve = self.soc_wh, self.capacity_wh, self.power_w, self.reserve_pct
        base, solar_peak, cloud, schedules = (
            self.base_load_w,
            self.solar_peak_w,
            self._cloud,
            self.schedules,
        )
        for i in range(len(soc)):
            home = base[i] * load_f * (0.8 + 0.4 * rnd())
            solar = solar_peak[i] * solar_f * cloud[i]
            s = self.setting_at(i, now_s) if schedules[i] else DEFAULT_SETTING
            charge, discharge = battery_power(
                s, reserve[i], home, solar, soc[i], cap[i], power[i], dt_h, peak
            )
            soc[i] = min(cap[i], max(0.0, soc[i] + (charge - discharge) * dt_h))
            self._record(i, s, home, solar, charge, discharge, dt_h)

    def _record(
        self, i: int, s: Setting, home: float, solar: float, ch: float, dis: float, dt_h: float
    ) -> None:
        self.charge_w[i], self.discharge_w[i] = ch, dis
        self.home_w[i], self.solar_w[i] = home, solar
        self.grid_w[i] = home - solar - dis + ch  # > 0 imports, < 0 exports
        self.charge_wh[i] += ch * dt_h
        self.discharge_wh[i] += dis * dt_h
        self.home_wh[i] += home * dt_h
        self.solar_wh[i] += solar * dt_h
        self.mode[i] = s.mode
        self.reserve_now[i] = self.reserve_pct[i] if s.reserve_pct is None else s.reserve_pct

    # Readings -------------------------------------------------------------------------------

    def soc_pct(self, i: int) -> float:
        return 100 * self.soc_wh[i] / self.capacity_wh[i]

    def mean_soc_pct(self) -> float:
        n = len(self.specs)
        return sum(self.soc_pct(i) for i in range(n)) / n if n else 0.0

    def discharge_kw(self) -> float:
        """Net fleet discharge (charging counts against it)."""
        return (sum(self.discharge_w) - sum(self.charge_w)) / 1000

    def telemetry(
        self, start_s: float, duration_s: float, *, energy_scale: float = 1.0
    ) -> list[dict[str, Any]]:
        """One interval item (§9.7) per battery for [start, start + duration), then a fresh
        interval. Offline batteries say only that: every nullable field null (§6.8).

        `energy_scale` shrinks the interval's energy when it is reported over a shorter
        (compressed, wall-clock) duration than it was simulated over: powers stay as they were.
        """
        start = isoformat_z(datetime.fromtimestamp(start_s, UTC))
        items = [
            self._item(i, start, duration_s, energy_scale)
            if self.online[i]
            else offline_item(self.specs[i].device_id, start, duration_s)
            for i in range(len(self.specs))
        ]
        self._reset_energy()
        return items

    def _item(self, i: int, start: str, duration_s: float, scale: float) -> dict[str, Any]:
        # Whole watts and watt-hours (to 0.1 Wh when compressed): plain, and valid JSON numbers
        # whatever the server's numeric type.
        digits = None if scale == 1.0 else 1
        return {
            "start_time": start,
            "duration_s": duration_s,
            "device_id": self.specs[i].device_id,
            "last_is_online": True,
            "last_mode": self.mode[i],
            "battery_last_power_charge_w": round(self.charge_w[i]),
            "battery_last_power_discharge_w": round(self.discharge_w[i]),
            "battery_total_energy_charge_wh": round(self.charge_wh[i] * scale, digits),
            "battery_total_energy_discharge_wh": round(self.discharge_wh[i] * scale, digits),
            "battery_last_stored_energy_wh": round(self.soc_wh[i]),
            "battery_last_capacity_energy_wh": round(self.capacity_wh[i]),
            "battery_last_backup_reserve_percentage": round(self.reserve_now[i]),
            "battery_last_state_of_charge_percentage": round(self.soc_pct(i), 1),
            "battery_last_state_of_health_percentage": self.specs[i].state_of_health_pct,
            "last_is_grid_online": True,
            "home_total_energy_wh": round(self.home_wh[i] * scale, digits),
            "home_last_power_w": round(self.home_w[i]),
            "solar_total_energy_wh": round(self.solar_wh[i] * scale, digits),
            "solar_last_power_w": round(self.solar_w[i]),
        }


TELEMETRY_FIELDS = (
    "last_mode",
    "battery_last_power_charge_w",
    "battery_last_power_discharge_w",
    "battery_total_energy_charge_wh",
    "battery_total_energy_discharge_wh",
    "battery_last_stored_energy_wh",
    "battery_last_capacity_energy_wh",
    "battery_last_backup_reserve_percentage",
    "battery_last_state_of_charge_percentage",
    "battery_last_state_of_health_percentage",
    "last_is_grid_online",
    "home_total_energy_wh",
    "home_last_power_w",
    "solar_total_energy_wh",
    "solar_last_power_w",
)


def offline_item(device_id: str, start: str, duration_s: float) -> dict[str, Any]:
    item: dict[str, Any] = {
        "start_time": start,
        "duration_s": duration_s,
        "device_id": device_id,
        "last_is_online": False,
    }
    item.update(dict.fromkeys(TELEMETRY_FIELDS))
    return item
