"""Per-terminal risk with label delay: the terminal's fraud history as known at scoring time.

For a transaction at event time ``t``, a window ``w`` and the label delay ``d``,
look at the terminal's transactions with timestamps in ``(t - d - w, t - d]``:

- ``terminal_tx_count_w`` is how many there are;
- ``terminal_risk_w`` is how many of them carry a fraud label whose own timestamp
  is at most ``t``, divided by that count (0 when there are none).

These are the terminal features of the card-fraud literature (a delay ``d``
stands for the time it takes to learn that a transaction was fraud). A
transaction counts as fraud from its earliest ``is_fraud: true`` label on.

:class:`TerminalHistory` keeps every terminal's transactions and frauds with
their times and answers for any ``t``: the answer depends only on *what* it was
told, never on the order it was told in. So the stream glue only has to make
sure everything up to ``t`` has been read before it asks (``stream/terminal_view.py``);
``tests/reference.py`` states the same definition in pandas.

>>> history = TerminalHistory(delay_ms=DAY)
>>> history.add_fraud_label("t1", label_ts=DAY // 2)  # before its transaction: it waits
False
>>> history.add_transaction("t1", "k1", ts=0)
True
>>> features = history.features("k1", t=DAY + 1)
>>> features["terminal_tx_count_1d"], features["terminal_risk_1d"]
(1, 1.0)
>>> history.features("k1", t=DAY // 4)["terminal_tx_count_1d"]  # the window ends a day earlier
0
"""

from __future__ import annotations

from bisect import bisect_right, insort

from features.time import DAY

WINDOWS_DAYS = (1, 7, 30)
#: The label delay ``d`` by default: 7 days, as in the literature.
DEFAULT_DELAY_MS = 7 * DAY
#: Every terminal feature, in the order :meth:`TerminalHistory.features` gives them.
FEATURE_NAMES = tuple(f"terminal_{kind}_{days}d" for days in WINDOWS_DAYS for kind in ("tx_count", "risk"))


class TerminalState:
    """One terminal's transaction times (sorted) and its frauds (transaction time, label time)."""

    __slots__ = ("tx_ts", "fraud_tx_ts", "fraud_label_ts")

    def __init__(self) -> None:
        self.tx_ts: list[int] = []
        self.fraud_tx_ts: list[int] = []  # sorted
        self.fraud_label_ts: list[int] = []  # parallel to fraud_tx_ts

    def add_fraud(self, tx_ts: int, label_ts: int) -> None:
        index = bisect_right(self.fraud_tx_ts, tx_ts)
        self.fraud_tx_ts.insert(index, tx_ts)
        self.fraud_label_ts.insert(index, label_ts)

    def remove_fraud(self, tx_ts: int, label_ts: int) -> None:
        lo, hi = bisect_right(self.fraud_tx_ts, tx_ts - 1), bisect_right(self.fraud_tx_ts, tx_ts)
        index = lo + self.fraud_label_ts[lo:hi].index(label_ts)
        del self.fraud_tx_ts[index], self.fraud_label_ts[index]

    def prune(self, cut: int) -> None:
        """Forget transactions at or before ``cut``."""
        del self.tx_ts[:bisect_right(self.tx_ts, cut)]
        n = bisect_right(self.fraud_tx_ts, cut)
        del self.fraud_tx_ts[:n], self.fraud_label_ts[:n]


class TerminalHistory:
    """Every terminal's transactions and frauds, each with its time, queried at any event time.

    Transactions are told once each (by event id; a repeat changes nothing), fraud
    labels by the transaction's event id, in any order: a label read before its
    transaction waits for it.
    """

    def __init__(self, delay_ms: int = DEFAULT_DELAY_MS) -> None:
        self.delay_ms = delay_ms
        self.terminals: dict[str, TerminalState] = {}
        #: event id → (terminal, transaction time), for the labels to find their transaction
        self.transactions: dict[str, tuple[str, int]] = {}
        #: event id → earliest fraud label time, for every transaction known as fraud
        self.fraud_label_ts: dict[str, int] = {}
        #: fraud labels read before their transaction: event id → label time
        self.waiting: dict[str, int] = {}

    @property
    def horizon_ms(self) -> int:
        """How far behind the oldest time still asked about a transaction can matter."""
        return self.delay_ms + max(WINDOWS_DAYS) * DAY

    def add_transaction(self, event_id: str, terminal_id: str, ts: int) -> bool:
        """Remember a transaction; False if it was known already."""
        if event_id in self.transactions:
            return False
        self.transactions[event_id] = (terminal_id, ts)
        state = self.terminals.get(terminal_id)
        if state is None:
            state = self.terminals[terminal_id] = TerminalState()
        insort(state.tx_ts, ts)
        label_ts = self.waiting.pop(event_id, None)
        if label_ts is not None:
            self._mark_fraud(event_id, label_ts)
        return True

    def add_fraud_label(self, event_id: str, label_ts: int) -> bool:
        """Note that transaction ``event_id`` was fraud from ``label_ts``; False if it must wait for it."""
        if event_id not in self.transactions:
            self.waiting[event_id] = min(label_ts, self.waiting.get(event_id, label_ts))
            return False
        self._mark_fraud(event_id, label_ts)
        return True

    def _mark_fraud(self, event_id: str, label_ts: int) -> None:
        terminal_id, tx_ts = self.transactions[event_id]
        state = self.terminals[terminal_id]
        known = self.fraud_label_ts.get(event_id)
        if known is not None:
            if known <= label_ts:
                return  # a later label of a known fraud changes nothing
            state.remove_fraud(tx_ts, known)
        self.fraud_label_ts[event_id] = label_ts
        state.add_fraud(tx_ts, label_ts)

    def features(self, terminal_id: str, t: int) -> dict[str, float]:
        """Every terminal feature of a transaction at ``t`` on ``terminal_id``."""
        state = self.terminals.get(terminal_id) or TerminalState()
        end = t - self.delay_ms
        features: dict[str, float] = {}
        for days in WINDOWS_DAYS:
            start = end - days * DAY
            count = bisect_right(state.tx_ts, end) - bisect_right(state.tx_ts, start)
            lo, hi = bisect_right(state.fraud_tx_ts, start), bisect_right(state.fraud_tx_ts, end)
            frauds = sum(1 for label_ts in state.fraud_label_ts[lo:hi] if label_ts <= t)
            features[f"terminal_tx_count_{days}d"] = count
            features[f"terminal_risk_{days}d"] = frauds / count if count else 0.0
        return features

    def prune(self, oldest_t: int) -> int:
        """Forget what no question at or after ``oldest_t`` needs; return how many transactions went."""
        cut = oldest_t - self.horizon_ms
        gone = [event_id for event_id, (_, ts) in self.transactions.items() if ts <= cut]
        for event_id in gone:
            del self.transactions[event_id]
            self.fraud_label_ts.pop(event_id, None)
        for event_id in [e for e, label_ts in self.waiting.items() if label_ts <= cut]:
            del self.waiting[event_id]  # its transaction would be too old to count anyway
        for terminal_id in list(self.terminals):
            state = self.terminals[terminal_id]
            state.prune(cut)
            if not state.tx_ts:
                del self.terminals[terminal_id]
        return len(gone)
