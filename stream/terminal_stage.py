"""The terminal stage, free of Faust: customer features → terminal features with labels in event time.

Transactions arrive keyed by customer; terminal risk needs them by terminal. The
fraud path therefore runs in three stages, each a batch handler here and a thin
agent in :mod:`stream.terminal_agents`:

1. :class:`CustomerStage` (on ``transactions``, by customer) validates, computes the
   customer features in the order the customer's transactions arrived (the order
   their definition depends on), and forwards each transaction with them, keyed by
   terminal, to ``<app id>-transactions-by-terminal``. Invalid ones are dead letters.
2. :class:`TerminalHandler` (on that topic, by terminal) adds the terminal features
   once every fraud label up to the transaction's time has been read
   (:class:`LabelClock`), and sends the transaction, keyed by customer again, to
   ``<app id>-transactions-enriched``.
3. The fraud scorer reads that topic with :data:`FEATURED_TRANSACTIONS`: it only scores.

>>> handler = TerminalHandler("by-terminal", "enriched", delay_ms=DAY, lateness_ms=0)
>>> T0 = 1767225600000
>>> handler.read_label(0, b'{"event_id": "t1", "ts": 1767312000000, "is_fraud": true}') == T0 + DAY
True
>>> batch = [InputRecord(featured_body(FeaturedTransaction(e, ts, "c1", "k1", {})), b"k1", 0, i)
...          for i, (e, ts) in enumerate([("t1", T0), ("t2", T0 + DAY + 1)])]
>>> features = orjson.loads(handler.handle(batch, lambda key: None).outputs[1].value)["features"]
>>> features["terminal_tx_count_1d"], features["terminal_risk_1d"]
(1, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from features.registry import CUSTOMER_FEATURES, FeatureSet
from features.terminal import (
    WINDOWS_DAYS,
    TerminalState,
    add_fraud_label,
    add_transaction,
    has_transaction,
    terminal_features,
)
from features.time import DAY
from stream import topics
from stream.events import InvalidEvent, decode_object
from stream.learning import parse_label
from stream.pipeline import (
    TASKS,
    BatchScorer,
    EntityState,
    InputRecord,
    OutputRecord,
    ScoringTask,
    StateFormatError,
    dead_letter_record,
)

TERMINAL_FEATURES = tuple(f"terminal_{kind}_{days}d" for kind in ("tx_count", "risk")
                          for days in WINDOWS_DAYS)


@dataclass(frozen=True, slots=True)
class FeaturedTransaction:
    """A transaction with the features computed for it so far (internal topics only)."""

    event_id: str
    ts_ms: int
    customer_id: str
    terminal_id: str
    features: dict[str, Any]


def featured_body(tx: FeaturedTransaction) -> bytes:
    return orjson.dumps({"event_id": tx.event_id, "ts": tx.ts_ms, "customer_id": tx.customer_id,
                         "terminal_id": tx.terminal_id, "features": tx.features})


def parse_featured(raw: bytes) -> FeaturedTransaction:
    """A record of an internal transaction topic; :class:`InvalidEvent` if it is not one."""
    obj = decode_object(raw)
    try:
        tx = FeaturedTransaction(obj["event_id"], obj["ts"], obj["customer_id"], obj["terminal_id"],
                                 obj["features"])
    except KeyError as missing:
        detail = f"internal transaction without {missing}"
        raise InvalidEvent("missing_field", detail) from None
    if not (isinstance(tx.ts_ms, int) and isinstance(tx.features, dict)
            and all(isinstance(v, str) for v in (tx.event_id, tx.customer_id, tx.terminal_id))):
        detail = "internal transaction with a field of the wrong type"
        raise InvalidEvent("wrong_type", detail)
    return tx


def _precomputed(name: str) -> Callable[[None, FeaturedTransaction], float | int | str]:
    def feature(state: None, tx: FeaturedTransaction) -> float | int | str:
        return tx.features[name]

    feature.__doc__ = f"``{name}``, as computed upstream (customer or terminal stage)."
    return feature


#: What the fraud scorer reads: every feature arrives computed, so it keeps no state.
FEATURED_TRANSACTIONS = FeatureSet(
    entity="transaction",
    state_type=None,
    update=lambda state, event, lateness_ms: None,
    features={name: _precomputed(name) for name in (*CUSTOMER_FEATURES.features, *TERMINAL_FEATURES)},
    longest_window_ms=0,
)


def scoring_tasks(app_id: str) -> dict[str, ScoringTask]:
    """The worker's scoring tasks: fraud scores the terminal stage's output instead of ``transactions``."""
    fraud = replace(TASKS["fraud"], input_topic=topics.enriched_topic(app_id),
                    parse=parse_featured, features=FEATURED_TRANSACTIONS)
    return {**TASKS, "fraud": fraud}


class CustomerStage(BatchScorer):
    """Stage 1: the fraud task's validation and customer features, forwarded by terminal instead of scored.

    It is the fraud :class:`~stream.pipeline.BatchScorer` (same state, dead letters,
    lateness and replay rules) whose last step sends the features on.
    """

    def __init__(self, to_topic: str, lateness_ms: int) -> None:  # no models: it does not score
        self.task = TASKS["fraud"]
        self.lateness_ms = lateness_ms
        self.newest_ts = 0
        self.to_topic = to_topic

    def _score_one(self, event: Any, state: Any, result: Any, partition: int) -> None:
        values = self.task.features.compute(state, event)
        tx = FeaturedTransaction(event.event_id, event.ts_ms, event.customer_id, event.terminal_id,
                                 values)
        result.outputs.append(OutputRecord(self.to_topic, event.terminal_id.encode(), featured_body(tx)))


class LabelClock:
    """How far the fraud-label stream has been read, in event time, and which partitions are idle.

    Its time is the oldest, over the label topic's partitions, of the newest label
    read: labels of one partition come in time order, so every label at or before
    it has been read. A partition with nothing new for ``wait_s`` of wall-clock time
    while transactions wait for it is *idle* and left out until it yields a record
    (Kafka Streams' ``max.task.idle.ms``).

    >>> clock = LabelClock(wait_s=1.0)
    >>> clock.set_partitions([0, 1])
    >>> clock.observe(0, 50, now=1.0); clock.observe(1, 20, now=0.0)
    >>> clock.time, clock.blocking(30, since=0.0, now=0.5), clock.blocking(30, since=0.0, now=1.5)
    (20, True, False)
    >>> clock.time, clock.idle
    (50, {1})
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.partitions: list[int] = []
        self.newest: dict[int, int] = {}
        self.last_read: dict[int, float] = {}
        self.idle: set[int] = set()
        #: partitions declared idle since the clock was made (each a timeout)
        self.timeouts = 0

    def set_partitions(self, partitions: Iterable[int]) -> None:
        self.partitions = sorted(partitions)

    def observe(self, partition: int, ts_ms: int, now: float) -> None:
        self.newest[partition] = max(self.newest.get(partition, 0), ts_ms)
        self.last_read[partition] = now
        self.idle.discard(partition)

    @property
    def time(self) -> int | float:
        """Every label at or before this event time has been read (idle partitions left out)."""
        live = [self.newest.get(p, 0) for p in self.partitions if p not in self.idle]
        if not self.partitions:
            return 0  # the label topic's partitions are not known yet
        return min(live) if live else float("inf")

    def blocking(self, ts_ms: int, since: float, now: float) -> bool:
        """Whether a transaction at ``ts_ms``, waiting since ``since``, must wait on.

        A partition behind ``ts_ms`` that yielded nothing for ``wait_s`` (counted from
        its last record or the start of the wait, whichever is later) becomes idle.
        """
        if not self.partitions:
            return now - since < self.wait_s
        behind = False
        timed_out = False
        for p in self.partitions:
            if p in self.idle or self.newest.get(p, 0) >= ts_ms:
                continue
            if now - max(self.last_read.get(p, since), since) >= self.wait_s:
                timed_out = True
            else:
                behind = True
        if timed_out:  # every partition quiet that long is idle, not only those behind this batch
            quiet = {p for p in self.partitions if p not in self.idle
                     and now - max(self.last_read.get(p, since), since) >= self.wait_s}
            self.idle |= quiet
            self.timeouts += len(quiet)
        return behind


@dataclass
class TerminalResult:
    """What handling a batch produced: records to send, state to write, and counts for metrics."""

    outputs: list[OutputRecord] = field(default_factory=list)
    state_writes: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    #: records already applied to their terminal's state (replayed after a crash)
    replayed: int = 0
    #: transactions already in their terminal's state, sent again by stage 1 replaying its input
    duplicates: int = 0
    state_resets: int = 0
    #: labels applied after their terminal computed features at or after their time
    late_labels: int = 0


class TerminalHandler:
    """Stage 2: terminal state, fraud labels and terminal features over a batch of by-terminal records.

    Labels come from :meth:`read_label` (every worker reads the whole label topic).
    A label whose transaction this worker has seen is applied to that terminal at
    the next batch; the others wait in ``unmatched`` for their transaction (a label
    may be read before it) until they are older than any window can use. The glue
    calls :meth:`handle` only once the :class:`LabelClock` has reached the batch's
    newest transaction, so every label up to a transaction's time is in its
    terminal's state when its features are computed; later labels sit there too but
    count only from their own time. The result depends on event times only.
    """

    def __init__(self, from_topic: str, to_topic: str, delay_ms: int, lateness_ms: int) -> None:
        self.from_topic = from_topic
        self.to_topic = to_topic
        self.delay_ms = delay_ms
        self.lateness_ms = lateness_ms
        #: fraud labels read and not yet applied: event id → earliest label time
        self.unmatched: dict[str, int] = {}
        self.fresh: list[str] = []
        #: transactions of this worker's terminals: event id → terminal key
        self.index: dict[str, bytes] = {}
        #: the newest transaction time features were computed for (late labels are behind it)
        self.newest_ts = 0
        self._recheck = False

    @property
    def horizon_ms(self) -> int:
        return self.delay_ms + max(WINDOWS_DAYS) * DAY + self.lateness_ms

    def read_label(self, partition: int, raw: bytes | None) -> int | None:
        """Take one record of ``fraud-labels``; return its time (None if invalid: the label router
        dead-letters those)."""
        try:
            label = parse_label("fraud", raw) if raw is not None else None
        except InvalidEvent:
            return None
        if label is None:
            return None
        if label.value:
            known = self.unmatched.get(label.key)
            if known is None or label.ts_ms < known:
                self.unmatched[label.key] = label.ts_ms
                self.fresh.append(label.key)
        return label.ts_ms

    def rebuild_index(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Index the transactions of the terminals now held (after a rebalance, or to prune the index)."""
        self.index = {}
        for key, raw in items:
            try:
                state = EntityState.from_bytes(raw, TerminalState)
            except StateFormatError:
                continue
            for event_id in state.features.event_ids:
                self.index[event_id] = key
        self._recheck = True  # labels read earlier may belong to terminals that just arrived

    def expired(self, items: Iterable[tuple[bytes, bytes]], newest_ts: int) -> list[tuple[bytes, int]]:
        """Terminals (with their partition) idle past the horizon: nothing of theirs is needed any more."""
        doomed = []
        for key, raw in items:
            try:
                state = EntityState.from_bytes(raw, TerminalState)
            except StateFormatError:
                continue
            if state.features.newest_ts <= newest_ts - self.horizon_ms:
                doomed.append((key, state.partition))
        return doomed

    def handle(self, records: Sequence[InputRecord],
               load_state: Callable[[bytes], bytes | None]) -> TerminalResult:
        """Apply the labels read so far, then each transaction in order; emit each with its features."""
        result = TerminalResult()
        states: dict[bytes, EntityState] = {}

        def state_of(key: bytes) -> EntityState:
            if key not in states:
                states[key] = self._load(key, load_state, result)
            return states[key]

        candidates = list(self.unmatched) if self._recheck else self.fresh
        self._recheck, self.fresh = False, []
        for event_id in candidates:
            key = self.index.get(event_id)
            if key is not None and event_id in self.unmatched:
                self._apply_label(state_of(key).features, event_id, result, seen_before=True)
        for record in records:
            try:
                tx = parse_featured(record.value if record.value is not None else b"null")
            except InvalidEvent as error:
                result.invalid.append(error.reason)
                result.outputs.append(dead_letter_record(self.from_topic, record, error))
                continue
            key = tx.terminal_id.encode()
            state = state_of(key)
            self._apply(record, tx, state, result)
            values = {**tx.features, **terminal_features(state.features, tx.ts_ms, self.delay_ms)}
            self.newest_ts = max(self.newest_ts, tx.ts_ms)
            enriched = replace(tx, features=values)
            result.outputs.append(OutputRecord(self.to_topic, tx.customer_id.encode(),
                                               featured_body(enriched)))
        self._prune_unmatched()
        result.state_writes = {key: (s.partition, s.to_bytes()) for key, s in states.items()
                               if s.partition >= 0}  # not a terminal whose state expired
        return result

    def _load(self, key: bytes, load_state: Callable[[bytes], bytes | None],
              result: TerminalResult) -> EntityState:
        raw = load_state(key)
        if raw is not None:
            try:
                return EntityState.from_bytes(raw, TerminalState)
            except StateFormatError:
                result.state_resets += 1
        return EntityState(TerminalState())

    def _apply(self, record: InputRecord, tx: FeaturedTransaction, state: EntityState,
               result: TerminalResult) -> None:
        """Add the transaction to its terminal once, with its label if that was read first."""
        terminal = state.features
        if state.already_applied(record):
            result.replayed += 1
        elif has_transaction(terminal, tx.event_id, tx.ts_ms):
            result.duplicates += 1
        else:
            add_transaction(terminal, tx.event_id, tx.ts_ms, self.lateness_ms, self.delay_ms)
            state.partition, state.offset = record.partition, record.offset
        self.index[tx.event_id] = tx.terminal_id.encode()
        if tx.event_id in self.unmatched:  # its label was read first: never late, nothing used it
            self._apply_label(terminal, tx.event_id, result, seen_before=False)

    def _apply_label(self, terminal: TerminalState, event_id: str, result: TerminalResult,
                     seen_before: bool) -> None:
        """Mark the terminal's transaction as fraud; late if the terminal already computed
        features at or after the label's time without it."""
        label_ts = self.unmatched.pop(event_id)
        try:
            index = terminal.event_ids.index(event_id)  # labels are rare: a scan is fine
        except ValueError:
            return  # the transaction was pruned: no window needs it any more
        tx_ts = terminal.transactions.ts[index]
        applied = add_fraud_label(terminal, event_id, tx_ts, label_ts)
        if applied and seen_before and label_ts <= terminal.newest_ts:
            result.late_labels += 1

    def _prune_unmatched(self) -> None:
        cutoff = self.newest_ts - self.horizon_ms
        if self.unmatched and min(self.unmatched.values()) <= cutoff:
            self.unmatched = {e: ts for e, ts in self.unmatched.items() if ts > cutoff}
