"""Per-customer state and the transaction features computed from it.

Every window is ``(t - w, t]`` in event time over the customer's transactions that
reached the engine up to and including the one being scored (it is added to the
state first). Amounts are kept in thousandths of the currency unit as integers,
so windowed sums are exact.

>>> from stream.events import Transaction
>>> state = CustomerState()
>>> for ts, value in [(0, 10.0), (3_600_000, 30.0)]:
...     current = Transaction("e", ts, "c1", f"k{ts}", value)
...     update(state, current, lateness_ms=0)
>>> tx_count_1d(state, current), avg_amount_1d(state, current), seconds_since_last_tx(state, current)
(2, 20.0, 3600.0)
>>> distinct_terminals_24h(state, current), round(amount_zscore_30d(state, current), 6)
(2, 0.707107)
"""

from __future__ import annotations

import math

from features import time
from features.time import DAY, SECOND
from features.windows import EventWindow
from stream.events import Transaction

#: The longest window any customer feature looks back over.
LONGEST_WINDOW_MS = 30 * DAY
#: Amounts are kept as integers in these units of the currency (thousandths).
AMOUNT_SCALE = 1_000


def amount_units(amount: float) -> int:
    """An amount as an integer number of thousandths: exact sums, no float drift."""
    return round(amount * AMOUNT_SCALE)


class CustomerState:
    """What is remembered about one customer: amounts and terminals by event time."""

    __slots__ = ("amounts", "terminals", "newest_ts", "current_index")

    def __init__(self) -> None:
        self.amounts = EventWindow()
        self.terminals: list[str] = []  # parallel to amounts
        self.newest_ts = 0
        self.current_index = 0  # where the transaction being scored sits

    def to_list(self) -> list:
        return [self.newest_ts, self.current_index, self.amounts.ts, self.amounts.values, self.terminals]

    @classmethod
    def from_list(cls, data: list) -> CustomerState:
        state = cls()
        state.newest_ts, state.current_index, ts, values, state.terminals = data
        state.amounts = EventWindow(ts, values)
        return state


def update(state: CustomerState, tx: Transaction, lateness_ms: int) -> None:
    """Add a transaction to its customer's state and prune what no window can still need."""
    index = state.amounts.add(tx.ts_ms, amount_units(tx.amount))
    state.terminals.insert(index, tx.terminal_id)
    state.newest_ts = max(state.newest_ts, tx.ts_ms)
    cut = state.amounts.prune(state.newest_ts, LONGEST_WINDOW_MS + lateness_ms)
    if cut:
        del state.terminals[:cut]
    state.current_index = index - cut


def amount(state: CustomerState, tx: Transaction) -> float:
    """The transaction's amount, in its currency."""
    return tx.amount


def _count(days: int):
    def count(state: CustomerState, tx: Transaction) -> int:
        return state.amounts.count(tx.ts_ms, days * DAY)

    count.__doc__ = f"The customer's transactions in ``(t - {days}d, t]``, this one included."
    return count


def _mean_amount(days: int):
    def mean_amount(state: CustomerState, tx: Transaction) -> float:
        n = state.amounts.count(tx.ts_ms, days * DAY)
        return state.amounts.total(tx.ts_ms, days * DAY) / n / AMOUNT_SCALE if n else 0.0

    mean_amount.__doc__ = f"Mean amount of the customer's transactions in ``(t - {days}d, t]``."
    return mean_amount


tx_count_1d, tx_count_7d, tx_count_30d = _count(1), _count(7), _count(30)
avg_amount_1d, avg_amount_7d, avg_amount_30d = _mean_amount(1), _mean_amount(7), _mean_amount(30)


def amount_zscore_30d(state: CustomerState, tx: Transaction) -> float:
    """(amount − 30-day mean) ÷ 30-day sample standard deviation; 0 with < 2 transactions or no spread."""
    window = 30 * DAY
    n = state.amounts.count(tx.ts_ms, window)
    if n < 2:
        return 0.0
    total, total_sq = state.amounts.total(tx.ts_ms, window), state.amounts.total_sq(tx.ts_ms, window)
    spread = n * total_sq - total * total  # exact: n² × population variance, in units²
    if spread <= 0:
        return 0.0
    std = math.sqrt(spread / (n * (n - 1)))
    return (amount_units(tx.amount) - total / n) / std


def seconds_since_last_tx(state: CustomerState, tx: Transaction) -> float:
    """Seconds since the customer's previous transaction in event time, at most 30 days."""
    index = state.current_index
    if index == 0:
        return LONGEST_WINDOW_MS / SECOND
    return min(tx.ts_ms - state.amounts.ts[index - 1], LONGEST_WINDOW_MS) / SECOND


def distinct_terminals_24h(state: CustomerState, tx: Transaction) -> int:
    """Distinct terminals among the customer's transactions in ``(t - 24h, t]``."""
    lo, hi = state.amounts.span(tx.ts_ms, DAY)
    return len(set(state.terminals[lo:hi]))


def is_night(state: CustomerState, tx: Transaction) -> float:
    """1.0 when the transaction happens at hour ≤ 6 (UTC)."""
    return time.is_night(tx.ts_ms)


def is_weekend(state: CustomerState, tx: Transaction) -> float:
    """1.0 when the transaction happens on a Saturday or Sunday (UTC)."""
    return time.is_weekend(tx.ts_ms)

