"""Plain data the planner takes and gives: database rows in, rows to bulk-insert out.

No ORM objects and no pydantic models: at 100,000 devices a per-device model costs more than the
whole plan. Inputs are frozen; outputs are plain slotted dataclasses built once and never changed.
Enumerations are string literals, so every value is already JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from gridhive.kit.time import ensure_utc, isoformat_z

if TYPE_CHECKING:
    from gridhive.programs.schemas import DispatchRules

BatteryMode = Literal["CHARGE", "DISCHARGE", "STANDBY", "BACKUP", "SELF_CONSUMPTION", "SAVINGS"]
PowerMode = Literal["SETPOINT", "FOLLOW_LOAD"]
SetpointMode = Literal["PER_DEVICE", "EVEN"]
DeviceType = Literal["BATTERY", "EV_CHARGER"]
# JSON-ready: only str, int, float, bool, None, lists and dicts of those.
Explanation = dict[str, Any]
# Reasons that belong to one command alone, never to its `explanation_key`: the older commands
# it supersedes (planning/supersession.py). Everything else is shared by the key.
PER_COMMAND_REASONS = frozenset({"supersedes"})

# Flip: `power_mode` is present only for CHARGE and DISCHARGE (flip-api.md §8.1).
POWER_MODES: frozenset[str] = frozenset({"CHARGE", "DISCHARGE"})
DEFAULT_MAX_PRECHARGE_S = 4 * 3600


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action of an event, as the utility sent it (already validated)."""

    mode: BatteryMode
    starts_at: datetime
    duration_s: int
    power_mode: PowerMode | None = None
    setpoint_w: int | None = None
    setpoint_mode: SetpointMode | None = None
    backup_reserve_percentage: int | None = None
    enable_grid_import: bool | None = None

    def __post_init__(self) -> None:
        # A naive time would make every comparison below raise; kit's rule is "naive means UTC".
        object.__setattr__(self, "starts_at", ensure_utc(self.starts_at))

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(seconds=self.duration_s)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A candidate device with its ratings and latest known state (one row per device)."""

    device_pk: UUID
    device_id: str
    site_pk: UUID
    site_id: str
    type: DeviceType
    capacity_wh: int | None
    power_input_w: int | None
    power_output_w: int | None
    reserve_percentage: int = 0
    state_of_charge_pct: float | None = None
    is_online: bool | None = None
    is_participating: bool = True


@dataclass(frozen=True, slots=True)
class ProgramRules:
    """What the planner needs from the program."""

    minimum_reserve_percentage: int = 0
    allow_grid_charging: bool = True
    max_precharge_s: int = DEFAULT_MAX_PRECHARGE_S

    @classmethod
    def from_dispatch_rules(
        cls, rules: DispatchRules, *, minimum_reserve_percentage: int
    ) -> ProgramRules:
        return cls(
            minimum_reserve_percentage=minimum_reserve_percentage,
            allow_grid_charging=rules.allow_grid_charging,
            max_precharge_s=rules.max_precharge_s,
        )


@dataclass(frozen=True, slots=True)
class ExistingCommand:
    """A stored command that may overlap the new plan; times are aware UTC (from the database)."""

    command_id: UUID
    device_pk: UUID
    event_id: UUID | None
    starts_at: datetime
    ends_at: datetime | None
    status: str


@dataclass(slots=True)
class PlannedCommand:
    """One row of `commands`, mapping 1:1 onto Flip's Command (flip-api.md §9.6).

    The battery command is kept flat, as the table stores it; `battery_commands` gives Flip's
    nested shape. A preparatory command carries the index of the action it prepares.
    """

    id: UUID
    event_id: UUID
    device_pk: UUID
    device_id: str
    site_pk: UUID
    site_id: str
    action_index: int
    starts_at: datetime
    ends_at: datetime
    duration_s: int
    is_preparatory_action: bool
    mode: BatteryMode
    power_mode: PowerMode | None
    setpoint_w: int | None
    enable_grid_import: bool | None
    backup_reserve_percentage: int
    explanation: Explanation
    # Equal keys mean equal explanations apart from `PER_COMMAND_REASONS` (None: no such
    # promise), so whoever stores the plan stores each distinct explanation once: a fleet has
    # a few thousand among 200,000 commands. The dicts themselves stay separate, so changing
    # one never changes another.
    explanation_key: Hashable | None = field(default=None, compare=False)

    @property
    def battery_commands(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "power_mode": self.power_mode,
            "setpoint_w": self.setpoint_w,
            "enable_grid_import": self.enable_grid_import,
            "backup_reserve_percentage": self.backup_reserve_percentage,
        }


SkipReason = Literal[
    "NOT_A_BATTERY",
    "SITE_OPTED_OUT",
    "NO_OUTPUT_RATING",
    "NO_INPUT_RATING",
    "ZERO_SHARE",
]


@dataclass(frozen=True, slots=True)
class SkippedDevice:
    """A device left out of the whole event (`action_index` None) or out of one action."""

    device_pk: UUID
    device_id: str
    site_id: str
    reason: SkipReason
    message: str
    action_index: int | None = None

    def as_json(self) -> Explanation:
        return {
            "device_pk": str(self.device_pk),
            "device_id": self.device_id,
            "site_id": self.site_id,
            "reason": self.reason,
            "message": self.message,
            "action_index": self.action_index,
        }


@dataclass(slots=True)
class SupersededCommand:
    """An older command of the same device whose window the new plan overlaps."""

    command_id: UUID
    device_pk: UUID
    event_id: UUID | None
    reason: str
    superseded_by: list[UUID] = field(default_factory=list)

    def as_json(self) -> Explanation:
        return {
            "command_id": str(self.command_id),
            "device_pk": str(self.device_pk),
            "event_id": None if self.event_id is None else str(self.event_id),
            "reason": self.reason,
            "superseded_by": [str(command_id) for command_id in self.superseded_by],
        }


@dataclass(slots=True)
class PrechargeTotals:
    """How the pre-charge before one DISCHARGE action came out, counted by outcome."""

    planned: int = 0
    earliest_starts_at: datetime | None = None
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> Explanation:
        earliest = self.earliest_starts_at
        return {
            "planned": self.planned,
            "earliest_starts_at": None if earliest is None else isoformat_z(earliest),
            "outcomes": dict(sorted(self.outcomes.items())),
        }


@dataclass(slots=True)
class ActionPlan:
    """Totals of one action: what was asked, what the fleet is expected to do, and who."""

    action_index: int
    mode: BatteryMode
    starts_at: datetime
    ends_at: datetime
    power_mode: PowerMode | None
    setpoint_mode: SetpointMode | None
    requested_w: int | None
    expected_w: int | None
    device_count: int
    capped_device_count: int
    capped_ratings_w: tuple[int, int] | None
    skipped_device_count: int
    precharge: PrechargeTotals | None
    notes: list[str]

    def as_json(self) -> Explanation:
        return {
            "action_index": self.action_index,
            "mode": self.mode,
            "starts_at": isoformat_z(self.starts_at),
            "ends_at": isoformat_z(self.ends_at),
            "power_mode": self.power_mode,
            "setpoint_mode": self.setpoint_mode,
            "requested_w": self.requested_w,
            "expected_w": self.expected_w,
            "device_count": self.device_count,
            "capped_device_count": self.capped_device_count,
            "skipped_device_count": self.skipped_device_count,
            "precharge": None if self.precharge is None else self.precharge.as_json(),
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class EventPlan:
    """Everything the planner decided; the caller stores it and changes nothing else."""

    event_id: UUID
    commands: list[PlannedCommand]
    superseded: list[SupersededCommand]
    actions: list[ActionPlan]
    skipped: list[SkippedDevice]
    devices_targeted: int
    devices_participating: int
    summary: list[str]

    @property
    def devices_skipped(self) -> int:
        """Devices that get no command at all."""
        return self.devices_targeted - self.devices_participating

    @property
    def skipped_counts(self) -> dict[str, int]:
        """Skip entries per reason (a device skipped for two actions counts twice)."""
        return dict(sorted(Counter(entry.reason for entry in self.skipped).items()))

    def as_json(self) -> Explanation:
        """The event-level plan (totals, skips, supersession, summary) for `events.plan`."""
        return {
            "devices_targeted": self.devices_targeted,
            "devices_participating": self.devices_participating,
            "devices_skipped": self.devices_skipped,
            "skipped_counts": self.skipped_counts,
            "skipped": [entry.as_json() for entry in self.skipped],
            "actions": [action.as_json() for action in self.actions],
            "superseded": [entry.as_json() for entry in self.superseded],
            "command_count": len(self.commands),
            "summary": list(self.summary),
        }
