"""The example ids a task's models learned lately, so that a second copy of one is not learned again.

The label join is at-least-once: after a crash between sending training
examples and recording that it did, it replays its uncommitted input and sends
the same examples again, at new offsets of ``training-examples``. Skipping by
offset cannot see those; skipping by ``example_id`` can, if the id is still
remembered.

**The bound: a window of example time, not a count and not the wall clock.**
The clock is the newest ``label_ts_ms`` of any example read so far. Each id is
stamped with that clock when it is learned, and forgotten once the clock has
moved more than ``window_ms`` past its stamp. A copy comes from the join
partition that made the original, replaying after the crash; meanwhile the
other join partitions go on, so the clock moves by the example time that passes
during the outage: seconds to minutes live, more while a backlog is read at
full speed (a minute's outage at 1000 times real time is 17 hours). The default
window (``task_models.DUPLICATE_WINDOW_MS``) is the task's label horizon plus
the join's default grace, the longest a snapshot waits for its label (14 days
and an hour for fraud): far beyond any outage, and the same span of examples
the join already holds as snapshots. Stamping with the clock
rather than with the example's own time (which trails the clock by up to a
horizon when a label comes late) keeps the bound independent of how far one
join partition runs behind another. A copy that comes later still is learned.

**Deterministic.** The clock, the stamps and so what is forgotten are
functions of the sequence of examples only: every worker reads the same
single-partition topic in the same order, so every replica remembers, forgets
and skips the same ids. No wall clock, and no per-worker setting (a replica
with another grace would skip differently).

>>> seen = SeenExamples(window_ms=10)
>>> seen.add("a", 100), seen.add("b", 105)
(True, True)
>>> seen.add("a", 106)  # a copy: skipped
False
>>> seen.add("c", 111), "a" in seen, "b" in seen  # the clock is 11 past a's stamp, 6 past b's
(True, False, True)
"""

from __future__ import annotations

from collections import deque


class SeenExamples:
    """Example ids learned within the last ``window_ms`` of example time (see the module)."""

    def __init__(self, window_ms: int) -> None:
        if window_ms < 0:
            msg = f"the window of remembered examples must be >= 0 ms, got {window_ms}"
            raise ValueError(msg)
        self.window_ms = window_ms
        #: the newest example time read (epoch ms), None before the first
        self.clock_ms: int | None = None
        self._stamps: dict[str, int] = {}
        self._order: deque[str] = deque()  # oldest stamp first: stamps never decrease

    def __contains__(self, example_id: object) -> bool:
        return example_id in self._stamps

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, example_id: str, time_ms: int) -> bool:
        """Read an example of time ``time_ms``: True if its id is new (remembered now), False if a copy.

        The clock moves on first, copies included, and ids that fell out of the window are
        forgotten.
        """
        self._advance(time_ms)
        if example_id in self._stamps:
            return False
        self._stamps[example_id] = self.clock_ms
        self._order.append(example_id)
        return True

    def _advance(self, time_ms: int) -> None:
        if self.clock_ms is None or time_ms > self.clock_ms:
            self.clock_ms = time_ms
        oldest_kept = self.clock_ms - self.window_ms
        while self._order and self._stamps[self._order[0]] < oldest_kept:
            del self._stamps[self._order.popleft()]
