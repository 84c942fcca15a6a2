"""Setpoints per device: a per-device value capped at each rating, or a total split evenly.

Watts are integers everywhere: Flip's `setpoint_w` is an int, and the assigned setpoints must add
up exactly to the expected total the plan reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridhive.events.planning.types import BatteryMode, DeviceState


@dataclass(frozen=True, slots=True)
class Allocation:
    """Setpoints aligned with the ratings given; `capped[i]` when device i got less than asked."""

    setpoints: list[int]
    capped: list[bool]
    requested_w: int
    expected_w: int


def rating_for(mode: BatteryMode, device: DeviceState) -> int:
    """The device's rated power in the direction of `mode` (0 when unknown or none)."""
    rating = device.power_output_w if mode == "DISCHARGE" else device.power_input_w
    return rating if rating is not None and rating > 0 else 0


def cap_each(setpoint_w: int, ratings: Sequence[int]) -> Allocation:
    """PER_DEVICE: every device gets `setpoint_w`, or its rating when that is lower."""
    setpoints = [rating if rating < setpoint_w else setpoint_w for rating in ratings]
    return Allocation(
        setpoints=setpoints,
        capped=[rating < setpoint_w for rating in ratings],
        requested_w=setpoint_w * len(ratings),
        expected_w=sum(setpoints),
    )


def split_evenly(total_w: int, ratings: Sequence[int], tie_keys: Sequence[str]) -> Allocation:
    """EVEN: split `total_w` over the devices by water-filling, in O(n log n).

    Walking the devices from the smallest rating up, each one whose rating is below the even
    share of what is left takes its rating and the rest is shared again among the others; the
    first one that can take its share ends the walk, and so can every larger one after it. The
    even share is rounded down and the leftover watts go one each to the largest devices
    (`tie_keys`, e.g. device ids, order equal ratings), so the result does not depend on the
    order of the input rows.
    """
    count = len(ratings)
    order = sorted(range(count), key=lambda index: (ratings[index], tie_keys[index]))
    setpoints = [0] * count
    capped = [False] * count
    remaining = total_w
    for position, index in enumerate(order):
        left = count - position
        rating = ratings[index]
        if rating * left > remaining:
            _fill_to_level(order[position:], remaining, setpoints)
            remaining = 0
            break
        setpoints[index] = rating
        # Exactly at the even share is not a cap: the device got all it was asked for.
        capped[index] = rating * left < remaining
        remaining -= rating
    return Allocation(
        setpoints=setpoints,
        capped=capped,
        requested_w=total_w,
        expected_w=total_w - remaining,
    )


def _fill_to_level(indices: Sequence[int], total_w: int, setpoints: list[int]) -> None:
    # Every device here is rated above total_w / len(indices), hence at least level + 1 watts.
    level, leftover = divmod(total_w, len(indices))
    for index in indices:
        setpoints[index] = level
    for index in indices[len(indices) - leftover :]:
        setpoints[index] += 1
