"""The retry schedule: capped exponential backoff with jitter, about 8 hours in all."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from gridhive.queue.backoff import MAX_ATTEMPTS, RETRY_SCHEDULE, retry_delay


def test_the_schedule_grows_then_caps_and_spans_about_eight_hours() -> None:
    delays = [retry_delay(n, jitter=0) for n in range(1, MAX_ATTEMPTS)]
    assert delays == list(RETRY_SCHEDULE)
    assert delays[0] == timedelta(seconds=5)
    assert delays[-1] == timedelta(hours=4)
    assert all(a < b for a, b in pairwise(delays))
    total = sum(RETRY_SCHEDULE, timedelta())
    assert timedelta(hours=7) < total < timedelta(hours=9)
    assert MAX_ATTEMPTS == 9


def test_after_the_last_attempt_there_is_no_retry() -> None:
    assert retry_delay(MAX_ATTEMPTS) is None
    assert retry_delay(0) is None


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.9), (0.5, 1.0), (1.0, 1.1)])
def test_jitter_spreads_each_wait_by_ten_percent(draw: float, factor: float) -> None:
    delay = retry_delay(3, jitter=0.1, rng=lambda: draw)
    assert delay == timedelta(minutes=2) * factor


def test_jittered_waits_differ() -> None:
    waits = {retry_delay(5) for _ in range(20)}
    assert len(waits) > 1
    assert all(
        w is not None and abs(w - timedelta(minutes=30)) <= timedelta(minutes=3) for w in waits
    )
