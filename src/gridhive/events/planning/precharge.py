"""Preparatory pre-charge: fill a battery from the grid before it is asked to discharge.

Decisions (system.md §4 leaves the details open):
- A battery at or above `FULL_SOC_PCT` is full enough: the last percent is slow to charge and
  within the error of most SOC readings.
- Unknown SOC: assume the device's configured reserve, the lowest it normally sits at, so the
  pre-charge errs on the long side (the battery simply stops charging when full).
- After an earlier DISCHARGE of the same event the last telemetry is stale: assume the battery
  drained to that action's backup reserve.
- Charging is taken as lossless at the full input rating; the plan states the SOC it expects.
- A pre-charge never overlaps the previous action of the event and never starts before now; one
  that would last under `MIN_PRECHARGE_S` is not worth a command and is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridhive.events.planning.types import ActionSpec, DeviceState, Explanation

FULL_SOC_PCT = 99.0
MIN_PRECHARGE_S = 60
# Float SOCs make exact hours come out as 3600.0000000001 s; don't round those up a second.
_CEIL_TOLERANCE_S = 1e-6


@dataclass(frozen=True, slots=True)
class PrechargeWindow:
    """What every device shares before one DISCHARGE action."""

    action_index: int
    ends_at: datetime
    # Whole seconds between the earliest allowed start (now, or the previous action's end)
    # and the discharge; integers keep the per-device work free of datetime arithmetic.
    available_s: int
    limited_by: str
    max_precharge_s: int
    # Seconds from the end of a previous CHARGE action to the discharge (None: no such action).
    previous_charge_gap_s: float | None
    assumed_soc_pct: float | None


@dataclass(frozen=True, slots=True)
class Precharge:
    """A pre-charge to command.

    Devices alike share one (see `PrechargeDecider`), so it keeps its explanation as immutable
    parts and `explain()` gives each command its own copy.
    """

    starts_at: datetime
    duration_s: int
    details: Mapping[str, Any]
    notes: tuple[str, ...]

    def explain(self) -> Explanation:
        return {**self.details, "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class PrechargeDecision:
    """A pre-charge to command, or why there is none; `outcomes` feed the plan's counts."""

    precharge: Precharge | None
    outcomes: tuple[str, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _SocBasis:
    pct: float
    source: str
    note: str


def precharge_window(
    actions: Sequence[ActionSpec],
    index: int,
    now: datetime,
    *,
    max_precharge_s: int,
    reserve_pct: Sequence[int],
) -> PrechargeWindow:
    """The window before `actions[index]` (a DISCHARGE) that a pre-charge may use."""
    action = actions[index]
    previous = actions[index - 1] if index > 0 else None
    earliest, limited_by = now, "now"
    if previous is not None and previous.ends_at > now:
        earliest, limited_by = previous.ends_at, "the previous action"
    earlier_discharges = [i for i in range(index) if actions[i].mode == "DISCHARGE"]
    previous_charge_gap_s = None
    if previous is not None and previous.mode == "CHARGE":
        previous_charge_gap_s = (action.starts_at - previous.ends_at).total_seconds()
    return PrechargeWindow(
        action_index=index,
        ends_at=action.starts_at,
        available_s=_whole_seconds(action.starts_at - earliest),
        limited_by=limited_by,
        max_precharge_s=max_precharge_s,
        previous_charge_gap_s=previous_charge_gap_s,
        assumed_soc_pct=float(reserve_pct[earlier_discharges[-1]]) if earlier_discharges else None,
    )


class PrechargeDecider:
    """`decide_precharge` remembered per (input, capacity, SOC, reserve).

    Batteries of one model at one reported SOC get the same answer, and a fleet has far fewer
    such combinations than devices: most devices then cost a dict lookup instead of some 5 us
    of arithmetic and formatting.
    """

    def __init__(self, window: PrechargeWindow) -> None:
        self.window = window
        self._decisions: dict[tuple[object, ...], PrechargeDecision] = {}

    def decide(self, device: DeviceState) -> PrechargeDecision:
        key = (
            device.power_input_w,
            device.capacity_wh,
            device.state_of_charge_pct,
            device.reserve_percentage,
        )
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = decide_precharge(device, self.window)
        return decision


def decide_precharge(device: DeviceState, window: PrechargeWindow) -> PrechargeDecision:
    """Whether, when and for how long `device` charges from the grid before the discharge."""
    input_w = device.power_input_w or 0
    capacity_wh = device.capacity_wh or 0
    if input_w <= 0:
        return _none("no_input_rating", "no pre-charge: rated input is 0 W")
    if capacity_wh <= 0:
        return _none("unknown_capacity", "no pre-charge: battery capacity unknown")
    soc = _soc_basis(device, window)
    if soc.pct >= FULL_SOC_PCT:
        return _none(
            "not_needed_full",
            f"no pre-charge: {soc.note}, already full (at least {FULL_SOC_PCT:g}%)",
        )
    needed_s = seconds_to_fill(capacity_wh, soc.pct, input_w)
    wanted_s = min(needed_s, window.max_precharge_s)
    previous_gap_s = window.previous_charge_gap_s
    # The previous action ends when the discharge starts, or inside the wanted window.
    if previous_gap_s is not None and previous_gap_s < wanted_s:
        return _none("previous_action_charges", "no pre-charge: the previous action charges it")
    duration_s = min(wanted_s, window.available_s)
    if duration_s < MIN_PRECHARGE_S:
        return _none(
            "no_time",
            f"no pre-charge: under {MIN_PRECHARGE_S} s left before the discharge"
            f" (limited by {window.limited_by})",
        )
    return _planned(soc, needed_s, wanted_s, duration_s, input_w, capacity_wh, window)


def seconds_to_fill(capacity_wh: int, soc_pct: float, input_w: int) -> int:
    """Seconds at `input_w` to take a `capacity_wh` battery from `soc_pct` to 100%."""
    energy_wh = capacity_wh * (100.0 - soc_pct) / 100.0
    return math.ceil(energy_wh * 3600.0 / input_w - _CEIL_TOLERANCE_S)


def _soc_basis(device: DeviceState, window: PrechargeWindow) -> _SocBasis:
    if window.assumed_soc_pct is not None:
        pct = window.assumed_soc_pct
        return _SocBasis(
            pct, "assumed_after_discharge", f"SOC assumed {pct:g}% after the earlier discharge"
        )
    if device.state_of_charge_pct is None:
        pct = float(device.reserve_percentage)
        return _SocBasis(pct, "assumed_reserve", f"SOC unknown, assumed reserve {pct:g}%")
    pct = min(max(device.state_of_charge_pct, 0.0), 100.0)
    return _SocBasis(pct, "telemetry", f"SOC {pct:g}% from the latest telemetry")


def _planned(
    soc: _SocBasis,
    needed_s: int,
    wanted_s: int,
    duration_s: int,
    input_w: int,
    capacity_wh: int,
    window: PrechargeWindow,
) -> PrechargeDecision:
    reach_pct = min(100.0, soc.pct + input_w * duration_s / (36.0 * capacity_wh))
    notes = [soc.note]
    outcomes = ["planned", f"soc_{soc.source}"]
    limits = []
    if needed_s > window.max_precharge_s:
        outcomes.append("capped_by_limit")
        limits.append(f"capped by the {duration_text(window.max_precharge_s)} pre-charge limit")
    if duration_s < wanted_s:
        outcomes.append("shortened")
        limits.append(f"window shortened by {window.limited_by}")
    if limits:
        notes.append(f"{'; '.join(limits)}: will reach ~{math.floor(reach_pct)}%")
    # A plain dict typed as Mapping: `{**dict}` copies twice as fast as a MappingProxyType.
    details: Mapping[str, Any] = {
        "kind": "precharge",
        "preparatory_for_action": window.action_index,
        "soc_pct_used": soc.pct,
        "soc_source": soc.source,
        "capacity_wh": capacity_wh,
        "input_w": input_w,
        "needed_s": needed_s,
        "planned_s": duration_s,
        "expected_soc_pct_at_end": round(reach_pct, 1),
    }
    starts_at = window.ends_at - timedelta(seconds=duration_s)
    precharge = Precharge(starts_at, duration_s, details, tuple(notes))
    return PrechargeDecision(precharge, tuple(outcomes))


def _none(outcome: str, reason: str) -> PrechargeDecision:
    return PrechargeDecision(precharge=None, outcomes=(outcome,), reason=reason)


def _whole_seconds(span: timedelta) -> int:
    # Rounded down, so that a pre-charge clipped by `now` starts at or after now.
    return max(0, math.floor(span.total_seconds()))


def duration_text(seconds: int) -> str:
    """4 h, 90 min, 45 s: the shortest exact way to say a duration."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
