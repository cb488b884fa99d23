"""Event-time units and calendar helpers (UTC), in milliseconds.

>>> is_night(1767225600000), is_weekend(1767225600000)  # 2026-01-01 00:00 UTC, a Thursday
(1.0, 0.0)
"""

from __future__ import annotations

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_THURSDAY_EPOCH_OFFSET = 3  # 1970-01-01 was a Thursday (weekday 3, Monday = 0)


def hour_of_day(ts_ms: int) -> int:
    """Hour of the day, 0..23, in UTC."""
    return (ts_ms // HOUR) % 24


def weekday(ts_ms: int) -> int:
    """Day of the week in UTC, Monday = 0 .. Sunday = 6."""
    return (ts_ms // DAY + _THURSDAY_EPOCH_OFFSET) % 7


def is_night(ts_ms: int) -> float:
    """1.0 when the hour (UTC) is at most 6, else 0.0."""
    return 1.0 if hour_of_day(ts_ms) <= 6 else 0.0


def is_weekend(ts_ms: int) -> float:
    """1.0 on Saturday or Sunday (UTC), else 0.0."""
    return 1.0 if weekday(ts_ms) >= 5 else 0.0
