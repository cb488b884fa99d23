"""Sliding windows over event time, per key: the maths behind every windowed feature.

A window ``(t - w, t]`` ends at the current event and includes it. Entries are kept
sorted by event time, so an out-of-order event lands in its place; entries older
than the longest window (the *horizon*) behind the newest event are pruned, which
bounds the state of every key.

>>> window = EventWindow()
>>> for ts, amount in [(1_000, 10.0), (5_000, 20.0), (3_000, 30.0)]:
...     window.add(ts, amount)
>>> window.count(5_000, 3_000), window.total(5_000, 3_000)
(2, 50.0)
>>> window.prune(newest=5_000, horizon=3_000); len(window)
2
"""

from __future__ import annotations

from bisect import bisect_right


class EventWindow:
    """Timestamped values of one key, sorted by event time (milliseconds)."""

    __slots__ = ("ts", "values")

    def __init__(self, ts: list[int] | None = None, values: list[float] | None = None) -> None:
        self.ts: list[int] = ts if ts is not None else []
        self.values: list[float] = values if values is not None else []

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, ts: int, value: float) -> None:
        """Insert a value at its event time; equal timestamps keep arrival order."""
        if not self.ts or ts >= self.ts[-1]:
            self.ts.append(ts)
            self.values.append(value)
            return
        index = bisect_right(self.ts, ts)
        self.ts.insert(index, ts)
        self.values.insert(index, value)

    def span(self, end: int, width: int) -> tuple[int, int]:
        """Indexes of the entries with ``end - width < ts <= end``."""
        return bisect_right(self.ts, end - width), bisect_right(self.ts, end)

    def count(self, end: int, width: int) -> int:
        """Number of entries in ``(end - width, end]``."""
        lo, hi = self.span(end, width)
        return hi - lo

    def total(self, end: int, width: int) -> float:
        """Sum of the values in ``(end - width, end]``."""
        lo, hi = self.span(end, width)
        return sum(self.values[lo:hi])

    def mean(self, end: int, width: int) -> float:
        """Mean of the values in ``(end - width, end]``; 0 when the window is empty."""
        lo, hi = self.span(end, width)
        return sum(self.values[lo:hi]) / (hi - lo) if hi > lo else 0.0

    def previous(self, ts: int) -> int | None:
        """Event time of the latest entry strictly before ``ts``, if any."""
        index = bisect_right(self.ts, ts - 1)
        return self.ts[index - 1] if index else None

    def prune(self, newest: int, horizon: int) -> None:
        """Drop entries that no window ending at or after ``newest`` can contain."""
        cut = bisect_right(self.ts, newest - horizon)
        if cut:
            del self.ts[:cut]
            del self.values[:cut]


__all__ = ["EventWindow"]
