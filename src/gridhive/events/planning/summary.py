"""The plan in sentences an engineer reads at `GET /v1/events/{id}/plan`.

Text counts actions from 1, as people do ("Action 1"); data (`action_index`, error paths) counts
from 0. Times are UTC, as on the wire.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from gridhive.events.planning.types import ActionPlan, PrechargeTotals, SkippedDevice

_EN_DASH = "\u2013"
SKIP_LABELS = {
    "NOT_A_BATTERY": "not a battery",
    "SITE_OPTED_OUT": "site opted out",
    "NO_OUTPUT_RATING": "rated output 0 W",
    "NO_INPUT_RATING": "rated input 0 W",
    "ZERO_SHARE": "even share rounds to 0 W",
}
_PRECHARGE_DETAILS = (
    ("soc_assumed_reserve", "SOC unknown, assumed at reserve"),
    ("soc_assumed_after_discharge", "SOC assumed at the earlier discharge's reserve"),
    ("capped_by_limit", "capped by the pre-charge limit"),
    ("shortened", "window shortened"),
)
_PRECHARGE_NONE = (
    ("not_needed_full", "already full"),
    ("previous_action_charges", "charged by the previous action"),
    ("no_time", "no time before the discharge"),
    ("no_input_rating", "rated input 0 W"),
    ("unknown_capacity", "capacity unknown"),
)


def summarize(
    actions: Sequence[ActionPlan],
    skipped: Sequence[SkippedDevice],
    *,
    devices_targeted: int,
    devices_participating: int,
    superseded_count: int,
    superseded_event_count: int,
) -> list[str]:
    lines = [
        f"{devices_participating:,} of {_count(devices_targeted, 'device')} targeted get commands"
    ]
    for action in actions:
        if action.precharge is not None:
            lines.append(_precharge_line(action.action_index, action.precharge))
        lines.append(_action_line(action))
    if skipped:
        lines.append(_skipped_line(skipped))
    if superseded_count:
        lines.append(
            f"Supersedes {_count(superseded_count, 'command')} of"
            f" {_count(superseded_event_count, 'earlier event')}"
        )
    return lines


def _action_line(action: ActionPlan) -> str:
    head = (
        f"Action {action.action_index + 1} {action.mode} {_span(action.starts_at, action.ends_at)}"
    )
    batteries = _count(action.device_count, "battery", "batteries")
    if action.device_count == 0:
        body = "no battery can take this action"
    elif action.requested_w is not None and action.expected_w is not None:
        body = _setpoint_text(action, batteries)
    elif action.power_mode == "FOLLOW_LOAD":
        body = f"FOLLOW_LOAD on {batteries}; expected power unknown (follows each home's load)"
    else:
        body = f"{batteries}; no setpoint"
    if action.skipped_device_count:
        body += f"; {action.skipped_device_count:,} skipped for this action"
    return f"{head}: {body}"


def _setpoint_text(action: ActionPlan, batteries: str) -> str:
    requested, expected = action.requested_w or 0, action.expected_w or 0
    if action.setpoint_mode == "EVEN":
        asked = f"{requested:,} W requested evenly over {batteries}"
    else:
        per_device = requested // max(action.device_count, 1)
        asked = f"{per_device:,} W per battery over {batteries} ({requested:,} W requested)"
    # Rounded down: a fleet that falls short must never read as 100.0%.
    percent = math.floor(expected * 1000 / requested) / 10 if requested else 0.0
    text = f"{asked}; expected {expected:,} W ({percent:.1f}%)"
    if expected < requested and action.capped_device_count == action.device_count:
        return (
            f"{text}: the fleet cannot reach the total, all {batteries} at their rating"
            f" ({requested - expected:,} W short)"
        )
    if action.capped_device_count:
        capped = _count(action.capped_device_count, "battery", "batteries")
        ratings = _ratings_text(action.capped_ratings_w, action.capped_device_count)
        return f"{text}: {capped} capped at {ratings}"
    return text


def _ratings_text(ratings: tuple[int, int] | None, count: int) -> str:
    whose = "its" if count == 1 else "their"
    if ratings is None:
        return f"{whose} rating"
    low, high = ratings
    if low == high:
        return f"{whose} {low:,} W rating"
    return f"their ratings ({low:,}-{high:,} W)"


def _precharge_line(action_index: int, totals: PrechargeTotals) -> str:
    head = f"Pre-charge before action {action_index + 1}"
    if totals.outcomes.get("not_allowed"):
        return f"{head}: none, the program does not allow charging from the grid"
    parts = []
    if totals.planned and totals.earliest_starts_at is not None:
        start = totals.earliest_starts_at.strftime("%Y-%m-%d %H:%M")
        parts.append(
            f"{_count(totals.planned, 'battery', 'batteries')} charge from the grid at their"
            f" input rating, the earliest from {start} UTC"
        )
        parts.extend(_counted(totals.outcomes, _PRECHARGE_DETAILS))
    skipped = _counted(totals.outcomes, _PRECHARGE_NONE)
    if skipped:
        parts.append(f"none for {', '.join(skipped)}")
    return f"{head}: {'; '.join(parts) or 'none'}"


def _counted(outcomes: Counter[str], labels: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{outcomes[key]:,} {label}" for key, label in labels if outcomes.get(key)]


def _skipped_line(skipped: Sequence[SkippedDevice]) -> str:
    counts = Counter(entry.reason for entry in skipped)
    parts = [f"{SKIP_LABELS[reason]}: {count:,}" for reason, count in sorted(counts.items())]
    return f"Skipped: {', '.join(parts)}"


def _span(starts_at: datetime, ends_at: datetime) -> str:
    end_format = "%H:%M" if starts_at.date() == ends_at.date() else "%Y-%m-%d %H:%M"
    return f"{starts_at:%Y-%m-%d %H:%M}{_EN_DASH}{ends_at.strftime(end_format)} UTC"


def _count(number: int, singular: str, plural: str | None = None) -> str:
    word = singular if number == 1 else (plural or f"{singular}s")
    return f"{number:,} {word}"
