"""Daily and weekly activity rhythms, and event times drawn from them.

People browse in office hours and pay by day, rarely at night; a rhythm is the
relative activity for each of the 168 hours of a week (UTC), scaled to mean 1,
so a rate "per day" stays the average rate. Times are drawn by thinning a
Poisson process at the peak rate.

>>> import random
>>> t = NIGHT.next_time(random.Random(1), 0, per_day=5.0)
>>> (t // HOUR) % 24 < 5
True
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from simulator.clock import DAY, HOUR

_MONDAY_OFFSET_HOURS = 72  # 1970-01-01 was a Thursday, three days after a Monday


def hour_of_week(ts_ms: int) -> int:
    """Hours since Monday 00:00 UTC, 0..167.

    >>> hour_of_week(1767225600000)  # 2026-01-01 00:00 UTC, a Thursday
    72
    """
    return (ts_ms // HOUR + _MONDAY_OFFSET_HOURS) % 168


class Rhythm:
    """Relative activity per hour of the week, with mean 1."""

    def __init__(self, hourly: Sequence[float], weekend: float = 1.0) -> None:
        raw = [h * (weekend if day >= 5 else 1.0) for day in range(7) for h in hourly]
        mean = sum(raw) / len(raw)
        self.weights = [w / mean for w in raw]
        self.peak = max(self.weights)

    def next_time(self, rng: random.Random, after_ms: int, per_day: float) -> int:
        """The next event time after ``after_ms`` for ``per_day`` events a day on average."""
        rate = per_day * self.peak / DAY
        weights, peak = self.weights, self.peak
        t = float(after_ms)
        while True:
            t += rng.expovariate(rate)
            if rng.random() * peak < weights[(int(t) // HOUR + _MONDAY_OFFSET_HOURS) % 168]:
                return int(t) + 1


#: A business website: office hours, quiet weekends.
WEB = Rhythm(
    [0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.8, 1.3, 1.6, 1.7, 1.6,
     1.4, 1.5, 1.6, 1.6, 1.4, 1.1, 0.9, 0.8, 0.7, 0.6, 0.4, 0.25],
    weekend=0.5,
)  # fmt: skip
#: Card payments: daytime and evening peaks, few at night.
PAYMENTS = Rhythm(
    [0.1, 0.06, 0.04, 0.04, 0.05, 0.1, 0.3, 0.7, 1.0, 1.2, 1.3, 1.5,
     1.7, 1.5, 1.3, 1.3, 1.4, 1.6, 1.7, 1.5, 1.1, 0.7, 0.4, 0.2],
    weekend=0.9,
)  # fmt: skip
#: Fraudsters testing cards while the owner sleeps (00:00-05:00).
NIGHT = Rhythm([1.0] * 5 + [0.0] * 19)
#: The same fraudsters after drift, hiding in daytime traffic (10:00-17:00).
DAYTIME = Rhythm([0.0] * 10 + [1.0] * 7 + [0.0] * 7)
