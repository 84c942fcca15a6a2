"""Commands from any channel (webhook, MQTT, polling): which are new or changed, applying them
to the batteries, and the acknowledgement (`PATCH /v1/command/{id}`) each new version gets.

A command's *version* is what the device acts on: status, window and `battery_commands`. Our
own ack bumps the command's `updated_at` on the server, and `command.started`/`ended` repeat
the same version, so neither may trigger another ack; a new version always does (after a
cancellation or opt-out Flip resets `device_status` to PENDING and waits for us).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gridhive.kit.time import isoformat_z
from gridhive.simulator.client import ApiError, GridhiveClient
from gridhive.simulator.fleet import Fleet, scheduled_command

VersionKey = tuple[Any, ...]
_BATTERY_FIELDS = (
    "mode",
    "power_mode",
    "setpoint_w",
    "backup_reserve_percentage",
    "enable_grid_import",
)


def version_key(command: Mapping[str, Any]) -> VersionKey:
    # A plain tuple, not JSON: this runs for every row of every poll.
    bc = command.get("battery_commands") or {}
    return (
        command.get("status"),
        command.get("starts_at"),
        command.get("ends_at"),
        *(bc.get(name) for name in _BATTERY_FIELDS),
    )


@dataclass(frozen=True)
class AckResult:
    for_status: str  # the command status this ack answers (OK, CANCELED, OPT_OUT)
    device_status: str
    outcome: str  # "ok", or the error after retries
    latency_ms: float | None  # from receipt of this version to the server's answer
    duplicate: bool = False


@dataclass(slots=True)
class CommandRecord:
    """What the inbox keeps of a command: its ids and its latest version, not the JSON it came
    in (at 100,000 batteries the parsed commands were most of the simulator's memory)."""

    command_id: str
    device_id: str
    event_id: str | None
    is_preparatory_action: bool | None
    device_status: str | None  # as the latest version came
    key: VersionKey  # the latest version: status, window, battery_commands (`version_key`)
    updated_at: datetime
    via: str
    received_at_s: float  # wall clock, epoch seconds
    received_mono: float
    fault: str | None
    versions: int = 1
    acks: list[AckResult] = field(default_factory=list)
    handled_key: VersionKey | None = None  # version whose ack is planned, sent or withheld

    @property
    def status(self) -> str:
        return str(self.key[0])

    def report(self) -> dict[str, Any]:
        status, starts_at, ends_at, mode, power_mode, setpoint_w, *_ = self.key
        return {
            "id": self.command_id,
            "device_id": self.device_id,
            "event_id": self.event_id,
            "mode": mode,
            "power_mode": power_mode,
            "setpoint_w": setpoint_w,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "is_preparatory_action": self.is_preparatory_action,
            "status": status,
            "via": self.via,
            "received_at": isoformat_z(datetime.fromtimestamp(self.received_at_s, UTC)),
            "versions": self.versions,
            "fault": self.fault,
            "acks": [a.__dict__ for a in self.acks],
        }


@dataclass(frozen=True)
class AckJob:
    command_id: str
    key: VersionKey
    device_status: str
    reason: str
    received_mono: float
    duplicate: bool = False


@dataclass
class InboxStats:
    received: int = 0  # distinct commands
    changed: int = 0  # later versions of known commands
    ignored: int = 0  # other devices', or over before the simulation started
    stale: int = 0  # older than a version already seen (out-of-order delivery)
    acks_ok: int = 0
    acks_failed: int = 0  # answered FAILED_OFFLINE / FAILED_FAULT (injected)
    ack_errors: int = 0  # the PATCH itself failed after retries
    withheld: int = 0  # no-ack devices
    already_acked: int = 0  # the server already holds our answer (e.g. from an earlier run)
    late: int = 0
    duplicate_acks: int = 0
    superseded: int = 0  # a newer version arrived before this ack went out


def _answer(status: str, fault: str | None) -> tuple[str, str]:
    if fault == "offline":
        return "FAILED_OFFLINE", "device offline (simulated)"
    if fault == "fault":
        return "FAILED_FAULT", "device fault (simulated)"
    return "OK", "Command scheduled" if status == "OK" else "Schedule removed"


class CommandInbox:
    def __init__(
        self,
        fleet: Fleet,
        device_faults: Mapping[str, str],
        *,
        start_s: float,
        late_ack_real_s: float = 0.0,
        window_to_sim: Callable[[float], float] | None = None,
    ) -> None:
        self.fleet = fleet
        # None: command windows are read on the simulated clock as they are; otherwise they
        # are server (wall clock) times, mapped onto the simulated clock by this function.
        self.window_to_sim = window_to_sim
        self.device_faults = device_faults
        self.start_s = start_s
        self.late_ack_real_s = late_ack_real_s
        self.queue: asyncio.Queue[AckJob] = asyncio.Queue()
        self.records: dict[str, CommandRecord] = {}
        self.latencies_ms: list[float] = []
        self.stats = InboxStats()
        self._holding: datetime | None = None
        self._hold_changed = asyncio.Event()
        # Versions and event ids, one object per distinct value: an event's commands have far
        # fewer distinct versions (window, setpoint, mode) than there are commands.
        self._shared: dict[Any, Any] = {}

    def receive(self, command: Mapping[str, Any], *, via: str) -> None:
        """Take one Command (§9.6) from any channel; cheap, never blocks."""
        command_id, device_id = command.get("id"), command.get("device_id")
        if not command_id or device_id not in self.fleet.index or not command.get("updated_at"):
            self.stats.ignored += 1
            return
        key = self._share(version_key(command))
        updated_at = datetime.fromisoformat(command["updated_at"])
        record = self.records.get(command_id)
        if record is None:
            if self._over_before_start(command):
                self.stats.ignored += 1
                return
            record = self._new_record(command, key, updated_at, via)
        elif updated_at < record.updated_at:
            self.stats.stale += 1
            return
        elif key == record.key:
            record.updated_at = updated_at
            # The same version again: ack only when the server still waits for one we never
            # managed to send (not for one planned, withheld or already answered).
            if command.get("device_status") == "PENDING" and record.handled_key != key:
                self._plan_ack(record)
            return
        else:
            self._new_version(record, command, key, updated_at)
        self._apply(record, command)
        self._plan_ack(record)

    def _share(self, value: Any) -> Any:
        return self._shared.setdefault(value, value)

    def _over_before_start(self, command: Mapping[str, Any]) -> bool:
        ends_at = command.get("ends_at")
        return ends_at is not None and datetime.fromisoformat(ends_at).timestamp() < self.start_s

    def _new_record(
        self, command: Mapping[str, Any], key: VersionKey, updated_at: datetime, via: str
    ) -> CommandRecord:
        record = CommandRecord(
            command_id=command["id"],
            device_id=command["device_id"],
            event_id=self._share(command.get("event_id")),
            is_preparatory_action=command.get("is_preparatory_action"),
            device_status=command.get("device_status"),
            key=key,
            updated_at=updated_at,
            via=via,
            received_at_s=time.time(),
            received_mono=time.monotonic(),
            fault=self.device_faults.get(command["device_id"]),
        )
        self.records[command["id"]] = record
        self.stats.received += 1
        return record

    def _new_version(
        self, record: CommandRecord, command: Mapping[str, Any], key: VersionKey, at: datetime
    ) -> None:
        record.key, record.updated_at = key, at
        record.device_status = command.get("device_status")
        record.received_mono = time.monotonic()
        record.versions += 1
        self.stats.changed += 1

    def _apply(self, record: CommandRecord, command: Mapping[str, Any]) -> None:
        """Put the version just received (`command`) on the record's battery."""
        if record.status == "OK":
            scheduled = scheduled_command(command)
            if self.window_to_sim is not None:
                to_sim = self.window_to_sim
                scheduled = replace(
                    scheduled,
                    starts_at_s=to_sim(scheduled.starts_at_s),
                    ends_at_s=to_sim(scheduled.ends_at_s),
                )
            self.fleet.schedule(record.device_id, scheduled)
        else:  # CANCELED or OPT_OUT: the battery goes back to its own behaviour at once
            self.fleet.unschedule(record.device_id, record.command_id)

    def _plan_ack(self, record: CommandRecord) -> None:
        record.handled_key = record.key
        if record.fault == "no-ack":
            self.stats.withheld += 1
            return
        device_status, reason = _answer(record.status, record.fault)
        if record.device_status == device_status:
            # Answered before this process saw it (a restarted cloud): every change of the
            # command resets device_status to PENDING, so this version needs nothing more.
            self.stats.already_acked += 1
            return
        job = AckJob(record.command_id, record.key, device_status, reason, record.received_mono)
        if record.fault == "late-ack" and self.late_ack_real_s > 0:
            self.stats.late += 1
            loop = asyncio.get_running_loop()
            loop.call_later(self.late_ack_real_s, self.queue.put_nowait, job)
            return
        self.queue.put_nowait(job)
        if record.fault == "duplicate-ack":
            self.queue.put_nowait(replace(job, duplicate=True))

    # Sending ----------------------------------------------------------------------------------

    def hold(self, updated_at: datetime | None) -> None:
        """Hold acks of commands last seen with this `updated_at` (None: hold none).

        A poller paging with an offset through commands that share one `updated_at` calls
        this: an ack moves its command to the end of the server's order, and one read before
        the offset would shift the next page by one row, which would then never be read.
        """
        self._holding = updated_at
        self._hold_changed.set()
        self._hold_changed = asyncio.Event()

    async def _wait_turn(self, record: CommandRecord) -> None:
        while self._holding is not None and record.updated_at == self._holding:
            await self._hold_changed.wait()

    async def send(self, client: GridhiveClient, job: AckJob) -> None:
        record = self.records[job.command_id]
        await self._wait_turn(record)
        if record.key != job.key:
            self.stats.superseded += 1
            return
        try:
            await client.ack(job.command_id, job.device_status, job.reason)
        except ApiError as exc:
            self._ack_failed(record, job, exc)
            return
        latency_ms = round((time.monotonic() - job.received_mono) * 1000, 1)
        if job.duplicate:
            self.stats.duplicate_acks += 1
        else:
            self.latencies_ms.append(latency_ms)
            if job.device_status == "OK":
                self.stats.acks_ok += 1
            else:
                self.stats.acks_failed += 1
        record.acks.append(
            AckResult(record.status, job.device_status, "ok", latency_ms, duplicate=job.duplicate)
        )

    def _ack_failed(self, record: CommandRecord, job: AckJob, exc: ApiError) -> None:
        self.stats.ack_errors += 1
        if not job.duplicate:
            record.handled_key = None  # a later re-delivery may try again
        outcome = f"error {exc.status_code or ''}: {exc.detail}"[:300]
        record.acks.append(
            AckResult(record.status, job.device_status, outcome, None, job.duplicate)
        )

    async def worker(self, client: GridhiveClient) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self.send(client, job)
            finally:
                self.queue.task_done()

    async def drain(self, client: GridhiveClient) -> None:
        """Send every queued ack now, one at a time (tests, and the end of a run)."""
        while not self.queue.empty():
            job = self.queue.get_nowait()
            try:
                await self.send(client, job)
            finally:
                self.queue.task_done()
