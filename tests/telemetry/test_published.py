"""telemetry.published: the periodic aggregate each program's utility receives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.models import Device
from gridhive.programs.models import SiteGroup
from gridhive.telemetry import published, repository
from gridhive.telemetry.schemas import TelemetryAggregateObject
from gridhive.webhooks.models import OutboundMessage
from tests.factories import Tenant, create_group, create_program
from tests.telemetry.conftest import Fleet, energy_row

NOW = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)


async def set_state(session: AsyncSession, device: Device, **state: Any) -> None:
    await session.execute(sa.update(Device).where(Device.pk == device.pk).values(**state))


def interval(device: Device, start: datetime, seconds: float, **fields: float) -> dict[str, Any]:
    row = energy_row(
        device,
        start,
        charge_wh=fields.pop("charge_wh", 0.0),
        discharge_wh=fields.pop("discharge_wh", 0.0),
    )
    return {
        **row,
        "duration_s": seconds,
        "battery_last_power_charge_w": 0.0,
        "battery_last_power_discharge_w": 0.0,
        **fields,
    }


@pytest.fixture
async def reporting(session: AsyncSession, fleet: Fleet) -> Fleet:
    """Batteries of 13.5 kWh. Window [15:55, 16:00):

    - b-1 (home-1): SOC 80, heard at 15:59; one 300 s interval discharging 1,200 W, 100 Wh.
    - b-2 (home-1): SOC 40, heard at 15:58; two 150 s intervals charging 2,000 W, 50 Wh each.
    - b-3 (home-2): SOC unknown, last heard 15:30 (offline); its 15:50 interval is before the
      window. Groups: zone-a = {home-1}, zone-b = {home-2}.
    """
    b1, b2, b3 = (fleet.devices[d] for d in ("b-1", "b-2", "b-3"))
    start = NOW - FIVE_MINUTES
    await set_state(session, b1, state_of_charge_pct=80, is_online=True, last_seen_at=NOW - 60 * S)
    await set_state(session, b2, state_of_charge_pct=40, is_online=True, last_seen_at=NOW - 120 * S)
    await set_state(session, b3, is_online=True, last_seen_at=NOW - 30 * 60 * S)
    rows = [
        interval(b1, start, 300, battery_last_power_discharge_w=1200, discharge_wh=100),
        interval(b2, start, 150, battery_last_power_charge_w=2000, charge_wh=50),
        interval(b2, start + 150 * S, 150, battery_last_power_charge_w=2000, charge_wh=50),
        interval(b3, start - FIVE_MINUTES, 300, battery_last_power_discharge_w=5000),
    ]
    await repository.upsert_intervals(session, rows)
    for group_id, site_id in (("zone-a", "home-1"), ("zone-b", "home-2")):
        group = await create_group(session, fleet.program, group_id)
        session.add(SiteGroup(group_pk=group.pk, site_pk=fleet.sites[site_id].pk))
    await session.commit()
    return fleet


S = timedelta(seconds=1)


async def messages(session: AsyncSession) -> list[OutboundMessage]:
    stmt = (
        sa.select(OutboundMessage)
        .where(OutboundMessage.event_type == "telemetry.published")
        .order_by(OutboundMessage.created_at)
    )
    return list((await session.scalars(stmt)).all())


def figures(**values: Any) -> dict[str, Any]:
    return {
        "devices_enrolled": 0,
        "devices_reporting": 0,
        "devices_online": 0,
        "state_of_charge_percentage_mean": None,
        "stored_energy_kwh": 0.0,
        "stored_energy_kwh_mean": None,
        "capacity_kwh": 0.0,
        "battery_power_charge_w": 0.0,
        "battery_power_discharge_w": 0.0,
        "battery_power_net_w": 0.0,
        "energy_charged_kwh": 0.0,
        "energy_discharged_kwh": 0.0,
        **values,
    }


HOME_1 = figures(
    devices_enrolled=2,
    devices_reporting=2,
    devices_online=2,
    state_of_charge_percentage_mean=60.0,  # (80 + 40) / 2
    stored_energy_kwh=16.2,  # 13.5 x 0.8 + 13.5 x 0.4
    stored_energy_kwh_mean=8.1,
    capacity_kwh=27.0,
    battery_power_charge_w=2000.0,  # 2 x 150 s x 2,000 W / 300 s
    battery_power_discharge_w=1200.0,  # 300 s x 1,200 W / 300 s
    battery_power_net_w=-800.0,
    energy_charged_kwh=0.1,
    energy_discharged_kwh=0.1,
)


class TestPublish:
    async def test_the_utility_gets_the_program_and_group_figures_of_the_window(
        self, session: AsyncSession, reporting: Fleet, other_utility: Tenant
    ) -> None:
        # A program without an ACTIVE enrollment gets nothing.
        await create_program(session, other_utility)
        assert await published.publish(session, now=NOW, interval=FIVE_MINUTES) == 1
        [message] = await messages(session)
        assert message.org_id == reporting.utility.org.id
        assert message.object_type == "telemetry_aggregate"
        assert message.subject_id == str(reporting.program.id)
        assert message.payload == {
            "object_type": "telemetry_aggregate",
            "id": f"{reporting.program.id}:2026-07-15T15:55:00Z",
            "program_id": str(reporting.program.id),
            "window_start": "2026-07-15T15:55:00Z",
            "window_end": "2026-07-15T16:00:00Z",
            "published_at": "2026-07-15T16:00:00Z",
            "totals": {
                **HOME_1,
                "devices_enrolled": 3,
                "capacity_kwh": 40.5,
                "stored_energy_kwh_mean": 8.1,
            },
            "groups": [
                {**HOME_1, "group_id": "zone-a", "name": "Zone zone-a"},
                {
                    **figures(devices_enrolled=1, capacity_kwh=13.5),
                    "group_id": "zone-b",
                    "name": "Zone zone-b",
                },
            ],
        }
        # The documented schema describes what is sent.
        TelemetryAggregateObject.model_validate(message.payload)

    async def test_a_window_is_published_once(
        self, session: AsyncSession, reporting: Fleet
    ) -> None:
        assert await published.publish(session, now=NOW, interval=FIVE_MINUTES) == 1
        assert await published.publish(session, now=NOW, interval=FIVE_MINUTES) == 0
        assert len(await messages(session)) == 1
        later = NOW + FIVE_MINUTES
        assert await published.publish(session, now=later, interval=FIVE_MINUTES) == 1
        second = (await messages(session))[1].payload
        assert second["window_start"] == "2026-07-15T16:00:00Z"
        # Nobody reported in the new window; SOC is still the latest known.
        assert second["totals"]["devices_reporting"] == 0
        assert second["totals"]["battery_power_net_w"] == 0.0
        assert second["totals"]["state_of_charge_percentage_mean"] == 60.0

    async def test_old_publication_keys_are_forgotten_and_recent_ones_kept(
        self, session: AsyncSession, reporting: Fleet
    ) -> None:
        await published.publish(session, now=NOW, interval=FIVE_MINUTES)
        await published.publish(session, now=NOW + FIVE_MINUTES, interval=FIVE_MINUTES)
        # Only the first window (15:55) started before 16:00.
        assert await published.forget_before(session, before=NOW) == 1
        # The kept key still stops a second message for its window.
        assert await published.publish(session, now=NOW + FIVE_MINUTES, interval=FIVE_MINUTES) == 0

    async def test_nothing_is_sent_without_active_enrollments(
        self, session: AsyncSession, utility: Tenant
    ) -> None:
        await create_program(session, utility)
        assert await published.publish(session, now=NOW, interval=FIVE_MINUTES) == 0
        assert await messages(session) == []
