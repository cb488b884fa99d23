"""Per-terminal risk with label delay: the terminal's fraud history as known at scoring time.

For a transaction at event time ``t``, a window ``w`` and the label delay ``d``,
look at the terminal's transactions with timestamps in ``(t - d - w, t - d]``:

- ``terminal_tx_count_w`` is how many there are;
- ``terminal_risk_w`` is how many of them carry a fraud label whose own timestamp
  is at most ``t``, divided by that count (0 when there are none).

These are the terminal features of the card-fraud literature (a delay ``d``
stands for the time it takes to learn that a transaction was fraud). A
transaction counts as fraud from its first ``is_fraud: true`` label on.

The state must see transactions and labels in event-time order (labels first on
equal timestamps) for the result not to depend on delivery order; the stream glue
guarantees that, and ``tests/reference.py`` states the same definition in pandas.

>>> state = TerminalState()
>>> add_transaction(state, "t1", ts=0, lateness_ms=0, delay_ms=DAY)
>>> add_fraud_label(state, "t1", tx_ts=0, label_ts=DAY // 2)
True
>>> features = terminal_features(state, t=DAY + 1, delay_ms=DAY)
>>> features["terminal_tx_count_1d"], features["terminal_risk_1d"]
(1, 1.0)
"""

from __future__ import annotations

from bisect import bisect_right

from features.time import DAY
from features.windows import EventWindow

WINDOWS_DAYS = (1, 7, 30)
#: The label delay ``d`` by default: 7 days, as in the literature.
DEFAULT_DELAY_MS = 7 * DAY


class TerminalState:
    """A terminal's transactions by event time and its known frauds (transaction time, label time)."""

    __slots__ = ("transactions", "fraud_tx_ts", "fraud_label_ts", "fraud_event_ids", "newest_ts")

    def __init__(self) -> None:
        self.transactions = EventWindow()
        self.fraud_tx_ts: list[int] = []  # sorted
        self.fraud_label_ts: list[int] = []  # parallel to fraud_tx_ts
        self.fraud_event_ids: list[str] = []  # parallel to fraud_tx_ts
        self.newest_ts = 0

    def to_list(self) -> list:
        return [self.newest_ts, self.transactions.ts, self.fraud_tx_ts, self.fraud_label_ts,
                self.fraud_event_ids]

    @classmethod
    def from_list(cls, data: list) -> TerminalState:
        state = cls()
        state.newest_ts, ts, state.fraud_tx_ts, state.fraud_label_ts, state.fraud_event_ids = data
        state.transactions = EventWindow(ts, [0] * len(ts))
        return state


def _horizon(delay_ms: int, lateness_ms: int) -> int:
    return delay_ms + max(WINDOWS_DAYS) * DAY + lateness_ms


def add_transaction(state: TerminalState, event_id: str, ts: int, lateness_ms: int,
                    delay_ms: int = DEFAULT_DELAY_MS) -> None:
    """Remember a transaction of the terminal and prune what no window can still need."""
    state.transactions.add(ts, 0)
    state.newest_ts = max(state.newest_ts, ts)
    state.transactions.prune(state.newest_ts, _horizon(delay_ms, lateness_ms))
    cut = bisect_right(state.fraud_tx_ts, state.newest_ts - _horizon(delay_ms, lateness_ms))
    if cut:
        del state.fraud_tx_ts[:cut], state.fraud_label_ts[:cut], state.fraud_event_ids[:cut]


def add_fraud_label(state: TerminalState, event_id: str, tx_ts: int, label_ts: int) -> bool:
    """Remember that the terminal's transaction ``event_id`` at ``tx_ts`` was fraud from ``label_ts``.

    Returns False (and changes nothing) for a transaction already known as fraud.
    """
    lo, hi = bisect_right(state.fraud_tx_ts, tx_ts - 1), bisect_right(state.fraud_tx_ts, tx_ts)
    if event_id in state.fraud_event_ids[lo:hi]:
        return False
    state.fraud_tx_ts.insert(hi, tx_ts)
    state.fraud_label_ts.insert(hi, label_ts)
    state.fraud_event_ids.insert(hi, event_id)
    return True


def terminal_features(state: TerminalState, t: int, delay_ms: int = DEFAULT_DELAY_MS) -> dict[str, float]:
    """Every terminal feature for a transaction at ``t``."""
    end = t - delay_ms
    features: dict[str, float] = {}
    for days in WINDOWS_DAYS:
        width = days * DAY
        count = state.transactions.count(end, width)
        lo, hi = bisect_right(state.fraud_tx_ts, end - width), bisect_right(state.fraud_tx_ts, end)
        frauds = sum(1 for label_ts in state.fraud_label_ts[lo:hi] if label_ts <= t)
        features[f"terminal_tx_count_{days}d"] = count
        features[f"terminal_risk_{days}d"] = frauds / count if count else 0.0
    return features

