"""Sliding windows over event time, per key: the maths behind every windowed feature.

A window ``(t - w, t]`` ends at the current event and includes it. Entries are kept
sorted by event time, so an out-of-order event lands in its place; entries older
than the longest window (the *horizon*) behind the newest event are pruned, which
bounds the state of every key.

Values are integers (amounts in thousandths of a currency unit), and the window
keeps running prefix sums of them and of their squares: a window's count, sum and
sum of squares are two binary searches and two subtractions, exact whatever the
order of arrival, and an in-order event is an O(1) append.

>>> window = EventWindow()
>>> for ts, value in [(1_000, 10), (5_000, 20), (3_000, 30)]:
...     index = window.add(ts, value)
>>> window.count(5_000, 3_000), window.total(5_000, 3_000), window.total_sq(5_000, 3_000)
(2, 50, 1300)
>>> window.prune(newest=5_000, horizon=3_000), len(window)
(1, 2)
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate


class EventWindow:
    """Timestamped integer values of one key, sorted by event time, with prefix sums."""

    __slots__ = ("ts", "values", "prefix", "prefix_sq")

    def __init__(self, ts: list[int] | None = None, values: list[int] | None = None) -> None:
        self.ts: list[int] = ts if ts is not None else []
        self.values: list[int] = values if values is not None else []
        self._rebuild(0)

    def __len__(self) -> int:
        return len(self.ts)

    def _rebuild(self, start: int) -> None:
        """Recompute the prefix sums from entry ``start`` on (after an out-of-order insert)."""
        if start == 0:
            self.prefix = [0, *accumulate(self.values)]
            self.prefix_sq = [0, *accumulate(v * v for v in self.values)]
            return
        del self.prefix[start + 1:], self.prefix_sq[start + 1:]
        for value in self.values[start:]:
            self.prefix.append(self.prefix[-1] + value)
            self.prefix_sq.append(self.prefix_sq[-1] + value * value)

    def add(self, ts: int, value: int = 0) -> int:
        """Insert a value at its event time (after equal timestamps); return its index."""
        if not self.ts or ts >= self.ts[-1]:
            self.ts.append(ts)
            self.values.append(value)
            self.prefix.append(self.prefix[-1] + value)
            self.prefix_sq.append(self.prefix_sq[-1] + value * value)
            return len(self.ts) - 1
        index = bisect_right(self.ts, ts)
        self.ts.insert(index, ts)
        self.values.insert(index, value)
        self._rebuild(index)
        return index

    def span(self, end: int, width: int) -> tuple[int, int]:
        """Indexes ``lo, hi`` of the entries with ``end - width < ts <= end``."""
        return bisect_right(self.ts, end - width), bisect_right(self.ts, end)

    def count(self, end: int, width: int) -> int:
        """Number of entries in ``(end - width, end]``."""
        lo, hi = self.span(end, width)
        return hi - lo

    def total(self, end: int, width: int) -> int:
        """Sum of the values in ``(end - width, end]``."""
        lo, hi = self.span(end, width)
        return self.prefix[hi] - self.prefix[lo]

    def total_sq(self, end: int, width: int) -> int:
        """Sum of the squared values in ``(end - width, end]``."""
        lo, hi = self.span(end, width)
        return self.prefix_sq[hi] - self.prefix_sq[lo]

    def previous(self, ts: int) -> int | None:
        """Event time of the latest entry strictly before ``ts``, if any."""
        index = bisect_right(self.ts, ts - 1)
        return self.ts[index - 1] if index else None

    def prune(self, newest: int, horizon: int) -> int:
        """Drop entries that no window ending at or after ``newest - horizon`` needs; return how many."""
        cut = bisect_right(self.ts, newest - horizon)
        if cut:
            del self.ts[:cut], self.values[:cut], self.prefix[:cut], self.prefix_sq[:cut]
        return cut
