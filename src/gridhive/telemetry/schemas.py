"""Telemetry wire shapes: the OEM's items (flip-api §9.7, §6.9), the utility's view (§13.4),
and our additions (performance, capacity)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime
from gridhive.kit.time import ensure_utc

MAX_ITEMS = 1000
MAX_DURATION_S = 86_400
MAX_VALUE = 1e12  # keeps absurd numbers out of the database; no battery reports a terawatt
MAX_WINDOW = timedelta(days=31)
DEFAULT_READ_LIMIT = 1000
MAX_READ_LIMIT = 10_000


def _utc(value: datetime) -> datetime:
    try:
        return ensure_utc(value)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC form
        raise ValueError("date-time out of range") from exc


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


Time = Annotated[datetime, AfterValidator(_utc)]
Measure = Annotated[float, Field(ge=0, le=MAX_VALUE, allow_inf_nan=False)] | None
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None
# No NUL characters: PostgreSQL text cannot hold them.
DeviceId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
ModeText = Annotated[str, Field(max_length=32, pattern=r"^[^\x00]*$")]
Mode = Annotated[ModeText, AfterValidator(_upper)] | None
Duration = Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)]
RawData = dict[str, Any] | None

# Nullable measurements of an item; `last_is_online=false` requires every one of them null.
MEASUREMENTS = (
    "last_mode",
    "battery_last_power_charge_w",
    "battery_last_power_discharge_w",
    "battery_total_energy_charge_wh",
    "battery_total_energy_discharge_wh",
    "battery_last_stored_energy_wh",
    "battery_last_capacity_energy_wh",
    "battery_last_state_of_charge_percentage",
    "battery_last_state_of_health_percentage",
    "last_is_grid_online",
    "home_total_energy_wh",
    "home_last_power_w",
    "solar_total_energy_wh",
    "solar_last_power_w",
)
# What an online device must report: the battery's power, energy and state, which performance,
# baselines, capacity and planning are computed from. The rest may be null while online: not
# every site has a home meter or solar, and state of health arrived in a later Flip version.
REQUIRED_WHEN_ONLINE = (
    "battery_last_power_charge_w",
    "battery_last_power_discharge_w",
    "battery_total_energy_charge_wh",
    "battery_total_energy_discharge_wh",
    "battery_last_stored_energy_wh",
    "battery_last_capacity_energy_wh",
    "battery_last_state_of_charge_percentage",
)


class TelemetryItemIn(InputSchema):
    """One interval of one battery (flip-api §9.7).

    Offline rule: with `last_is_online: false` every nullable measurement must be null (Flip's
    rule). Online (`true`, or null, which is read as online because the device reported), the
    battery fields must be present and non-null: `battery_last_power_charge_w`,
    `battery_last_power_discharge_w`, `battery_total_energy_charge_wh`,
    `battery_total_energy_discharge_wh`, `battery_last_stored_energy_wh`,
    `battery_last_capacity_energy_wh`, `battery_last_state_of_charge_percentage`. Home, solar,
    grid status, mode and state of health may be null. Numbers are ≥ 0, percentages 0-100.
    `battery_last_backup_reserve_percentage` is deprecated: accepted and ignored.
    """

    start_time: Time
    duration_s: Duration
    device_id: DeviceId
    last_is_online: bool | None = None
    last_mode: Mode = None
    battery_last_power_charge_w: Measure = None
    battery_last_power_discharge_w: Measure = None
    battery_total_energy_charge_wh: Measure = None
    battery_total_energy_discharge_wh: Measure = None
    battery_last_stored_energy_wh: Measure = None
    battery_last_capacity_energy_wh: Measure = None
    battery_last_state_of_charge_percentage: Percent = None
    battery_last_state_of_health_percentage: Percent = None
    last_is_grid_online: bool | None = None
    home_total_energy_wh: Measure = None
    home_last_power_w: Measure = None
    solar_total_energy_wh: Measure = None
    solar_last_power_w: Measure = None
    oem_raw_data: RawData = None

    @model_validator(mode="after")
    def _online_rule(self) -> TelemetryItemIn:
        values = self.__dict__  # the validated fields; getattr per field costs more here
        if self.last_is_online is False:
            present = [name for name in MEASUREMENTS if values[name] is not None]
            if present:
                raise ValueError(
                    f"last_is_online is false, so these must be null: {', '.join(present)}"
                )
        else:
            missing = [name for name in REQUIRED_WHEN_ONLINE if values[name] is None]
            if missing:
                raise ValueError(
                    f"the device is online, so these are required: {', '.join(missing)}"
                )
        return self


# Fields an item may leave out: pydantic-core fills in None.
_Flag = Annotated[bool | None, Field(default=None)]
_MaybeMode = Annotated[ModeText | None, Field(default=None)]
_MaybeMeasure = Annotated[Measure, Field(default=None)]
_MaybePercent = Annotated[Percent, Field(default=None)]
_MaybeRawData = Annotated[RawData, Field(default=None)]


@with_config(InputSchema.model_config)
class ItemFields(TypedDict):
    """`TelemetryItemIn`'s fields with the checks pydantic-core makes on its own (types, bounds,
    lengths, patterns; a test keeps the two alike). A batch of valid items is parsed into these
    dicts in one pass from the body's bytes, with no Python call per item (a model per item, with
    its Python validators, costs twice as much); `item_columns` then does the rest - the offline
    rule, UTC times and the upper-cased mode - column by column."""

    start_time: datetime
    duration_s: Duration
    device_id: DeviceId
    last_is_online: _Flag
    last_mode: _MaybeMode
    battery_last_power_charge_w: _MaybeMeasure
    battery_last_power_discharge_w: _MaybeMeasure
    battery_total_energy_charge_wh: _MaybeMeasure
    battery_total_energy_discharge_wh: _MaybeMeasure
    battery_last_stored_energy_wh: _MaybeMeasure
    battery_last_capacity_energy_wh: _MaybeMeasure
    battery_last_state_of_charge_percentage: _MaybePercent
    battery_last_state_of_health_percentage: _MaybePercent
    last_is_grid_online: _Flag
    home_total_energy_wh: _MaybeMeasure
    home_last_power_w: _MaybeMeasure
    solar_total_energy_wh: _MaybeMeasure
    solar_last_power_w: _MaybeMeasure
    oem_raw_data: _MaybeRawData


class CounterTelemetryIn(InputSchema):
    """One lifetime-counter reading of one battery (`POST /v1/telemetry/BATTERY_COUNTER`).

    Counters only grow; gridhive turns each reading into an interval that starts at the
    device's previous reading, with energy = the difference of the counters. A counter lower
    than before was reset: its new value is the energy since the reset. The first reading of a
    device only starts the count; a reading more than 24 h after the previous one restarts it
    without an interval (the energy cannot be placed in time); a reading older than the last
    one is FAILED. The two battery counters are required; the grid counters are kept for the
    next difference (the utility view derives grid figures from home, solar and battery).
    Other names follow the utility view (`battery_power_charge_w`, `home_power_w`, ...);
    `is_online` null is read as online.
    """

    device_id: DeviceId
    timestamp: Time
    battery_lifetime_energy_charge_wh: Annotated[float, Field(ge=0, le=MAX_VALUE)]
    battery_lifetime_energy_discharge_wh: Annotated[float, Field(ge=0, le=MAX_VALUE)]
    solar_lifetime_energy_wh: Measure = None
    home_lifetime_energy_wh: Measure = None
    grid_lifetime_import_wh: Measure = None
    grid_lifetime_export_wh: Measure = None
    battery_state_of_charge_percentage: Percent = Field(
        default=None,
        validation_alias=AliasChoices(
            "battery_state_of_charge_percentage", "battery_last_state_of_charge_percentage"
        ),
    )
    battery_state_of_health_percentage: Percent = None
    battery_stored_energy_wh: Measure = None
    battery_capacity_energy_wh: Measure = None
    battery_power_charge_w: Measure = None
    battery_power_discharge_w: Measure = None
    home_power_w: Measure = None
    solar_power_w: Measure = None
    is_online: bool | None = Field(
        default=None, validation_alias=AliasChoices("is_online", "last_is_online")
    )
    is_grid_online: bool | None = None
    mode: Mode = Field(default=None, validation_alias=AliasChoices("mode", "last_mode"))
    oem_raw_data: dict[str, Any] | None = None


def _items_schema(model: type[InputSchema]) -> dict[str, Any]:
    # Items are parsed one by one (a bad item fails alone), so the body declares them loosely;
    # this puts the real item schema in the OpenAPI document all the same.
    return {"type": "array", "maxItems": MAX_ITEMS, "items": model.model_json_schema()}


class TelemetryBatchIn(InputSchema):
    """`{"telemetry": [items]}`; the 2024 body's top-level `start_time`/`duration_s` (deprecated)
    still apply to items that lack their own."""

    telemetry: Annotated[list[Any], WithJsonSchema(_items_schema(TelemetryItemIn))]
    start_time: Annotated[
        Any, WithJsonSchema({"type": "string", "format": "date-time", "deprecated": True})
    ] = None
    duration_s: Annotated[Any, WithJsonSchema({"type": "number", "deprecated": True})] = None

    def raw_items(self) -> list[Any]:
        defaults = {
            k: v
            for k, v in (("start_time", self.start_time), ("duration_s", self.duration_s))
            if v is not None
        }
        if not defaults:
            return self.telemetry
        return [{**defaults, **i} if isinstance(i, dict) else i for i in self.telemetry]


ITEM_FIELDS = tuple(TelemetryItemIn.model_fields)


@dataclass(frozen=True, slots=True)
class ItemColumns:
    """Valid interval items as one sequence per field (`values[name][row]`); `positions[row]`
    is the row's index in the request, which had `size` items."""

    values: dict[str, Sequence[Any]]
    positions: Sequence[int]
    size: int

    @classmethod
    def of(
        cls, rows: Sequence[tuple[Any, ...]], positions: Sequence[int], size: int
    ) -> ItemColumns:
        """From each item's values in `ITEM_FIELDS` order, transposed in one C-level call."""
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(ITEM_FIELDS)
        return cls(dict(zip(ITEM_FIELDS, columns, strict=True)), positions, size)

    @classmethod
    def of_items(
        cls, items: Sequence[TelemetryItemIn], positions: Sequence[int], size: int
    ) -> ItemColumns:
        return cls.of(list(map(_MODEL_VALUES, items)), positions, size)


_MODEL_VALUES = attrgetter(*ITEM_FIELDS)
_DICT_VALUES = itemgetter(*ITEM_FIELDS)


@with_config(InputSchema.model_config)
class _ValidBatch(TypedDict):
    telemetry: list[ItemFields]


_VALID_BATCH = TypeAdapter(_ValidBatch)


def item_columns(raw: bytes) -> ItemColumns | None:
    """The body's items as columns when every item is valid (the common case), else None.

    The same rules as `TelemetryItemIn`: pydantic-core checks each field while it parses the
    bytes, then the offline rule, UTC times and the upper-cased mode are done per column. A body
    that is not all valid items (a bad item, the 2024 body, not a batch) is None, and goes
    through `TelemetryBatchIn` and `TelemetryItemIn`, which name each bad item's fault.
    """
    try:
        items = _VALID_BATCH.validate_json(raw)["telemetry"]
    except ValidationError:
        return None
    columns = ItemColumns.of(list(map(_DICT_VALUES, items)), range(len(items)), len(items))
    values = columns.values
    starts = _utc_column(values["start_time"])
    if starts is None or not _online_rule_holds(values):
        return None
    values["start_time"] = starts
    values["last_mode"] = [None if m is None else _upper(m) for m in values["last_mode"]]
    return columns


def _online_rule_holds(values: dict[str, Sequence[Any]]) -> bool:
    """`TelemetryItemIn._online_rule` over columns: scans in C, loops only over offline rows."""
    onlines = values["last_is_online"]
    offline = set()
    if False in onlines:
        offline = {row for row, online in enumerate(onlines) if online is False}
    for name in REQUIRED_WHEN_ONLINE:
        column = values[name]
        if None in column and any(v is None and r not in offline for r, v in enumerate(column)):
            return False
    if offline:
        for name in MEASUREMENTS:
            column = values[name]
            if any(column[row] is not None for row in offline):
                return False
    return True


def _utc_column(starts: Sequence[datetime]) -> list[datetime] | None:
    """`Time`'s conversion, once per distinct time (a batch has few: its items' intervals);
    None when one has no UTC form (the per-item path then names it)."""
    try:
        utc = {start: _utc(start) for start in set(starts)}
    except (ValueError, OverflowError):
        return None
    return list(map(utc.__getitem__, starts))


class CounterBatchIn(InputSchema):
    """`{"telemetry": [Counter Telemetry items]}`."""

    telemetry: Annotated[list[Any], WithJsonSchema(_items_schema(CounterTelemetryIn))]


class ItemResult(Schema):
    status: Literal["OK", "FAILED"]
    message: str


# Utility reads ---------------------------------------------------------------------------------


class TelemetryReadQuery(InputSchema):
    program_id: Annotated[str, Field(min_length=1, max_length=100)]
    device_ids: Annotated[list[DeviceId], Field(max_length=MAX_READ_LIMIT)] | None = None
    enrollment_ids: (
        Annotated[
            list[uuid.UUID],
            Field(
                max_length=MAX_READ_LIMIT, description="Older Flip pages' filter; still honoured"
            ),
        ]
        | None
    ) = None
    limit: Annotated[
        int, Field(ge=1, le=MAX_READ_LIMIT, description="Our addition: points per page")
    ] = DEFAULT_READ_LIMIT
    cursor: Annotated[
        str | None,
        Field(max_length=1000, description="Our addition: `next_cursor` of the last page"),
    ] = None


class TelemetryLatestQuery(TelemetryReadQuery):
    """`{program_id, device_ids?}`: the latest point per device of the program."""


class TelemetryHistoricalQuery(TelemetryReadQuery):
    """`{program_id, start_time, end_time, device_ids?}`: every interval starting in
    [start_time, end_time), at most 31 days."""

    start_time: Time
    end_time: Time

    @model_validator(mode="after")
    def _window(self) -> TelemetryHistoricalQuery:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        if self.end_time - self.start_time > MAX_WINDOW:
            raise ValueError("the window from start_time to end_time is at most 31 days")
        return self


class UtilityTelemetry(Schema):
    """Flip's UtilityTelemetry. `grid_*` are derived (home - solar - battery discharge + battery
    charge; positive = import from the grid, negative = export), null when home or battery
    figures are missing (missing solar counts as none). `battery_last_backup_reserve_percentage`
    is the device's configured reserve. In `latest`, a device silent for 15 minutes shows
    `last_is_online: false`."""

    device_id: str
    start_time: UTCDatetime
    duration_s: float
    last_is_online: bool | None
    last_mode: str | None
    battery_power_charge_w: float | None
    battery_power_discharge_w: float | None
    battery_state_of_charge_percentage: float | None
    battery_last_backup_reserve_percentage: float | None
    battery_total_energy_charge_wh: float | None
    battery_total_energy_discharge_wh: float | None
    grid_power_w: float | None
    grid_total_energy_wh: float | None
    home_power_w: float | None
    home_total_energy_wh: float | None
    solar_power_w: float | None
    solar_total_energy_wh: float | None


class UtilityTelemetryPage(Schema):
    telemetry: list[UtilityTelemetry]
    next_cursor: str | None = Field(
        description="Our addition: pass as `cursor` for the next page; null on the last page"
    )


# Performance (our addition) ------------------------------------------------------------------

BaselineMethod = Literal["PREVIOUS_10_NON_EVENT_DAYS", "HOUR_BEFORE", "NONE"]


class PerformanceInterval(Schema):
    starts_at: UTCDatetime
    ends_at: UTCDatetime
    requested_kw: float | None
    expected_kw: float
    delivered_kw: float | None


class PerformanceBaseline(Schema):
    method: BaselineMethod | Literal["MIXED"]
    devices_by_method: dict[str, int]


class PerformanceTotals(Schema):
    expected_kwh: float
    delivered_kwh: float | None
    devices: int
    devices_responding: int
    share_of_devices_responding: float | None
    data_coverage: float | None


class EventPerformanceRead(Schema):
    """Per 5-minute interval of the event: requested, expected and delivered kW (positive =
    discharge), delivered net of each device's baseline; and totals."""

    event_id: uuid.UUID
    interval_s: int
    intervals: list[PerformanceInterval]
    totals: PerformanceTotals
    baseline: PerformanceBaseline


# Capacity (our addition) ---------------------------------------------------------------------


class CapacityFigures(Schema):
    devices: int
    available_devices: int
    offline_devices: int
    unknown_state_devices: int
    discharge_kw: float
    discharge_kwh: float
    rated_discharge_kw: float


class GroupCapacity(CapacityFigures):
    group_id: str
    name: str


class CapacityRead(Schema):
    """What the program's fleet could discharge at `at`.

    Per available battery: usable energy = capacity x (SOC - max(device reserve, program
    minimum)) / 100, less the energy of DISCHARGE commands already planned between now and
    `at` (SOC otherwise assumed unchanged; planned charging is not counted); `discharge_kwh`
    sums it. `discharge_kw` is the power the fleet can hold for one hour: per battery
    min(rated output, usable energy / 1 h). `rated_discharge_kw` sums the rated output of the
    batteries with usable energy. Available = online (reported within 15 minutes) with a known
    state of charge and ratings; offline and unknown-state devices are counted apart. A site
    in several groups counts in each group and once in the totals.
    """

    program_id: uuid.UUID
    at: UTCDatetime
    computed_at: UTCDatetime
    totals: CapacityFigures
    groups: list[GroupCapacity]


# telemetry.published (our periodic aggregate for utilities) ----------------------------------


class TelemetryAggregateFigures(Schema):
    """One fleet's figures over the window. Power is averaged over the whole window (a device
    that did not report counts as 0 W); state of charge and stored energy are each device's
    latest known state at publication."""

    devices_enrolled: int = Field(description="Live batteries in ACTIVE enrollments")
    devices_reporting: int = Field(description="Of those, with telemetry in the window")
    devices_online: int = Field(description="Reported online within the last 15 minutes")
    state_of_charge_percentage_mean: float | None = Field(
        description="Mean latest SOC of the devices whose SOC is known"
    )
    stored_energy_kwh: float = Field(description="Sum of SOC x capacity (devices with both)")
    stored_energy_kwh_mean: float | None = Field(description="Mean of the same per device")
    capacity_kwh: float = Field(description="Sum of the rated capacity of the enrolled devices")
    battery_power_charge_w: float = Field(description="Mean charging power over the window")
    battery_power_discharge_w: float = Field(description="Mean discharging power")
    battery_power_net_w: float = Field(description="Discharge minus charge; positive = export")
    energy_charged_kwh: float = Field(description="Energy into the batteries in the window")
    energy_discharged_kwh: float = Field(description="Energy out of the batteries")


class TelemetryAggregateGroup(TelemetryAggregateFigures):
    group_id: str
    name: str


class TelemetryAggregateRead(Schema):
    """`event_object` of a `telemetry.published` webhook (`object_type` is
    `telemetry_aggregate`): the program's telemetry over [window_start, window_end), sent to
    the program's utility every few minutes (5 by default) while it has an ACTIVE enrollment.
    `id` (the program id and the window start) is the same if the message is ever sent again.
    A site in several groups counts in each group and once in the totals."""

    id: str
    program_id: uuid.UUID
    window_start: UTCDatetime
    window_end: UTCDatetime
    published_at: UTCDatetime
    totals: TelemetryAggregateFigures
    groups: list[TelemetryAggregateGroup]


class TelemetryAggregateObject(TelemetryAggregateRead):
    object_type: Literal["telemetry_aggregate"] = "telemetry_aggregate"


class TelemetryPublishedWebhook(Schema):
    """The `telemetry.published` webhook (Standard Webhooks headers and signature)."""

    event_type: Literal["telemetry.published"]
    event_object: TelemetryAggregateObject
    timestamp: str = Field(examples=["2026-07-15T16:00:00.000Z"])


# Event timeline (our addition) ---------------------------------------------------------------

TimelineKind = Annotated[
    str,
    Field(
        description="The change (`event.created`, `event.updated`, `event.canceled`, "
        "`command.created`, `command.updated`, `command.canceled`, ...), a delivery attempt "
        "(`delivery.succeeded`, `delivery.failed`, `delivery.dead`) or "
        "`command.acknowledged`",
        examples=["command.acknowledged"],
    ),
]


class TimelineEntry(Schema):
    at: UTCDatetime
    kind: TimelineKind
    object_type: str = Field(description="`event`, `command` or `delivery`")
    object_id: str = Field(description="The event's, command's or delivery's (webhook-id) id")
    site_id: str | None
    device_id: str | None
    detail: str


class TimelinePage(Schema):
    """The event's timeline, oldest first; `next_cursor` is null on the last page."""

    entries: list[TimelineEntry]
    next_cursor: str | None
