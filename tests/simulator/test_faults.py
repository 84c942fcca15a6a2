"""Fault injection: parsed strictly, assigned deterministically per seed."""

from __future__ import annotations

from collections import Counter

import pytest

from gridhive.simulator.faults import (
    DeliveryFaults,
    FaultSpecError,
    assign_device_faults,
    parse_faults,
)

DEVICES = [f"battery-{i:03d}" for i in range(200)]
SHARES = {"offline": 0.1, "fault": 0.05, "late-ack": 0.05, "no-ack": 0.05, "duplicate-ack": 0.1}


class TestParse:
    def test_kind_equals_share(self) -> None:
        assert parse_faults(["offline=0.1", "webhook-5xx=0.5"]) == {
            "offline": 0.1,
            "webhook-5xx": 0.5,
        }

    @pytest.mark.parametrize(
        "value", ["offline", "sleepy=0.1", "offline=lots", "offline=1.5", "no-ack=-0.1"]
    )
    def test_bad_specs_are_refused_with_the_reason(self, value: str) -> None:
        with pytest.raises(FaultSpecError, match="bad --fault"):
            parse_faults([value])

    def test_device_shares_may_not_exceed_the_fleet(self) -> None:
        with pytest.raises(FaultSpecError, match="more than 1"):
            parse_faults(["offline=0.6", "fault=0.5"])


class TestDeviceFaults:
    def test_the_same_seed_picks_the_same_devices(self) -> None:
        first = assign_device_faults(DEVICES, SHARES, seed=42)
        assert assign_device_faults(DEVICES, SHARES, seed=42) == first
        assert assign_device_faults(DEVICES, SHARES, seed=43) != first

    def test_each_share_is_exact_and_a_device_has_one_fault_at_most(self) -> None:
        assigned = assign_device_faults(DEVICES, SHARES, seed=1)
        assert Counter(assigned.values()) == {
            "offline": 20,
            "fault": 10,
            "late-ack": 10,
            "no-ack": 10,
            "duplicate-ack": 20,
        }

    def test_no_faults_means_no_faulty_device(self) -> None:
        assert assign_device_faults(DEVICES, {}, seed=1) == {}


class TestDeliveryFaults:
    def test_attempts_fail_deterministically_and_a_retry_can_succeed(self) -> None:
        def outcomes(seed: int) -> list[str | None]:
            faults = DeliveryFaults({"webhook-5xx": 0.3, "webhook-timeout": 0.2}, seed)
            return [faults.decide(f"msg-{i}") for i in range(1000)]

        first = outcomes(5)
        assert first == outcomes(5)
        counts = Counter(first)
        assert 250 < counts["5xx"] < 350
        assert 150 < counts["timeout"] < 250
        faults = DeliveryFaults({"webhook-5xx": 0.5}, 5)
        retries = [faults.decide("msg-x") for _ in range(20)]
        assert None in retries  # the same message eventually gets through
