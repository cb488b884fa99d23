"""Late arrivals: some input events are emitted after events with a later ``ts``.

Real producers buffer, retry and lose connectivity, so consumers see events
out of event-time order. A chosen share of input events is held back for up
to ``max_lateness_ms`` of event time: an event held until ``ts + delay`` is
emitted just before the first event at or after that time. So a late event is
never more than ``max_lateness_ms`` behind the largest ``ts`` emitted before it.

>>> import random
>>> items = [(t, {"topic": "web-events", "t": t}, None) for t in range(0, 50, 10)]
>>> late = hold_back(iter(items), random.Random(3), 0.5, 25, ("web-events",))
>>> [item[0] for item in late]
[0, 10, 30, 20, 40]
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Collection, Iterator
from itertools import count

Item = tuple[int, dict, str | None]


def hold_back(
    stream: Iterator[Item],
    rng: random.Random,
    fraction: float,
    max_lateness_ms: int,
    topics: Collection[str],
) -> Iterator[Item]:
    """Delay ``fraction`` of the events of ``topics`` by up to ``max_lateness_ms``."""
    if fraction <= 0 or max_lateness_ms < 1:
        yield from stream
        return
    held: list[tuple[int, int, Item]] = []
    seq = count()
    for item in stream:
        ts_ms = item[0]
        while held and held[0][0] <= ts_ms:
            yield heapq.heappop(held)[2]
        if item[1]["topic"] in topics and rng.random() < fraction:
            release = ts_ms + rng.randint(1, max_lateness_ms)
            heapq.heappush(held, (release, next(seq), item))
        else:
            yield item
    while held:  # a finite stream ended: what was held back comes last
        yield heapq.heappop(held)[2]
