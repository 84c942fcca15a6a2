"""The one clock of gridhive.

Every "now" comes from here so that tests can move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_frozen: datetime | None = None


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (or the frozen test time)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


@contextmanager
def frozen_time(at: datetime) -> Iterator[None]:
    """Freeze `utc_now()` at `at` for the duration of the block (tests, simulations)."""
    global _frozen
    previous = _frozen
    _frozen = ensure_utc(at)
    try:
        yield
    finally:
        _frozen = previous


def advance(by: timedelta) -> None:
    """Move a frozen clock forward; only meaningful inside `frozen_time`."""
    global _frozen
    if _frozen is None:
        raise RuntimeError("advance() needs a frozen clock")
    _frozen = _frozen + by


def ensure_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC and convert an aware one to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat_z(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix, as the wire format requires."""
    return ensure_utc(value).isoformat().replace("+00:00", "Z")
