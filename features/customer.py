"""Per-customer state and the transaction features computed from it.

State is updated with the current transaction *before* features are read, so
every window ``(t - w, t]`` includes the transaction being scored.

>>> from stream.events import Transaction
>>> state = CustomerState()
>>> for ts, value in [(0, 10.0), (HOUR, 30.0)]:
...     update(state, Transaction("e", ts, "c1", "k1", value))
>>> current = Transaction("e", HOUR, "c1", "k1", 30.0)
>>> tx_count_1d(state, current), avg_amount_1d(state, current), seconds_since_last_tx(state, current)
(2, 20.0, 3600.0)
"""

from __future__ import annotations

import orjson

from features import time
from features.time import DAY, SECOND
from features.windows import EventWindow
from stream.events import Transaction

#: The longest window any customer feature looks back over.
HORIZON_MS = 7 * DAY


class CustomerState:
    """What is remembered about one customer: amounts by event time, bounded by the horizon."""

    __slots__ = ("amounts", "newest_ts")

    def __init__(self, amounts: EventWindow | None = None, newest_ts: int = 0) -> None:
        self.amounts = amounts if amounts is not None else EventWindow()
        self.newest_ts = newest_ts

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.newest_ts, self.amounts.ts, self.amounts.values])

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerState:
        newest_ts, ts, values = orjson.loads(raw)
        return cls(EventWindow(ts, values), newest_ts)


def update(state: CustomerState, tx: Transaction) -> None:
    """Add a transaction to its customer's state and prune what no window needs."""
    state.amounts.add(tx.ts_ms, tx.amount)
    state.newest_ts = max(state.newest_ts, tx.ts_ms)
    state.amounts.prune(state.newest_ts, HORIZON_MS)


def amount(state: CustomerState, tx: Transaction) -> float:
    """The transaction's amount, in its currency."""
    return tx.amount


def tx_count_1d(state: CustomerState, tx: Transaction) -> int:
    """The customer's transactions in ``(t - 1 day, t]``, this one included."""
    return state.amounts.count(tx.ts_ms, DAY)


def tx_count_7d(state: CustomerState, tx: Transaction) -> int:
    """The customer's transactions in ``(t - 7 days, t]``, this one included."""
    return state.amounts.count(tx.ts_ms, 7 * DAY)


def avg_amount_1d(state: CustomerState, tx: Transaction) -> float:
    """Mean amount of the customer's transactions in ``(t - 1 day, t]``."""
    return state.amounts.mean(tx.ts_ms, DAY)


def avg_amount_7d(state: CustomerState, tx: Transaction) -> float:
    """Mean amount of the customer's transactions in ``(t - 7 days, t]``."""
    return state.amounts.mean(tx.ts_ms, 7 * DAY)


def seconds_since_last_tx(state: CustomerState, tx: Transaction) -> float:
    """Seconds since the customer's previous transaction in event time (7 days if none)."""
    previous = state.amounts.previous(tx.ts_ms)
    gap = HORIZON_MS if previous is None else tx.ts_ms - previous
    return gap / SECOND


def is_night(state: CustomerState, tx: Transaction) -> float:
    """1.0 when the transaction happens at hour ≤ 6 (UTC)."""
    return time.is_night(tx.ts_ms)


def is_weekend(state: CustomerState, tx: Transaction) -> float:
    """1.0 when the transaction happens on a Saturday or Sunday (UTC)."""
    return time.is_weekend(tx.ts_ms)
