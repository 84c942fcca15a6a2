"""POST /v1/telemetry/BATTERY has two ways in: a batch of valid items is parsed as columns in one
pass, anything else item by item. Both must take and store exactly the same things."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.kit.time import isoformat_z, utc_now
from gridhive.telemetry.models import TelemetryInterval
from gridhive.telemetry.schemas import (
    ITEM_FIELDS,
    ItemColumns,
    ItemFields,
    TelemetryBatchIn,
    TelemetryItemIn,
    item_columns,
)
from tests.telemetry.conftest import Fleet, answers, item, offline_item

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def per_item_columns(body: dict[str, Any]) -> ItemColumns:
    """The columns the per-item path makes of a body whose items are all valid."""
    raw = TelemetryBatchIn.model_validate(body).raw_items()
    items = [TelemetryItemIn.model_validate(i) for i in raw]
    return ItemColumns.of_items(items, range(len(items)), len(items))


def same_values(fast: ItemColumns, slow: ItemColumns) -> None:
    assert fast.size == slow.size
    assert list(fast.positions) == list(slow.positions)
    for name in ITEM_FIELDS:
        assert list(fast.values[name]) == list(slow.values[name]), name
        assert [type(v) for v in fast.values[name]] == [type(v) for v in slow.values[name]]
    for fast_time, slow_time in zip(
        fast.values["start_time"], slow.values["start_time"], strict=True
    ):
        assert fast_time.utcoffset() == slow_time.utcoffset() == timedelta(0)


def test_the_one_pass_item_schema_is_the_item_models() -> None:
    """Same fields, types, bounds and patterns: only the Python-level rules differ."""
    fast = TypeAdapter(ItemFields).json_schema()
    slow = TelemetryItemIn.model_json_schema()
    assert fast["properties"] == slow["properties"]
    assert set(fast["required"]) == set(slow["required"])
    assert tuple(slow["properties"]) == ITEM_FIELDS


VALID_BATCHES = {
    "full items": [item("b-1", START), item("b-2", START + timedelta(minutes=5))],
    "offline among online": [item("b-1", START), offline_item("b-2", START), item("b-3", START)],
    "optional fields left out": [
        {
            k: v
            for k, v in item("b-1", START).items()
            if k not in ("last_mode", "home_last_power_w", "oem_raw_data", "last_is_online")
        }
    ],
    "other offsets and naive times": [
        item("b-1", "2026-07-01T14:00:00+02:00"),
        item("b-2", "2026-07-01T12:00:00"),
        item("b-3", "2026-07-01T12:00:00.123456Z"),
    ],
    "mode in lower case with spaces": [item("b-1", START, last_mode="  self_consumption ")],
    "whole numbers": [item("b-1", START, duration_s=300, battery_last_stored_energy_wh=10)],
    "empty": [],
}


@pytest.mark.parametrize("items", VALID_BATCHES.values(), ids=VALID_BATCHES.keys())
def test_a_valid_batch_gives_the_same_columns_either_way(items: list[Any]) -> None:
    body = {"telemetry": items}
    fast = item_columns(json.dumps(body).encode())
    assert fast is not None
    same_values(fast, per_item_columns(body))


REFUSED_IN_ONE_PASS = {
    "a bad item": [item("b-1", START), item("b-2", START, duration_s=0)],
    "offline with a measurement": [
        offline_item("b-1", START) | {"battery_last_power_charge_w": 1.0}
    ],
    "online without a required field": [
        item("b-1", START, battery_last_state_of_charge_percentage=None)
    ],
    "online (null) without a required field": [
        item("b-1", START, last_is_online=None, battery_total_energy_charge_wh=None)
    ],
    "a time with no UTC form": [item("b-1", "0001-01-01T00:00:00+01:00")],
    "an item that is not an object": [item("b-1", START), "not an object"],
}


@pytest.mark.parametrize("items", REFUSED_IN_ONE_PASS.values(), ids=REFUSED_IN_ONE_PASS.keys())
def test_a_batch_with_a_bad_item_goes_item_by_item(items: list[Any]) -> None:
    assert item_columns(json.dumps({"telemetry": items}).encode()) is None


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"telemetry": "items"}'])
def test_a_body_that_is_not_a_batch_goes_the_per_item_way(body: bytes) -> None:
    assert item_columns(body) is None


def test_the_2024_body_goes_the_per_item_way() -> None:
    bare = {k: v for k, v in item("b-1", START).items() if k != "start_time"}
    body = {"telemetry": [bare], "start_time": isoformat_z(START)}
    assert item_columns(json.dumps(body).encode()) is None


def recent() -> datetime:
    now = utc_now().replace(second=0, microsecond=0)
    return now - timedelta(minutes=10 + now.minute % 5)


async def stored(session: AsyncSession) -> dict[Any, TelemetryInterval]:
    session.expunge_all()
    rows = (await session.scalars(sa.select(TelemetryInterval))).all()
    return {row.device_pk: row for row in rows}


class TestStoredTheSameWay:
    """The same items, once all valid (one pass) and once beside a bad item (item by item)."""

    @pytest.mark.parametrize("beside_a_bad_item", [False, True])
    async def test_mixed_online_and_offline_items(
        self,
        client: httpx.AsyncClient,
        fleet: Fleet,
        session: AsyncSession,
        beside_a_bad_item: bool,
    ) -> None:
        start = recent()
        items = [
            item("b-1", start, last_mode="self_consumption", oem_raw_data={"a": [1, "é"]}),
            offline_item("b-2", start),
            item("b-3", isoformat_z(start).replace("Z", "+00:00"), oem_raw_data=None),
        ]
        bad = [item("b-1", start, duration_s=-1)] if beside_a_bad_item else []
        result = await answers(client, fleet.oem, items + bad)
        assert [r["status"] for r in result] == ["OK"] * 3 + ["FAILED"] * len(bad)
        rows = await stored(session)
        b1, b2, b3 = (rows[fleet.devices[d].pk] for d in ("b-1", "b-2", "b-3"))
        assert b1.start_time == b2.start_time == b3.start_time == start
        assert b1.last_mode == "SELF_CONSUMPTION"
        assert b1.oem_raw_data == {"a": [1, "é"]}
        assert b2.last_is_online is False
        assert b2.battery_last_state_of_charge_percentage is None
        assert b3.oem_raw_data is None
        assert b3.battery_last_stored_energy_wh == 6750

    async def test_text_is_stored_as_sent(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        mode = 'a "b", {c} \\ é'
        raw = {"note": 'x"}, [y]', "n": None, "big": 12345678901234567890, "f": 0.1}
        result = await answers(
            client, fleet.oem, [item("b-1", recent(), last_mode=mode, oem_raw_data=raw)]
        )
        assert result[0]["status"] == "OK"
        row = (await stored(session))[fleet.devices["b-1"].pk]
        assert row.last_mode == mode.upper()
        assert row.oem_raw_data == raw

    async def test_each_replaced_item_names_the_one_that_replaced_it(
        self, client: httpx.AsyncClient, fleet: Fleet, session: AsyncSession
    ) -> None:
        start = recent()
        items = [
            item("b-1", start, battery_total_energy_discharge_wh=n, battery_last_power_charge_w=n)
            for n in (1, 2, 3)
        ]
        result = await answers(client, fleet.oem, items)
        assert [r["message"] for r in result] == [
            "replaced by item 1 (same device_id and start_time)",
            "replaced by item 2 (same device_id and start_time)",
            "stored",
        ]
        row = (await stored(session))[fleet.devices["b-1"].pk]
        assert row.battery_total_energy_discharge_wh == 3
