"""Victims (terminals or cards) compromised at a steady rate, each for a window of days.

Compromises come about every ``1 / per_day`` days (jittered), so fraud volume
is steady rather than lumpy. The schedule starts one window *before* the
stream, as if fraud had been going on already: the fraud rate is stationary
from the first event instead of ramping up over the first weeks.

>>> import random
>>> day = 86_400_000
>>> victims = Compromises(random.Random(0), 0, per_day=1.0, window_ms=2 * day, pick=lambda r: "t1")
>>> victims.advance(3 * day)
>>> victims.is_active("t1", 3 * day), victims.is_active("t2", 3 * day)
(True, False)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from simulator.clock import DAY


class Compromises:
    """Which victims are compromised at a given event time."""

    def __init__(
        self,
        rng: random.Random,
        start_ms: int,
        per_day: float,
        window_ms: int,
        pick: Callable[[random.Random], str],
    ) -> None:
        self._rng = rng
        self._interval = DAY / per_day if per_day > 0 else math.inf
        self._window = window_ms
        self._pick = pick
        phase = rng.random() * self._interval if per_day > 0 else math.inf
        self._next = start_ms - window_ms + phase
        self._until: dict[str, int] = {}

    def advance(self, now_ms: int) -> None:
        """Make every compromise due by ``now_ms`` happen."""
        while self._next <= now_ms:
            at = int(self._next)
            self._until = {v: end for v, end in self._until.items() if end > at}
            victim = self._pick(self._rng)
            self._until[victim] = max(self._until.get(victim, 0), at + self._window)
            self._next += self._interval * self._rng.uniform(0.5, 1.5)

    def is_active(self, victim: str, now_ms: int) -> bool:
        """Whether ``victim`` is compromised at ``now_ms`` (call :meth:`advance` first)."""
        end = self._until.get(victim)
        return end is not None and end > now_ms

    def active(self, now_ms: int) -> list[str]:
        """Every victim compromised at ``now_ms``."""
        return [v for v, end in self._until.items() if end > now_ms]
