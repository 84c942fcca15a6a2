"""What the simulator says: a live one-line summary and the final JSON report."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridhive.kit.time import isoformat_z
from gridhive.simulator.fleet import Fleet
from gridhive.simulator.inbox import CommandInbox
from gridhive.simulator.receiver import ReceiverStats
from gridhive.simulator.telemetry import TelemetryStats


def _iso(epoch_s: float) -> str:
    return isoformat_z(datetime.fromtimestamp(epoch_s, UTC))


def _percentile(ordered: Sequence[float], q: float) -> float:
    # Nearest rank: plain and exact for the small samples a test run produces.
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    if not values_ms:
        return {"count": 0, "min": None, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values_ms)
    return {
        "count": len(ordered),
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": _percentile(ordered, 0.5),
        "p90": _percentile(ordered, 0.9),
        "p99": _percentile(ordered, 0.99),
        "max": ordered[-1],
    }


@dataclass(frozen=True)
class Snapshot:
    """Everything a summary line or the report reads, at one moment."""

    sim_now_s: float
    lag_s: float  # how far the physics is behind the simulated clock
    fleet: Fleet
    inbox: CommandInbox
    telemetry: TelemetryStats
    webhooks: ReceiverStats | None


def summary_line(s: Snapshot) -> str:
    c, t = s.inbox.stats, s.telemetry
    acked = c.acks_ok + c.acks_failed
    parts = [
        f"sim {_iso(s.sim_now_s)[:16].replace('T', ' ')}Z",
        f"commands {c.received} (+{c.changed} changes) acked {acked}"
        f" failed {c.acks_failed} errors {c.ack_errors}",
        f"telemetry {t.items_sent} sent {t.items_failed} failed"
        + (" (unavailable)" if t.unavailable else ""),
    ]
    if s.webhooks is not None:
        w = s.webhooks
        parts.append(f"webhooks {w.verified} verified {w.rejected} rejected")
    parts.append(f"SOC {s.fleet.mean_soc_pct():.1f}%")
    parts.append(f"discharge {s.fleet.discharge_kw():,.1f} kW")
    if s.lag_s > 120:
        parts.append(f"LAGGING {s.lag_s / 60:.0f} sim min")
    return " | ".join(parts)


def device_rows(fleet: Fleet, faults: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "device_id": spec.device_id,
            "site_id": spec.site_id,
            "fault": faults.get(spec.device_id),
            "final_soc_pct": round(fleet.soc_pct(i), 2),
            "capacity_wh": spec.capacity_wh,
            "power_w": spec.power_w,
            "reserve_pct": spec.reserve_pct,
        }
        for i, spec in enumerate(fleet.specs)
    ]


def build_report(
    s: Snapshot,
    *,
    started_at: datetime,
    sim_start_s: float,
    settings: Mapping[str, Any],
    provisioning: Mapping[str, Any],
    faults: Mapping[str, str],
    channel: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "settings": dict(settings),
        "started_at": isoformat_z(started_at),
        "ended_at": isoformat_z(datetime.now(UTC)),
        "simulated": {
            "start": _iso(sim_start_s),
            "end": _iso(s.sim_now_s),
            "seconds": round(s.sim_now_s - sim_start_s),
        },
        "totals": {
            "provisioning": dict(provisioning),
            "commands": asdict(s.inbox.stats),
            "telemetry": asdict(s.telemetry),
            "webhooks": asdict(s.webhooks) if s.webhooks is not None else None,
            "channel": dict(channel),
            "mean_soc_pct": round(s.fleet.mean_soc_pct(), 2),
        },
        "latency_ms": {"receipt_to_ack": latency_summary(s.inbox.latencies_ms)},
        "faults": dict(Counter(faults.values())),
        "devices": device_rows(s.fleet, faults),
        "commands": [record.report() for record in s.inbox.records.values()],
    }


def write_report(path: str | Path, report: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
