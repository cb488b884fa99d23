"""Every worker's own view of every terminal: the fraud task's terminal risk features.

Transactions arrive keyed by customer, but a terminal's risk needs *all* its
transactions and their fraud labels, from every partition. Each worker reads
the whole ``transactions`` and ``fraud-labels`` topics with its own consumer,
outside the consumer group (as the trainer reads ``training-examples``), into a
:class:`~features.terminal.TerminalHistory`. That history answers for any event
time, whatever order it was told things in, so the view only has to know *when*
it has read everything a transaction at ``t`` needs:

- every ``transactions`` partition has reached ``t - d + lateness`` or its end
  (the label delay ``d``, 7 days by default, is the slack);
- every ``fraud-labels`` partition has reached ``t``, or is *caught up*: a fetch
  answered after the batch's transactions were in Kafka found it at its end (every
  label the broker had by then has been read), and it has had nothing new for
  ``terminal_label_wait_s``
  (Kafka Streams' ``max.task.idle.ms``; 0 by default, as there). Each label
  partition is read in order; a label read after transactions at or past its own
  time were scored is counted as late (``scorestream_late_labels_total``) and counts
  from then on.

A wait of a few seconds makes the features independent of labels reaching Kafka up
to that much after transactions of their time, but costs every transaction batch up
to that wait while labels flow (each new label starts it again: with 2 s, p50
event→score latency was 0.5-0.8 s with labels in the benchmark's paced stream).
Without it, the price is usually nothing: the view reads the transactions too, so the
fetch answer that brought it a batch's transactions was answered after they were in
Kafka, and when it found the label partitions at their end, the batch may go on
(:meth:`InputClocks.read_at`). Otherwise (the view has not read them yet) one
fetch answered after the batch came: the view's consumer lets the broker hold a
fetch at most :data:`FETCH_MAX_WAIT_MS` and polls every :data:`CONFIRM_POLL_MS`
while a batch waits.

A transaction batch waits, once, until the view knows its newest transaction
(:meth:`TerminalView.wait_until_known`), as the batch's prepare step: later
transactions wait behind it, web events do not (``stream.batching.Preparations``).

Why a view per worker rather than a repartition by terminal: no partition of it
ever moves on a rebalance, nothing is held in a table, and a restart simply reads
the topics again; the price is that each worker reads every transaction (a
decode, ~3 µs) and holds ``d`` + 30 days of them (about 100 bytes each).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from features.terminal import TerminalHistory
from stream import topics
from stream.events import InvalidEvent, Transaction, parse_transaction
from stream.learning import parse_label

log = logging.getLogger(__name__)

#: How far (event time) the view reads a partition beyond the newest time asked for.
READ_AHEAD_MS = 86_400_000
#: Records the view reads in one step before it lets scoring run.
READ_STEP = 5_000
#: How long the broker may hold the view's fetch that finds nothing new: bounds how long a
#: batch waits for a label partition at its end to be confirmed caught up (aiokafka's: 500 ms).
FETCH_MAX_WAIT_MS = 20
#: Per transactions partition, how many (offset, fetch answer time) checkpoints the view keeps.
READ_CHECKPOINTS = 256
#: The reader's poll interval while a batch waits (otherwise :data:`FETCH_MAX_WAIT_MS`): fetch
#: answers without records do not wake ``getmany``, and a batch that starts waiting does not either.
CONFIRM_POLL_MS = 5


class InputClocks:
    """How far the view has read each input partition, and whether that covers a time ``t``.

    ``now`` is wall-clock seconds (``time.monotonic()``), passed in so the rule is testable.

    >>> clocks = InputClocks(tx_partitions=[0], label_partitions=[0], delay_ms=1000,
    ...                      lateness_ms=10, quiet_s=5.0, now=0.0)
    >>> clocks.read("tx", 0, ts=2000, now=1.0); clocks.read("label", 0, ts=2500, now=1.0)
    >>> clocks.knows(2500, now=1.0), clocks.knows(2600, now=1.0)
    (True, False)
    >>> clocks.reached_end("label", 0, True)
    >>> clocks.knows(2600, now=5.9), clocks.knows(2600, now=6.0)  # quiet 5 s after its last record
    (False, True)
    """

    def __init__(self, tx_partitions: Iterable[int], label_partitions: Iterable[int], delay_ms: int,
                 lateness_ms: int, quiet_s: float, now: float) -> None:
        self.delay_ms, self.lateness_ms, self.quiet_s = delay_ms, lateness_ms, quiet_s
        #: (kind, partition) → newest event time read (None before the first record)
        self.newest: dict[tuple[str, int], int | None] = {}
        #: (kind, partition) → whether the last fetch found it at its end
        self.at_end: dict[tuple[str, int], bool] = {}
        #: (kind, partition) → when it last gave a record (or the view started)
        self.last_record_at: dict[tuple[str, int], float] = {}
        #: (kind, partition) → wall-clock ms of the fetch answer that found it at its end (None: not at it)
        self.end_seen_ms: dict[tuple[str, int], int | None] = {}
        #: transactions partition → (next offset to read, wall-clock ms of the fetch answer that
        #: brought the records before it), oldest first
        self.tx_read: dict[int, deque[tuple[int, int]]] = {}
        for kind, partitions in (("tx", tx_partitions), ("label", label_partitions)):
            for partition in partitions:
                self.newest[kind, partition] = None
                self.at_end[kind, partition] = False
                self.last_record_at[kind, partition] = now
                self.end_seen_ms[kind, partition] = None
        for partition in tx_partitions:
            self.tx_read[partition] = deque(maxlen=READ_CHECKPOINTS)

    def read_to(self, partition: int, next_offset: int, fetched_ms: int | None) -> None:
        """The view has read a transactions partition up to ``next_offset``, brought by a fetch
        answered at ``fetched_ms`` (wall-clock ms, or later: then the rule is only stricter)."""
        checkpoints = self.tx_read[partition]
        if fetched_ms is not None and (not checkpoints or next_offset > checkpoints[-1][0]):
            checkpoints.append((next_offset, fetched_ms))

    def read_at(self, offsets: dict[int, int]) -> int | None:
        """When (wall-clock ms) a fetch answer brought the view the transactions up to these
        offsets (partition → offset), all of them; None if it has not read one yet. For an
        offset older than every checkpoint kept, a later answer's time: only stricter.

        >>> clocks = InputClocks([0, 1], [0], delay_ms=0, lateness_ms=0, quiet_s=0.0, now=0.0)
        >>> clocks.read_to(0, 10, fetched_ms=5_000); clocks.read_to(1, 4, fetched_ms=5_000)
        >>> clocks.read_to(0, 20, fetched_ms=5_050)
        >>> clocks.read_at({0: 9, 1: 3}), clocks.read_at({0: 15}), clocks.read_at({0: 20})
        (5000, 5050, None)
        """
        answered = 0
        for partition, offset in offsets.items():
            checkpoints = self.tx_read.get(partition, ())
            found = next((ms for next_offset, ms in checkpoints if next_offset > offset), None)
            if found is None:
                return None
            answered = max(answered, found)
        return answered

    def read(self, kind: str, partition: int, ts: int, now: float) -> None:
        newest = self.newest[kind, partition]
        self.newest[kind, partition] = ts if newest is None else max(newest, ts)
        self.last_record_at[kind, partition] = now

    def reached_end(self, kind: str, partition: int, at_end: bool, fetched_ms: int | None = None) -> None:
        """Whether the partition is read to its end, as of the fetch answered at ``fetched_ms``
        (wall-clock ms, ``AIOKafkaConsumer.last_poll_timestamp``)."""
        self.at_end[kind, partition] = at_end
        self.end_seen_ms[kind, partition] = fetched_ms if at_end else None

    def _caught_up(self, tp: tuple[str, int], now: float, since_ms: int | None) -> bool:
        """At its end as of a fetch answered since ``since_ms`` (if given), nothing new for ``quiet_s``."""
        if not self.at_end[tp] or now - self.last_record_at[tp] < self.quiet_s:
            return False
        seen = self.end_seen_ms[tp]
        return since_ms is None or (seen is not None and seen >= since_ms)

    def knows(self, t: int, now: float, since_ms: int | None = None) -> bool:
        """Whether everything a transaction at ``t`` needs has been read (for a batch that came
        at ``since_ms``, wall-clock ms)."""
        return not self.missing(t, now, since_ms)

    def missing(self, t: int, now: float, since_ms: int | None = None) -> list[tuple[str, int]]:
        """The partitions not read far enough for ``t``."""
        need = {"tx": t - self.delay_ms + self.lateness_ms, "label": t}
        out = []
        for tp, newest in self.newest.items():
            kind = tp[0]
            if newest is not None and newest >= need[kind]:
                continue
            released = self.at_end[tp] if kind == "tx" else self._caught_up(tp, now, since_ms)
            if released:
                continue
            out.append(tp)
        return out

    def ahead(self, tp: tuple[str, int], wanted: int | None) -> bool:
        """Whether a partition is read far enough beyond the newest time asked for to pause it
        (nothing asked yet: read on)."""
        newest = self.newest[tp]
        return wanted is not None and newest is not None and newest > wanted + READ_AHEAD_MS

    def oldest_transaction(self) -> int | None:
        """The least advanced ``transactions`` partition's newest time."""
        times = [ts for (kind, _), ts in self.newest.items() if kind == "tx" and ts is not None]
        return min(times) if times else None


class TerminalView:
    """The terminal history of every terminal, read by this worker from the input topics."""

    def __init__(self, delay_ms: int, lateness_ms: int, quiet_s: float,
                 on_late_label: Callable[[], None] = lambda: None) -> None:
        self.history = TerminalHistory(delay_ms)
        self.lateness_ms, self.quiet_s = lateness_ms, quiet_s
        self.clocks: InputClocks | None = None  # once the partitions are known
        self.on_late_label = on_late_label
        #: the newest transaction time a scorer waited for (the view reads ahead of it)
        self.wanted: int | None = None
        #: per input partition of the scorer, the newest time it scored (what pruning keeps;
        #: a label at or before the newest of them comes late)
        self.scored: dict[int, int] = {}
        self._progress = asyncio.Event()
        self._waiting = 0  # batches waiting: the reader polls faster meanwhile

    def features(self, tx: Transaction, partition: int) -> dict[str, float]:
        """The terminal features of a transaction the view knows enough for."""
        self.scored[partition] = max(self.scored.get(partition, tx.ts_ms), tx.ts_ms)
        return self.history.features(tx.terminal_id, tx.ts_ms)

    async def wait_until_known(self, t: int, offsets: dict[int, int] | None = None) -> bool:
        """Wait until the view has read everything a transaction at ``t`` needs; True if a
        label partition at its end (caught up or quiet), rather than its records, let it go on.

        ``offsets`` (``transactions`` partition → the batch's last offset there) lets a label
        partition found at its end by the fetch that brought the view those transactions (or
        a later one) count as caught up; without them, or until then, it takes a fetch
        answered after this call."""
        since_ms = int(time.time() * 1000)
        self.wanted = t if self.wanted is None else max(self.wanted, t)
        self._waiting += 1
        self._wake()
        started = reported = time.monotonic()
        try:
            while True:
                clocks = self.clocks
                if clocks is not None:
                    now = time.monotonic()
                    read_ms = clocks.read_at(offsets) if offsets else None
                    missing = clocks.missing(t, now, since_ms if read_ms is None else min(since_ms, read_ms))
                    if not missing:
                        return any(clocks.newest[tp] is None or clocks.newest[tp] < t
                                   for tp in clocks.newest if tp[0] == "label")
                    if now - reported >= 10:
                        reported = now
                        log.warning("transactions at %d have waited %.0f s for the terminal view: %s", t,
                                    now - started,
                                    {tp: (clocks.newest[tp], clocks.at_end[tp]) for tp in missing})
                progress = self._progress
                try:
                    await asyncio.wait_for(progress.wait(), timeout=0.1)
                except TimeoutError:
                    pass
        finally:
            self._waiting -= 1

    def prune(self) -> int:
        """Forget transactions that no partition this worker scored (or, scoring none, read) still needs."""
        oldest = min(self.scored.values()) if self.scored else None
        if oldest is None and self.clocks is not None:
            oldest = self.clocks.oldest_transaction()
        return 0 if oldest is None else self.history.prune(oldest - self.lateness_ms)

    def _wake(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def tell(self, kind: str, value: bytes | None) -> int | None:
        """Tell the history one record; its event time, or None if it is not a valid one."""
        if value is None:
            return None
        try:
            if kind == "tx":
                tx = parse_transaction(value)
                self.history.add_transaction(tx.event_id, tx.terminal_id, tx.ts_ms)
                return tx.ts_ms
            label = parse_label("fraud", value)
        except InvalidEvent:
            return None  # the scorer or the label router dead-letters it
        if label is not None and label.value:
            self.history.add_fraud_label(label.key, label.ts_ms)
            if self.scored and label.ts_ms <= max(self.scored.values()):
                self.on_late_label()
        return label.ts_ms if label is not None else None

    async def run(self, bootstrap: str) -> None:
        """Read both topics from their beginning, forever (the worker's ``app.task``)."""
        kinds = {topics.TRANSACTIONS: "tx", topics.FRAUD_LABELS: "label"}
        # without a group, a subscription is every partition of the topics, from the beginning
        consumer = AIOKafkaConsumer(*kinds, bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=4 << 20, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        await consumer.start()
        try:
            tps = await _every_partition(consumer, set(kinds))
            self.clocks = InputClocks([tp.partition for tp in tps if tp.topic == topics.TRANSACTIONS],
                                      [tp.partition for tp in tps if tp.topic == topics.FRAUD_LABELS],
                                      self.history.delay_ms, self.lateness_ms, self.quiet_s,
                                      time.monotonic())
            await self._read(consumer, tps, kinds)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                    kinds: dict[str, str]) -> None:
        clocks = self.clocks
        assert clocks is not None
        while True:
            fetchable = [tp for tp in tps if not clocks.ahead((kinds[tp.topic], tp.partition), self.wanted)]
            if not fetchable:
                progress = self._progress
                try:
                    await asyncio.wait_for(progress.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                continue
            poll_ms = CONFIRM_POLL_MS if self._waiting else FETCH_MAX_WAIT_MS
            batches = await consumer.getmany(*fetchable, timeout_ms=poll_ms, max_records=READ_STEP)
            now = time.monotonic()
            for tp, records in batches.items():
                kind = kinds[tp.topic]
                for record in records:
                    ts = self.tell(kind, record.value)
                    if ts is not None:
                        clocks.read(kind, tp.partition, ts, now)
                if kind == "tx" and records:
                    # the answer that brought them is at most this recent: the rule only gets stricter
                    clocks.read_to(tp.partition, records[-1].offset + 1, consumer.last_poll_timestamp(tp))
            for tp in fetchable:
                highwater = consumer.highwater(tp)
                at_end = highwater is not None and await consumer.position(tp) >= highwater
                clocks.reached_end(kinds[tp.topic], tp.partition, at_end, consumer.last_poll_timestamp(tp))
            self._wake()
            await asyncio.sleep(0)


async def _every_partition(consumer: AIOKafkaConsumer, names: set[str]) -> list[TopicPartition]:
    """The subscribed topics' partitions, once the broker has them (the worker declares them)."""
    while True:
        assigned = consumer.assignment()
        if {tp.topic for tp in assigned} >= names:
            return sorted(assigned)
        await asyncio.sleep(0.2)
