"""Figures for the dashboard's charts, shaped for Chart.js (`{labels, datasets}`).

The numbers come from the services (performance, latest telemetry); this module only arranges
them for drawing, and the page renders them as JSON for `vendor.chart`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

# State-of-charge buckets of the fleet histogram: 0-9 %, 10-19 %, ..., 90-100 %.
SOC_BUCKETS = 10
COMMAND_STATUSES = ("OK", "CANCELED", "OPT_OUT")
DEVICE_STATUSES = ("PENDING", "OK", "FAILED_OFFLINE", "FAILED_FAULT")


def _clock(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.strftime("%H:%M")


def power_chart(performance: Mapping[str, Any]) -> dict[str, Any]:
    """Requested, expected and delivered kW per interval of the event (discharge positive)."""
    intervals = performance["intervals"]
    return {
        "labels": [_clock(i["starts_at"]) for i in intervals],
        "datasets": [
            {"label": "Requested kW", "data": [i["requested_kw"] for i in intervals]},
            {"label": "Expected kW", "data": [i["expected_kw"] for i in intervals]},
            {"label": "Delivered kW", "data": [i["delivered_kw"] for i in intervals]},
        ],
    }


def soc_histogram(points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How many batteries sit in each 10 % band of state of charge (unknown ones apart)."""
    counts = [0] * SOC_BUCKETS
    for point in points:
        soc = point.get("battery_state_of_charge_percentage")
        if soc is not None:
            counts[min(int(soc // 10), SOC_BUCKETS - 1)] += 1
    labels = [f"{10 * b}\u2013{10 * b + (10 if b == SOC_BUCKETS - 1 else 9)} %" for b in range(10)]
    return {"labels": labels, "datasets": [{"label": "Batteries", "data": counts}]}


def fleet_summary(points: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    online = sum(1 for p in points if p.get("last_is_online"))
    known_soc = sum(1 for p in points if p.get("battery_state_of_charge_percentage") is not None)
    return {
        "reporting": len(points),
        "online": online,
        "offline": len(points) - online,
        "known_soc": known_soc,
    }


def command_counts(devices: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Commands of the plan counted by status x device status, with row and column totals."""
    cells: Counter[tuple[str, str]] = Counter()
    for device in devices:
        for command in device["commands"]:
            cells[(command["status"], command["device_status"])] += 1
    rows = {
        status: {ds: cells[(status, ds)] for ds in DEVICE_STATUSES} for status in COMMAND_STATUSES
    }
    by_device_status = {ds: sum(cells[(s, ds)] for s in COMMAND_STATUSES) for ds in DEVICE_STATUSES}
    return {"rows": rows, "by_device_status": by_device_status, "total": sum(cells.values())}
