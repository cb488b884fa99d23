"""Prototype "batch drain": Faust stays the frame, but input records reach the pure core in batches.

Faust keeps: the app, its consumer group and partition assignor (tables co-partitioned with their
input topics), the tables and their changelog recovery (active and standby), the web server with
``/metrics``, the ``worker`` command, offset commits (its periodic commit loop, and on rebalance).

What changes is *one method* of Faust's consumer, the fetch loop ``Consumer._drain_messages``.
Faust's loop turns every record into a ``Message`` and awaits the conductor's per-message callback
(``wait_first`` → decode → ``Event`` → channel queue → stream → ``take`` → ack), ≈ 150 µs of its own
per record. This loop instead hands each fetched ``RecordMap`` of an input topic *as raw aiokafka
records* to a batch handler:

1. ``BatchScorer.score_batch`` (the engine's pure core, unchanged),
2. state written to the Faust table's store (``table.data``), and its changelog records plus the
   outputs appended to aiokafka ``BatchBuilder``\\ s — one per (topic, partition) — with
   ``send_batch`` on the app's own producer (no per-record send),
3. the batch's offsets become committable only once Kafka acknowledged all of its records
   (at-least-once): a done-callback marks them, in fetch order, and Faust's own commit machinery
   commits them (``_new_offset`` is answered from those marks).

Records of every other topic (the tables' changelogs during recovery, standby replicas) still take
Faust's per-message path, so recovery is Faust's own. On rebalance, in-flight batches are drained and
their offsets committed before the partitions are given up.

Run like the engine's worker (same settings environment)::

    python -m bench.prototypes.batch_drain worker [faust worker options]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from prometheus_client import CollectorRegistry

from bench.common import app_options, make_scorer
from stream.app import _add_metrics_page, _observe, _quiet_root_logger
from stream.metrics import Metrics
from stream.pipeline import TASKS, BatchResult, BatchScorer, InputRecord, ScoringTask
from stream.settings import Settings

log = logging.getLogger(__name__)

#: Batches sent but not yet acknowledged by Kafka before the fetch loop waits for the oldest.
MAX_IN_FLIGHT = 4


@dataclass
class InFlight:
    """One scored batch whose records are on their way to Kafka."""

    done: asyncio.Future
    offsets: dict[TP, int]
    generation: int
    handler: BatchHandler
    result: BatchResult
    consumed: int
    fetched_at: float


@dataclass
class BatchHandler:
    """Scores one task's batches and sends their state and outputs, batched per partition."""

    app: faust.App
    task: ScoringTask
    table: Any
    metrics: Metrics
    scorer: BatchScorer
    partitions: int
    _partition_of: dict[bytes, int] = field(default_factory=dict)

    def send(self, records: list[InputRecord]) -> tuple[BatchResult, list[asyncio.Future]]:
        """Score ``records``, write state to the table's store, and send everything (not awaited)."""
        result = self.scorer.score_batch(records, self.table.data.get)
        store = self.table.data
        builders: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        changelog = self.table.changelog_topic.get_topic_name()
        for key, (partition, value) in result.state_writes.items():
            store[key] = value
            builders.setdefault((changelog, partition), []).append((key, value))
        part = self._partition
        for out in result.outputs:
            builders.setdefault((out.topic, part(out.key)), []).append((out.key, out.value))
        return result, self._send_batches(builders)

    def _partition(self, key: bytes | None) -> int:
        """The partition Kafka's default partitioner picks for ``key`` (cached: keys repeat)."""
        if key is None:
            return 0
        cached = self._partition_of.get(key)
        if cached is None:
            everything = list(range(self.partitions))
            cached = self._partition_of[key] = _PARTITIONER(key, everything, everything)
        return cached

    def _send_batches(self, builders: dict[tuple[str, int], list[tuple[bytes | None, bytes]]]
                      ) -> list[asyncio.Future]:
        producer = self.app.producer._ensure_producer()  # the app's own AIOKafkaProducer
        futures = []
        loop = asyncio.get_running_loop()
        for (topic, partition), items in builders.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(self._chain(loop, producer, batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(self._chain(loop, producer, batch, topic, partition))
        return futures

    def _chain(self, loop: asyncio.AbstractEventLoop, producer: Any, batch: Any, topic: str,
               partition: int) -> asyncio.Future:
        """Send a batch after the previous one of its partition was queued (keeps their order).

        ``send_batch`` waits while its partition already has a batch queued; several such waits
        for one partition can resume in any order, which would reorder two batches of the same
        partition: a changelog would then end on an *older* state of a key. So every partition's
        batches are queued one after the other.
        """
        previous = _QUEUED.get((topic, partition))
        queued = loop.create_future()
        _QUEUED[(topic, partition)] = queued
        return loop.create_task(_send(producer, batch, topic, partition, previous, queued))


#: (topic, partition) → set once the latest batch sent there is queued in the producer
_QUEUED: dict[tuple[str, int], asyncio.Future] = {}
_PARTITIONER = DefaultPartitioner()


async def _send(producer: Any, batch: Any, topic: str, partition: int,
                previous: asyncio.Future | None, queued: asyncio.Future) -> Any:
    try:
        if previous is not None:
            await asyncio.wait([previous])
        batch.close()
        delivery = await producer.send_batch(batch, topic, partition=partition)
    finally:
        if not queued.done():
            queued.set_result(None)
    return await delivery


class BatchDrainConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands input topics' records over in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_next: dict[TP, int] = {}
        self._in_flight: deque[InFlight] = deque()

    @property
    def batch_handlers(self) -> dict[str, BatchHandler]:
        return getattr(self.app, "batch_handlers", {})

    # --- the fetch loop ------------------------------------------------------------------------
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in a worker
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        handlers = self.batch_handlers
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await self.sleep(0)
                # the generation is read *before* fetching: records fetched while a rebalance
                # ran (and the partitions were seeked back) must not be scored
                generation = self.app.consumer_generation_id
                records, active = await self._wait_next_records(1.0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    await self.perform_seek()
                    continue
                if not records:
                    await self._wait_in_flight(0)  # idle: let acks (and commits) catch up
                    continue
                if self.app.consumer_generation_id != generation:
                    # fetched across a rebalance: drop them and read again from the committed
                    # offsets (duplicates at worst, never a gap)
                    await self.perform_seek()
                    continue
                fetched_at = time.monotonic()
                per_handler: dict[str, list[tuple[TP, list[Any]]]] = {}
                for tp, batch in records.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    if tp.topic in handlers:
                        # no "already read" filter (Faust's loop has one): after a seek back it
                        # can skip records never scored; re-scoring a few is at-least-once
                        per_handler.setdefault(tp.topic, []).append((tp, batch))
                    else:
                        await self._per_message(tp, batch, generation)
                for topic, parts in per_handler.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        # a rebalance started: what is not scored yet is read again
                        await self.perform_seek()
                        break
                    self._submit(handlers[topic], parts, generation, fetched_at)
                    await self._wait_in_flight(MAX_IN_FLIGHT)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _per_message(self, tp: TP, batch: list[Any], generation: int) -> None:
        """Faust's own path, for every topic without a batch handler (changelogs: recovery, standby)."""
        callback = self.callback
        for record in batch:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return
            message = self._to_message(tp, record)
            r_offset = self._read_offset[tp]
            if r_offset is None or message.offset >= r_offset:
                await self.wait_first(callback(message), self.suspend_flow.wait())
                self._read_offset[tp] = message.offset

    def _submit(self, handler: BatchHandler, parts: list[tuple[TP, list[Any]]], generation: int,
                fetched_at: float) -> None:
        records = [InputRecord(r.value, r.key, tp.partition, r.offset) for tp, batch in parts for r in batch]
        offsets = {tp: batch[-1].offset + 1 for tp, batch in parts}
        for tp, batch in parts:
            self._read_offset[tp] = batch[-1].offset
        result, futures = handler.send(records)
        done = asyncio.gather(*futures)
        flight = InFlight(done, offsets, generation, handler, result, len(records), fetched_at)
        self._in_flight.append(flight)
        done.add_done_callback(self._on_flight_done)

    def _on_flight_done(self, _: asyncio.Future) -> None:
        """Mark offsets of acknowledged batches, oldest first (never past a batch still in flight)."""
        while self._in_flight and self._in_flight[0].done.done():
            flight = self._in_flight.popleft()
            error = flight.done.exception() if not flight.done.cancelled() else None
            if flight.done.cancelled() or error is not None:
                # not acknowledged: never commit past it; the worker restarts and reads them again
                self._in_flight.clear()
                asyncio.ensure_future(self.crash(error or RuntimeError("send cancelled")))
                return
            if flight.generation == self.app.consumer_generation_id:
                for tp, offset in flight.offsets.items():
                    if offset > self._batch_next.get(tp, -1):
                        self._batch_next[tp] = offset
            handler = flight.handler
            latency = time.monotonic() - flight.fetched_at
            _observe(handler.metrics, handler.task, flight.result, flight.consumed,
                     [latency] * flight.consumed)

    async def _wait_in_flight(self, limit: int) -> None:
        """Wait until at most ``limit`` batches are in flight."""
        while len(self._in_flight) > limit:
            head = self._in_flight[0]
            await asyncio.wait([head.done])  # yields even when already done, unlike ``await head``
            self._on_flight_done(head.done)

    # --- commits: Faust's machinery, fed with our marks --------------------------------------
    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        theirs = set(super()._filter_tps_with_pending_acks(topics))
        ours = {tp for tp in self._batch_next if topics is None or tp in topics or tp.topic in topics}
        return iter(theirs | ours)

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self.batch_handlers:
            return self._batch_next.get(tp)
        return super()._new_offset(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # finish what is in flight and commit it before giving partitions up (Faust itself
        # forgets the acks of revoked partitions before its own commit)
        try:
            await self._wait_in_flight(0)
            await self.commit()
        except Exception as exc:  # a failed commit only means those records are read again
            log.warning("commit before revoke failed: %r", exc)
        for tp in revoked:
            self._batch_next.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def wait_empty(self) -> None:
        await self._wait_in_flight(0)
        await super().wait_empty()


class BatchDrainTransport(faust_aiokafka.Transport):
    Consumer = BatchDrainConsumer


def create_app(settings: Settings, registry: CollectorRegistry | None = None,
               log_level: str = "warn", standby_replicas: int = 0) -> faust.App:
    """The engine's app (same topics, tables, metrics page), with the batch-drain consumer."""
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.app_id, **app_options(settings),
                    broker_max_poll_records=settings.batch_size,
                    table_standby_replicas=standby_replicas,
                    producer_linger_ms=1, producer_max_batch_size=256 * 1024)
    app.transport = BatchDrainTransport(app.conf.broker_consumer, app)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics.create(registry)
    app.batch_handlers = {}
    for task in TASKS.values():
        topic = app.topic(task.input_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", partitions=settings.partitions)
        table = app.Table(f"{task.features.entity}-state", key_type=bytes, value_type=bytes,
                          partitions=settings.partitions)
        scorer = make_scorer(task, settings)
        app.batch_handlers[task.input_topic] = BatchHandler(app, task, table, metrics, scorer,
                                                            settings.partitions)
        _subscribe_without_agent(app, topic)
        _keep_state_expiry(app, table, scorer, settings, metrics)
    _add_metrics_page(app, registry)
    _quiet_root_logger(app, log_level)
    return app


def _keep_state_expiry(app: faust.App, table: Any, scorer: BatchScorer, settings: Settings,
                       metrics: Metrics) -> None:
    """The engine's idle-state expiry timer, when the engine has one (rare, one record per key)."""
    from stream import app as engine_app

    expiry = getattr(engine_app, "_add_state_expiry", None)
    if expiry is not None:
        expiry(app, table, scorer, settings, metrics)


def _subscribe_without_agent(app: faust.App, topic: faust.TopicT) -> None:
    """Make Faust's consumer subscribe to ``topic`` (and co-assign tables) with no agent on it.

    The conductor subscribes to the topics it holds; adding the topic there is what an agent's
    stream would do. Its records never reach the channel: the batch-drain loop takes them.
    """
    topic.__aiter__()  # what ``async for`` in an agent does: adds an iterator clone to the conductor


def main(argv: list[str] | None = None) -> int:
    from bench.common import bench_settings

    faust_args = list(sys.argv[1:] if argv is None else argv)
    if faust_args and faust_args[0] == "worker":
        faust_args = faust_args[1:]
    if not any(a.startswith(("-l", "--loglevel")) for a in faust_args):
        faust_args = ["--loglevel", "warn", *faust_args]
    settings = bench_settings()
    standby = int(_env("BENCH_STANDBY_REPLICAS", "0"))
    app = create_app(settings, standby_replicas=standby)
    if _env("BENCH_MAX_POLL_RECORDS", ""):
        app.conf.broker_max_poll_records = int(_env("BENCH_MAX_POLL_RECORDS", ""))
    if _env("BENCH_SWITCH_INTERVAL", ""):
        # the aiokafka consumer runs in Faust's consumer thread: a shorter GIL switch interval
        # lets it answer fetches while the main thread scores a batch
        sys.setswitchinterval(float(_env("BENCH_SWITCH_INTERVAL", "")))
    loop = _env("BENCH_LOOP", "")
    sys.argv = ["batch_drain", *(["--loop", loop] if loop else []), "worker", *faust_args]
    app.main()
    return 0


def _env(name: str, default: str) -> str:
    import os

    return os.environ.get(name, default)


Factory = Callable[..., faust.App]

if __name__ == "__main__":
    sys.exit(main())
