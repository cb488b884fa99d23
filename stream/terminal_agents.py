"""Faust glue of the terminal stage: customer features by terminal, the label reader, terminal features.

See :mod:`stream.terminal_stage` for the logic. Stages 1 and 2 are batch handlers
(:mod:`stream.batching`), as the scorers are: each batch's outputs, then its
state's changelog records, are acknowledged by Kafka before its offsets commit.

Every worker reads ``fraud-labels`` in full with its own consumer, outside the
consumer group (labels are a few per cent of transactions). It keeps no offsets:
at start it reads the topic from the beginning, which re-applies every label
(idempotent), so a label read just before a crash is never lost. A batch of
stage 2 waits, before it is handled, until the label stream has reached its
newest transaction (or the quiet label partitions timed out).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import faust
from aiokafka import AIOKafkaConsumer

from features.time import DAY
from stream import topics
from stream.batching import Delivery, Outgoing, add_batch_handler
from stream.metrics import Metrics
from stream.pipeline import InputRecord, OutputRecord
from stream.settings import Settings
from stream.terminal_stage import CustomerStage, LabelClock, TerminalHandler, parse_featured

#: How often a waiting batch looks at the label clock again.
POLL_S = 0.005


def _raw_topic(app: faust.App, name: str, settings: Settings, **options: object) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=settings.partitions, **options)


def _delivery(table: faust.Table, writes: dict[bytes, tuple[int, bytes]], outputs: list[OutputRecord],
              settings: Settings, metrics: Metrics, observe: Callable[[float], None]) -> Delivery:
    """Write state to the table's store; the outputs, then the changelog records, for Kafka."""
    out, state = Outgoing(settings.partitions), Outgoing(settings.partitions)
    changelog = table.changelog_topic.get_topic_name()
    for key, (partition, value) in writes.items():
        table.data[key] = value
        state.add(changelog, partition, key, value)
    for record in outputs:
        out.add_keyed(record.topic, record.key, record.value)

    def acknowledged(fetched_at: float) -> None:
        for topic, count in Counter(record.topic for record in outputs).items():
            metrics.outputs_produced.labels(topic=topic).inc(count)
        observe(fetched_at)
    return Delivery(out.take(), state.take(), acknowledged)


def add_terminal_stage(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Stages 1 and 2 of the fraud path; the fraud scorer then reads ``<app id>-transactions-enriched``."""
    by_terminal = _raw_topic(app, topics.by_terminal_topic(settings.app_id), settings, internal=True)
    lateness_ms = int(settings.allowed_lateness_s * 1000)
    _add_customer_stage(app, settings, metrics, by_terminal.get_topic_name(), lateness_ms)
    _add_terminal_features(app, settings, metrics, by_terminal, lateness_ms)


def _add_customer_stage(app: faust.App, settings: Settings, metrics: Metrics, to_topic: str,
                        lateness_ms: int) -> None:
    source = _raw_topic(app, topics.TRANSACTIONS, settings)
    table = app.Table("customer-state", key_type=bytes, value_type=bytes,
                      partitions=settings.partitions)
    stage = CustomerStage(to_topic, lateness_ms)
    latency = metrics.event_to_score_latency.labels(topic=topics.TRANSACTIONS)

    def forward(records: list[InputRecord]) -> Delivery:
        result = stage.score_batch(records, table.data.get)

        def observe(fetched_at: float) -> None:
            metrics.events_consumed.labels(topic=topics.TRANSACTIONS).inc(len(records))
            for reason in result.invalid:  # their dead letter is their outcome: its latency counts
                metrics.invalid_events.labels(topic=topics.TRANSACTIONS, reason=reason).inc()
                latency.observe(time.monotonic() - fetched_at)
            for name, count in (("late_events", result.late), ("replayed_events", result.replayed),
                                ("state_resets", result.state_resets)):
                if count:
                    getattr(metrics, name).labels(topic=topics.TRANSACTIONS).inc(count)
        return _delivery(table, result.state_writes, result.outputs, settings, metrics, observe)

    add_batch_handler(app, source, forward)
    _add_expiry(app, table, settings, metrics, "customer", stage.expired)


def _add_terminal_features(app: faust.App, settings: Settings, metrics: Metrics,
                           source: faust.TopicT, lateness_ms: int) -> None:
    table = app.Table("terminal-state", key_type=bytes, value_type=bytes,
                      partitions=settings.partitions)
    clock = LabelClock(settings.terminal_label_wait_s)
    handler = TerminalHandler(source.get_topic_name(), topics.enriched_topic(settings.app_id),
                              delay_ms=round(settings.terminal_delay_days * DAY), lateness_ms=lateness_ms)

    @app.task
    async def read_fraud_labels() -> None:
        # no group: the consumer is given every partition of the topic, read from the start
        consumer = AIOKafkaConsumer(topics.FRAUD_LABELS, bootstrap_servers=settings.kafka_bootstrap,
                                    group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.monotonic()
                if not clock.partitions and consumer.assignment():
                    clock.set_partitions(tp.partition for tp in consumer.assignment())
                for tp, records in batches.items():
                    for record in records:
                        ts = handler.read_label(tp.partition, record.value)
                        clock.observe(tp.partition, ts if ts is not None else 0, now)
        finally:
            await consumer.stop()

    @app.on_rebalance_complete.connect
    async def reindex(sender: object, **kwargs: object) -> None:
        handler.rebuild_index(list(table.data.items()))

    async def wait_for_labels(records: list[InputRecord]) -> None:
        """Hold the batch until the label stream has reached its newest transaction (or went idle)."""
        newest = 0
        for record in records:
            try:
                newest = max(newest, parse_featured(record.value or b"null").ts_ms)
            except ValueError:
                continue  # the handler dead-letters it
        since = time.monotonic()
        timeouts = clock.timeouts
        while clock.time < newest and clock.blocking(newest, since, time.monotonic()):
            await asyncio.sleep(POLL_S)
        metrics.terminal_label_wait.observe(time.monotonic() - since)
        if clock.timeouts > timeouts:
            metrics.terminal_label_timeouts.inc(clock.timeouts - timeouts)

    def enrich(records: list[InputRecord]) -> Delivery:
        result = handler.handle(records, table.data.get)

        def observe(fetched_at: float) -> None:
            topic = source.get_topic_name()
            metrics.events_consumed.labels(topic=topic).inc(len(records))
            for reason in result.invalid:
                metrics.invalid_events.labels(topic=topic, reason=reason).inc()
            if result.replayed:
                metrics.replayed_events.labels(topic=topic).inc(result.replayed)
            if result.duplicates:
                metrics.duplicate_events.labels(topic=topic).inc(result.duplicates)
            if result.state_resets:
                metrics.state_resets.labels(topic=topic).inc(result.state_resets)
            if result.late_labels:
                metrics.late_labels.inc(result.late_labels)
        return _delivery(table, result.state_writes, result.outputs, settings, metrics, observe)

    add_batch_handler(app, source, enrich, ready=wait_for_labels)

    def expired(items: list[tuple[bytes, bytes]]) -> list[tuple[bytes, int]]:
        return handler.expired(items, handler.newest_ts)

    _add_expiry(app, table, settings, metrics, "terminal", expired,
                after=lambda: handler.rebuild_index(list(table.data.items())))


def _add_expiry(app: faust.App, table: faust.Table, settings: Settings, metrics: Metrics,
                entity: str, expired: Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, int]]],
                after: Callable[[], None] | None = None, chunk: int = 10_000) -> None:
    """Drop the state of keys idle past every window (bounded memory), a chunk at a time."""
    @app.timer(interval=settings.state_expiry_interval_s)
    async def expire_idle_state() -> None:
        keys = list(table.data.keys())
        for start in range(0, len(keys), chunk):
            present = [(k, v) for k in keys[start:start + chunk] if (v := table.data.get(k)) is not None]
            for key, partition in expired(present):
                del table.data[key]
                table.send_changelog(partition, key, None, value_serializer="raw")
                metrics.expired_keys.labels(entity=entity).inc()
            await asyncio.sleep(0)  # let the agents go on between chunks
        if after is not None:
            after()  # prune the label index with the expired terminals
