"""Injected faults: which devices misbehave, and which webhook deliveries fail.

Both are deterministic for a seed: the same devices fail on every run, and a given delivery
attempt fails or not by a hash of (seed, webhook-id, attempt), so a retry may succeed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# At most one per device: they are drawn from consecutive slices of one shuffle.
DEVICE_FAULTS = ("offline", "fault", "late-ack", "no-ack", "duplicate-ack")
DELIVERY_FAULTS = ("webhook-5xx", "webhook-timeout")
FAULT_KINDS = DEVICE_FAULTS + DELIVERY_FAULTS


class FaultSpecError(ValueError):
    pass


def parse_faults(values: Iterable[str]) -> dict[str, float]:
    """`["offline=0.1", "no-ack=0.05"]` -> shares; device shares may add up to 1 at most."""
    shares: dict[str, float] = {}
    for value in values:
        kind, sep, share_text = value.partition("=")
        kind = kind.strip()
        if not sep or kind not in FAULT_KINDS:
            raise FaultSpecError(
                f"bad --fault {value!r}: expected KIND=SHARE, KIND one of {', '.join(FAULT_KINDS)}"
            )
        try:
            share = float(share_text)
        except ValueError:
            raise FaultSpecError(f"bad --fault {value!r}: SHARE must be a number") from None
        if not 0 <= share <= 1:
            raise FaultSpecError(f"bad --fault {value!r}: SHARE must be between 0 and 1")
        shares[kind] = share
    if sum(shares.get(k, 0.0) for k in DEVICE_FAULTS) > 1:
        raise FaultSpecError("device fault shares add up to more than 1")
    return shares


def assign_device_faults(
    device_ids: Sequence[str], shares: Mapping[str, float], *, seed: int
) -> dict[str, str]:
    """device id -> fault, for round(share x N) devices per fault (exact, not sampled)."""
    order = list(range(len(device_ids)))
    random.Random(f"{seed}:faults").shuffle(order)
    assigned: dict[str, str] = {}
    start = 0
    for kind in DEVICE_FAULTS:
        count = round(shares.get(kind, 0.0) * len(device_ids))
        for i in order[start : start + count]:
            assigned[device_ids[i]] = kind
        start += count
    return assigned


def _unit(*parts: object) -> float:
    """A number in [0, 1) fixed by its inputs."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class DeliveryFaults:
    """Decides, per delivery attempt, whether the webhook receiver fails it."""

    shares: Mapping[str, float]
    seed: int = 0
    _attempts: dict[str, int] = field(default_factory=dict)

    def decide(self, webhook_id: str) -> str | None:
        """`"5xx"`, `"timeout"` or None for the next attempt of this delivery."""
        attempt = self._attempts.get(webhook_id, 0) + 1
        self._attempts[webhook_id] = attempt
        u = _unit(self.seed, webhook_id, attempt)
        five_xx = self.shares.get("webhook-5xx", 0.0)
        if u < five_xx:
            return "5xx"
        if u < five_xx + self.shares.get("webhook-timeout", 0.0):
            return "timeout"
        return None

    def forget(self, webhook_id: str) -> None:
        """Drop the attempt count once a delivery succeeded (memory stays bounded)."""
        self._attempts.pop(webhook_id, None)
