"""A heap merge of per-entity event streams into one event-time-ordered stream.

Each visitor, customer and fraudster is a lazy generator of ``(ts_ms, event)``
in time order; the queue holds only the next event of each, plus labels
scheduled for later, so memory stays bounded however long the stream runs.
Ties are broken by insertion order, which keeps the output deterministic.

>>> q = EventQueue()
>>> q.add_stream(iter([(5, {"n": 1}), (9, {"n": 3})]))
>>> q.schedule(7, {"n": 2})
>>> [(ts, e["n"]) for ts, e in q.drain()]
[(5, 1), (7, 2), (9, 3)]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import count

Timed = tuple[int, dict]


class EventQueue:
    """Pending events of many streams, popped in ``(ts_ms, insertion)`` order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, dict, Iterator[Timed] | None]] = []
        self._seq = count()

    def __len__(self) -> int:
        return len(self._heap)

    def add_stream(self, stream: Iterator[Timed]) -> None:
        """Merge a time-ordered stream in; only its next event is held."""
        first = next(stream, None)
        if first is not None:
            heapq.heappush(self._heap, (first[0], next(self._seq), first[1], stream))

    def schedule(self, ts_ms: int, event: dict) -> None:
        """Emit one event at ``ts_ms`` (a label known later than the event it labels)."""
        heapq.heappush(self._heap, (ts_ms, next(self._seq), event, None))

    def drain(self) -> Iterator[Timed]:
        """Pop events in time order until every stream is exhausted (maybe never)."""
        heap, seq = self._heap, self._seq
        while heap:
            ts_ms, _, event, stream = heap[0]
            following = None if stream is None else next(stream, None)
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following[0], next(seq), following[1], stream))
            yield ts_ms, event
