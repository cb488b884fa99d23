"""Unique, readable string ids: a prefix per kind and a counter.

Counters (not random UUIDs) make uniqueness certain and keep runs with the same
seed byte-identical.

>>> web = IdMaker("w")
>>> web(), web()
('w000000001', 'w000000002')
"""

from __future__ import annotations

from itertools import count


class IdMaker:
    """Makes ``prefix`` + a zero-padded counter, starting at 1."""

    def __init__(self, prefix: str, width: int = 9) -> None:
        self._format = f"{prefix}{{:0{width}d}}".format
        self._count = count(1)

    def __call__(self) -> str:
        return self._format(next(self._count))
