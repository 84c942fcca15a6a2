from __future__ import annotations

from typing import Any

import pytest

from gridhive.programs.models import Program
from gridhive.programs.schemas import ProgramCreate, ProgramEligibility
from gridhive.programs.service import offer_problem


def program(**fields: Any) -> Program:
    data = ProgramCreate.model_validate({"name": "P", **fields})
    return Program(**data.model_dump(mode="json"))


def battery_at(**fields: Any) -> ProgramEligibility:
    return ProgramEligibility(device_type="BATTERY", **fields)


class TestOfferProblem:
    def test_program_open_everywhere_is_offered_without_a_location(self) -> None:
        assert offer_problem(program(), battery_at()) is None

    @pytest.mark.parametrize(
        ("fields", "query", "problem"),
        [
            ({"participation_months": []}, battery_at(), "no participation months"),
            ({"eligible_device_types": ["EV_CHARGER"]}, battery_at(), "not BATTERY"),
            ({"state_codes": ["TX"]}, battery_at(state_code="CA"), "location"),
            ({"zip_codes": ["94110"]}, battery_at(), "location"),
            ({}, battery_at(zip_code="88802"), "location"),
            (
                {"minimum_battery_capacity_wh": 10_000},
                battery_at(capacity_wh=9_999, power_w=5_000),
                "at least 10000 Wh of battery capacity; the batteries total 9999",
            ),
            (
                {"minimum_battery_power_w": 5_000},
                battery_at(capacity_wh=9_999, power_w=0),
                "at least 5000 W of battery power; the batteries total 0",
            ),
        ],
    )
    def test_says_why_a_program_is_not_offered(
        self, fields: dict[str, Any], query: ProgramEligibility, problem: str
    ) -> None:
        reason = offer_problem(program(**fields), query)
        assert reason is not None
        assert problem in reason

    def test_ratings_not_judged_when_unknown(self) -> None:
        needy = program(minimum_battery_capacity_wh=10_000, minimum_battery_power_w=5_000)
        assert offer_problem(needy, battery_at()) is None

    def test_test_program_matches_sandbox_zip_outside_its_territory(self) -> None:
        assert (
            offer_problem(program(is_test=True, zip_codes=["94110"]), battery_at(zip_code="88800"))
            is None
        )
