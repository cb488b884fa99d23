"""Faust glue of the learning loop: label routing, the label join, the trainer, model snapshots.

See :mod:`stream.learning` for the logic. Every worker runs the trainer (and so does
``scorestream challengers``, see :mod:`stream.challengers`): it reads
the single-partition ``training-examples`` topic in full, with its own consumer
outside the consumer group, and applies each example once (by offset and by
example id) to the models the scoring agents use (one process, one event loop:
no locks). All replicas see the same examples in the same order and stay
identical; snapshots shorten the replay at start, and those published to the
snapshot topic (:mod:`stream.snapshot_topic`) let a worker on a new machine start
from them rather than from whatever retention left of ``training-examples``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from online_models.task_models import TaskModels
from stream import model_store, topics
from stream.batching import Delivery, Outgoing, add_batch_handler
from stream.learning import (
    LABEL_TOPICS,
    ChangelogStore,
    JoinHandler,
    Learning,
    example_records,
    join_policy,
    join_sources,
    join_topic,
    learn_records,
    route_labels,
)
from stream.metrics import Metrics
from stream.pipeline import InputRecord
from stream.settings import Settings
from stream.snapshot_topic import SnapshotPublisher

log = logging.getLogger(__name__)

#: Training examples learned in one go: every model of the task learns each one (about 0.4 ms
#: for the fraud models, ARF of 10 trees most), and scoring waits meanwhile: a step of 20 keeps
#: that wait under 10 ms (100 made 40 ms, the p99 of the event→score latency).
TRAIN_STEP = 20
#: Seconds between two exports of the models' rolling quality (computing it costs).
QUALITY_EXPORT_S = 5.0


def _raw_topic(app: faust.App, name: str, settings: Settings, **options: object) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=settings.partitions, **options)


def add_learning(app: faust.App, settings: Settings, metrics: Metrics,
                 models: dict[str, TaskModels], publisher: SnapshotPublisher | None) -> None:
    """Label routing and the label join for every task, the trainer, and model snapshots."""
    for task in models:
        to_join = _raw_topic(app, join_topic(settings.app_id, task), settings, internal=True)
        _add_label_router(app, task, to_join, settings, metrics)
        _add_label_join(app, task, to_join, settings, metrics)
    add_trainer(app, settings, metrics, models)
    add_snapshots(app, settings, metrics, models, publisher)


def _add_label_router(app: faust.App, task: str, to_join: faust.TopicT, settings: Settings,
                      metrics: Metrics) -> None:
    source = _raw_topic(app, LABEL_TOPICS[task], settings)
    outgoing = Outgoing(settings.partitions)

    def route(records: list[InputRecord]) -> Delivery:
        result = route_labels(task, records, to_join.get_topic_name())
        for out in result.outputs:
            outgoing.add_keyed(out.topic, out.key, out.value)

        def observe(fetched_at: float) -> None:
            metrics.events_consumed.labels(topic=LABEL_TOPICS[task]).inc(len(records))
            for reason in result.invalid:
                metrics.invalid_events.labels(topic=LABEL_TOPICS[task], reason=reason).inc()
        return Delivery(outgoing.take(), on_acknowledged=observe)

    add_batch_handler(app, source, route)


def _add_label_join(app: faust.App, task: str, to_join: faust.TopicT, settings: Settings,
                    metrics: Metrics) -> None:
    table = app.Table(f"{task}-label-join", key_type=bytes, value_type=bytes,
                      partitions=settings.partitions)
    waiting = app.Table(f"{task}-pending-labels", key_type=bytes, value_type=bytes,
                        partitions=settings.partitions)
    handlers: list[JoinHandler] = []  # made on the first batch, once the tables' stores exist
    outputs, state = Outgoing(settings.partitions), Outgoing(settings.partitions)

    @app.on_rebalance_complete.connect
    async def reindex(sender: object, **kwargs: object) -> None:
        for handler in handlers:  # the partitions (and their snapshots) may have moved
            handler.join.rebuild()

    def join(records: list[InputRecord]) -> Delivery:
        if not handlers:
            handlers.append(JoinHandler(task, ChangelogStore(table.data), ChangelogStore(waiting.data),
                                        join_policy(task, settings.label_grace_s,
                                                    settings.horizon_days(task)),
                                        sources=join_sources(task, settings.partitions)))
        handler = handlers[0]
        examples = handler.handle(records)
        for store, store_table in ((handler.store, table), (handler.pending, waiting)):
            changelog = store_table.changelog_topic.get_topic_name()
            for key, (partition, value) in store.take_changes().items():
                state.add(changelog, partition, key, value)
        for record in example_records(examples):
            outputs.add(record.topic, 0, record.key, record.value)  # a single partition

        def observe(fetched_at: float) -> None:
            for example in examples:
                metrics.training_examples.labels(task=task, cause=example.cause).inc()
            for outcome, count in handler.join.counts.items():
                metrics.label_join.labels(task=task, outcome=outcome).set(count)
        return Delivery(outputs.take(), state.take(), observe)

    add_batch_handler(app, to_join, join)


def add_trainer(app: faust.App, settings: Settings, metrics: Metrics,
                models: dict[str, TaskModels]) -> None:
    """Learn ``training-examples`` in full, in order, into ``models`` (a worker's or the challengers')."""
    @app.task
    async def train() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
        partition = TopicPartition(topics.TRAINING_EXAMPLES, 0)
        await consumer.start()
        consumer.assign([partition])
        consumer.seek(partition, min(m.position for m in models.values()) + 1)
        exported = 0.0
        try:
            while True:
                batches = await consumer.getmany(partition, timeout_ms=500, max_records=TRAIN_STEP)
                records = [(r.offset, r.value) for r in batches.get(partition, [])]
                if not records:
                    continue
                _count_learning(metrics, learn_records(models, records))
                if time.monotonic() >= exported + QUALITY_EXPORT_S:
                    _export_quality(metrics, models)
                    exported = time.monotonic()
                await asyncio.sleep(0)  # let scoring run between two steps
        finally:
            await consumer.stop()


def _count_learning(metrics: Metrics, learning: Learning) -> None:
    """Examples learned, and copies skipped apart: a rising count of copies means the join crashed."""
    for task, count in learning.learned.items():
        metrics.examples_learned.labels(task=task).inc(count)
    for task, count in learning.duplicates.items():
        metrics.duplicate_examples.labels(task=task).inc(count)


def _export_quality(metrics: Metrics, models: dict[str, TaskModels]) -> None:
    for task_models in models.values():
        for row in task_models.describe():
            if row["roc_auc"] is not None:
                metrics.model_roc_auc.labels(task=row["task"], model=row["model"]).set(row["roc_auc"])


def add_snapshots(app: faust.App, settings: Settings, metrics: Metrics, models: dict[str, TaskModels],
                  publisher: SnapshotPublisher | None) -> None:
    """Snapshot ``models`` every ``SCORESTREAM_MODEL_SNAPSHOT_INTERVAL_S`` and at shutdown; each
    snapshot saved is also published to the snapshot topic (unless ``publisher`` is None)."""
    one_at_a_time = asyncio.Lock()  # a slower earlier child must not rename over a newer snapshot

    async def save_all() -> None:
        async with one_at_a_time:
            for task_models in models.values():  # a forked child pickles; scoring goes on
                try:
                    saved = await model_store.save_in_child(task_models, settings)
                except OSError as error:  # a full disk, no fork: the next try may work
                    log.error("could not save the %s models: %s", task_models.task, error)
                    continue
                if saved and publisher is not None:
                    await _publish(publisher, metrics, task_models)

    @app.timer(interval=settings.model_snapshot_interval_s)
    async def snapshot_models() -> None:
        await save_all()

    @app.on_before_shutdown.connect
    async def snapshot_on_shutdown(sender: object, **kwargs: object) -> None:
        await save_all()
        if publisher is not None:
            await publisher.stop()


async def _publish(publisher: SnapshotPublisher, metrics: Metrics, task_models: TaskModels) -> None:
    """Publish the snapshot just saved; a failure is logged and counted (the local one is there)."""
    name = model_store.snapshot_name(task_models.task, task_models.holds)
    started = time.monotonic()
    try:
        await publisher.publish(name, model_store.snapshot_path(publisher.settings, task_models.task,
                                                                task_models.holds))
    except Exception as error:  # Kafka away, a timeout: the next snapshot tries again
        metrics.snapshot_publish_failures.labels(snapshot=name).inc()
        log.error("could not publish the %s snapshot to %s: %r", name, publisher.topic, error)
        return
    metrics.snapshot_publish.labels(snapshot=name).observe(time.monotonic() - started)
