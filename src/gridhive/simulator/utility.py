"""The utility's and the homeowner's side of a simulated run, over the public API: dispatch an
event, watch its plan and acknowledgements, read its performance, cancel it, opt a home out.

Synchronous (httpx.Client): `gridhive demo`, the end-to-end tests and the benchmark call it
between their own steps, while the simulator runs in its own process.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from gridhive.kit.time import isoformat_z

T = TypeVar("T")
POLL_S = 0.5


class UtilityApiError(Exception):
    pass


class Timeout(UtilityApiError):
    pass


def poll(read: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float, what: str) -> T:
    """Read until `done` holds (a deadline, not a fixed wait); the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"{what}: not after {timeout_s:g} s (last: {str(value)[:500]})")
        time.sleep(POLL_S)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def discharge_actions(
    *, lead_s: float, duration_s: int, setpoint_w: int, mode: str = "DISCHARGE"
) -> list[dict[str, Any]]:
    """One action starting `lead_s` from now (whole seconds, so the server echoes it back)."""
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_s)
    action: dict[str, Any] = {
        "mode": mode,
        "starts_at": isoformat_z(starts_at),
        "duration_s": duration_s,
    }
    if mode in ("DISCHARGE", "CHARGE"):
        action.update(power_mode="SETPOINT", setpoint_w=setpoint_w)
    return [action]


@dataclass(frozen=True)
class Acks:
    """Where the event's commands stand, from the plan (one row per command)."""

    commands: int
    by_device_status: Mapping[str, int]
    by_status: Mapping[str, int]
    failed_devices: Mapping[str, str]  # device id -> device_status (and reason)

    @property
    def answered(self) -> int:
        return self.commands - self.by_device_status.get("PENDING", 0)


def acks_from_plan(plan: Mapping[str, Any]) -> Acks:
    device_statuses: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    failed: dict[str, str] = {}
    commands = 0
    for device in plan.get("devices", []):
        for command in device["commands"]:
            commands += 1
            device_statuses[command["device_status"]] += 1
            statuses[command["status"]] += 1
            if str(command["device_status"]).startswith("FAILED"):
                reason = command.get("device_status_reason") or ""
                failed[device["device_id"]] = f"{command['device_status']} {reason}".strip()
    return Acks(commands, dict(device_statuses), dict(statuses), failed)


class UtilityClient:
    def __init__(self, base_url: str, utility_key: str, *, timeout_s: float = 120.0) -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {utility_key}"},
            timeout=timeout_s,
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if not response.is_success:
            raise UtilityApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def dispatch(self, program_id: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
        body = {
            "program_id": program_id,
            "target_type": "PROGRAM",
            "target_ids": [program_id],
            "actions": actions,
        }
        event: dict[str, Any] = self._call("POST", "/v1/events", json=body)
        return event

    def event(self, event_id: str) -> dict[str, Any]:
        event: dict[str, Any] = self._call("GET", f"/v1/events/{event_id}")
        return event

    def plan(self, event_id: str) -> dict[str, Any]:
        plan: dict[str, Any] = self._call("GET", f"/v1/events/{event_id}/plan")
        return plan

    def acks(self, event_id: str) -> Acks:
        return acks_from_plan(self.plan(event_id))

    def sites(self, event_id: str) -> list[dict[str, Any]]:
        sites: list[dict[str, Any]] = self._call("GET", f"/v1/events/{event_id}/sites")
        return sites

    def performance(self, event_id: str) -> dict[str, Any]:
        performance: dict[str, Any] = self._call("GET", f"/v1/events/{event_id}/performance")
        return performance

    def cancel(self, event_id: str) -> None:
        self._call("DELETE", f"/v1/events/{event_id}")

    def latest_telemetry(self, program_id: str) -> list[dict[str, Any]]:
        return self._telemetry("latest", {"program_id": program_id})

    def historical_telemetry(
        self, program_id: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Every interval starting in [start, end) of the program's devices."""
        body = {
            "program_id": program_id,
            "start_time": isoformat_z(start),
            "end_time": isoformat_z(end),
        }
        return self._telemetry("historical", body)

    def _telemetry(self, kind: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            body = {**query, "cursor": cursor} if cursor else query
            page = self._call("POST", f"/v1/telemetry/{kind}", json=body)
            points += page["telemetry"]
            cursor = page.get("next_cursor")
            if not cursor:
                return points

    # Waiting ----------------------------------------------------------------------------------

    def wait_for_acks(self, event_id: str, expected: int, *, timeout_s: float) -> Acks:
        """Until `expected` commands of the event have an answer from the device maker."""
        return poll(
            lambda: self.acks(event_id),
            lambda acks: acks.answered >= expected,
            timeout_s=timeout_s,
            what=f"{expected} acknowledged commands of event {event_id}",
        )

    def wait_for_status(self, event_id: str, status: str, *, timeout_s: float) -> None:
        poll(
            lambda: self.event(event_id)["status"],
            lambda current: current == status,
            timeout_s=timeout_s,
            what=f"event {event_id} {status}",
        )

    def wait_for_telemetry_until(
        self, program_id: str, moment: datetime, devices: int, *, timeout_s: float
    ) -> None:
        """Until `devices` devices have reported an interval reaching `moment`."""

        def reached(points: list[dict[str, Any]]) -> bool:
            ends = [
                parse_time(p["start_time"]) + timedelta(seconds=p["duration_s"]) for p in points
            ]
            return sum(1 for end in ends if end >= moment) >= devices

        poll(
            lambda: self.latest_telemetry(program_id),
            reached,
            timeout_s=timeout_s,
            what=f"telemetry of {devices} devices up to {isoformat_z(moment)}",
        )


def opt_out(base_url: str, oem_key: str, site_id: str, event_id: str) -> dict[str, Any]:
    """The homeowner's app (site token from the OEM) opts the home out of the event."""
    oem = {"Authorization": f"Bearer {oem_key}"}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        token = http.post(f"/v1/auth/site/{site_id}", headers=oem)
        if not token.is_success:
            raise UtilityApiError(f"site token for {site_id}: {token.status_code} {token.text}")
        site = {"Authorization": f"Bearer {token.json()['site_access_token']}"}
        answer = http.patch(
            f"/v1/site/{site_id}/event/{event_id}",
            json={"is_participating": False},
            headers=site,
        )
        if not answer.is_success:
            raise UtilityApiError(f"opt-out of {site_id}: {answer.status_code} {answer.text}")
        result: dict[str, Any] = answer.json()
        return result
