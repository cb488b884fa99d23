"""Event time as integer epoch milliseconds, and its ISO-8601 text form.

The simulator computes in integer milliseconds (fast, exact, no timezone
mistakes) and only formats ``ts`` when an event leaves it.

>>> format_ts(1767261600123)
'2026-01-01T10:00:00.123Z'
>>> parse_ts('2026-01-01T10:00:00.123Z')
1767261600123
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


@lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return (EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")


def format_ts(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``; fixed width, so text order is time order."""
    day, rest = divmod(ts_ms, DAY)
    hour, rest = divmod(rest, HOUR)
    minute, rest = divmod(rest, MINUTE)
    second, milli = divmod(rest, SECOND)
    return f"{_day_prefix(day)}{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def parse_ts(text: str) -> int:
    """Epoch milliseconds of a ``ts`` written by :func:`format_ts` (or any aware ISO-8601)."""
    return to_ms(datetime.fromisoformat(text))
