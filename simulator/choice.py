"""Fast weighted choice from a fixed table of options.

``random.choices`` rebuilds cumulative weights on every call; the simulator
draws millions of times from the same few tables, so it keeps them.

>>> import random
>>> devices = Weighted({"desktop": 3.0, "mobile": 1.0, "tablet": 0.0})
>>> sorted({devices.pick(random.Random(i)) for i in range(50)})
['desktop', 'mobile']
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


class Weighted(Generic[T]):
    """Options with relative weights; ``pick`` returns one with probability ~ weight."""

    def __init__(self, weights: Mapping[T, float]) -> None:
        positive = {option: w for option, w in weights.items() if w > 0}
        if not positive:
            msg = "at least one option needs a positive weight"
            raise ValueError(msg)
        self.options: list[T] = list(positive)
        self._cumulative = list(accumulate(positive.values()))
        self._total = self._cumulative[-1]
        self._last = len(self.options) - 1

    def pick(self, rng: random.Random) -> T:
        """One option, drawn with ``rng``."""
        i = bisect_right(self._cumulative, rng.random() * self._total)
        return self.options[i if i <= self._last else self._last]

    def probability(self, option: T) -> float:
        """The chance ``pick`` returns ``option``."""
        if option not in self.options:
            return 0.0
        i = self.options.index(option)
        low = self._cumulative[i - 1] if i else 0.0
        return (self._cumulative[i] - low) / self._total
