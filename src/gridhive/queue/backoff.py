"""Retry schedules: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import timedelta

# Waits after the 1st, 2nd, ... failed attempt: roughly x4-x6 each step, capped at 4 h, about
# 7.7 h in all (plus jitter). Nine attempts in all; after the ninth failure the row is dead.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1


def retry_delay(
    failed_attempts: int,
    *,
    schedule: Sequence[timedelta] = RETRY_SCHEDULE,
    jitter: float = 0.1,
    rng: Callable[[], float] = random.random,
) -> timedelta | None:
    """How long to wait after `failed_attempts` failures, or None when the schedule is used up.

    Jitter spreads each wait uniformly over ±`jitter` of it, so that rows which failed together
    (an endpoint that went down under a burst) do not all come back at the same instant.
    """
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    base = schedule[failed_attempts - 1]
    factor = 1 + jitter * (2 * rng() - 1)
    return base * factor
