"""The Faust application: topics, changelog-backed state tables, one batch handler per task, /metrics.

Faust's consumer hands each fetched batch of an input topic to the task's
handler (:mod:`stream.batching`), which runs the pure
:class:`~stream.pipeline.BatchScorer` and returns the batch's state changelog
records and outputs. The batch's offsets become committable only once Kafka
acknowledged all of them, so offsets are committed after their scores exist
(at-least-once).

State is one changelog-backed Faust table per entity (customer, visitor), with
raw ``bytes`` keys and values. A key's changelog record goes to the partition of
the input record that touched it, which is where Faust recovers it from when
that input partition is assigned to a worker, whatever partitioner the
producer of the input used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from features.time import DAY
from online_models.task_models import TaskModels
from stream import snapshot_topic
from stream.batching import WAIT_CAUSES, Delivery, Outgoing, Prepare, add_batch_handler, use_batch_consumer
from stream.events import InvalidEvent
from stream.gc_freeze import add_gc_freezing
from stream.learning import join_topic
from stream.learning_agents import add_learning
from stream.metrics import Metrics
from stream.model_follower import add_model_following
from stream.pipeline import TASKS, BatchResult, BatchScorer, InputRecord, ScoringTask
from stream.settings import Settings
from stream.terminal_view import TerminalView

log = logging.getLogger(__name__)


def create_app(settings: Settings, registry: CollectorRegistry | None = None,
               log_level: str = "warn") -> faust.App:
    """A Faust app scoring every task in :data:`~stream.pipeline.TASKS`.

    With ``SCORESTREAM_LEARNING=workers`` it also joins labels and learns (:mod:`stream.learning_agents`);
    with ``trainer`` it scores with the models ``scorestream trainer`` publishes (:mod:`stream.trainer`).
    """
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics.create(registry)
    app = batch_app(settings, settings.app_id, settings.worker_dir, settings.web_port, metrics)
    trainer = settings.learning == "trainer"
    if trainer:
        models, publisher = snapshot_topic.load_published(settings, TASKS), None
    else:
        models, publisher = snapshot_topic.load_models(settings, TASKS, settings.worker_holds)
    terminals = _add_terminal_view(app, settings, metrics)
    scorers = {task.name: _add_scoring(app, task, settings, metrics, models[task.name],
                                       terminals if task.terminal_features else None)
               for task in TASKS.values()}
    if trainer:
        add_model_following(app, settings, metrics, scorers)
    else:
        add_learning(app, settings, metrics, models, publisher)
    add_gc_freezing(app, settings.gc_freeze_interval_s, metrics.gc_frozen_objects)
    add_metrics_page(app, registry)
    quiet_root_logger(app, log_level)
    return app


def batch_app(settings: Settings, app_id: str, datadir: Path, web_port: int, metrics: Metrics) -> faust.App:
    """A Faust app (consumer group ``app_id``) whose batch handlers take records as fetched."""
    datadir.mkdir(parents=True, exist_ok=True)  # Faust does not create it
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(datadir),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        web_port=web_port,
        web_host="0.0.0.0",
        web_in_thread=False,
        # batches as big as the core takes; outputs leave within a millisecond
        broker_max_poll_records=settings.batch_size,
        producer_linger_ms=1,
        producer_max_batch_size=256 * 1024,
        # a standby replica replays every changelog record through Faust's per-message path,
        # which costs the standby worker as much as scoring; a failover reads the changelog instead
        table_standby_replicas=0,
    )
    waited = {cause: metrics.batch_loop_wait.labels(on=cause) for cause in WAIT_CAUSES}
    use_batch_consumer(app, on_wait=lambda cause, seconds: waited[cause].inc(seconds))
    return app


def _add_terminal_view(app: faust.App, settings: Settings, metrics: Metrics) -> TerminalView:
    """This worker's view of every terminal (:mod:`stream.terminal_view`), read by a task of its own."""
    view = TerminalView(int(settings.terminal_delay_days * DAY), int(settings.allowed_lateness_s * 1000),
                        settings.terminal_label_wait_s, on_late_label=metrics.late_labels.inc)

    @app.task
    async def read_terminals() -> None:
        await view.run(settings.kafka_bootstrap)

    @app.timer(interval=settings.state_expiry_interval_s)
    async def prune_terminals() -> None:
        view.prune()
        metrics.terminal_transactions.set(len(view.history.transactions))
    return view


def _add_scoring(app: faust.App, task: ScoringTask, settings: Settings, metrics: Metrics,
                 models: TaskModels, terminals: TerminalView | None) -> BatchScorer:
    """Score the task's input topic in batches; state in a changelog-backed table."""
    topic = app.topic(task.input_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=settings.partitions)
    table = app.Table(f"{task.features.entity}-state", key_type=bytes, value_type=bytes,
                      partitions=settings.partitions)
    scorer = BatchScorer(task, settings.fraud_alert_threshold,
                         lateness_ms=int(settings.allowed_lateness_s * 1000), models=models,
                         join_topic=join_topic(settings.app_id, task.name),
                         context=terminals.features if terminals is not None else None,
                         alert_warmup=settings.fraud_alert_warmup)
    outputs, state = Outgoing(settings.partitions), Outgoing(settings.partitions)

    def score(records: list[InputRecord], prepared: list[Any] | None = None) -> Delivery:
        result = scorer.score_batch(records, table.data.get, prepared)
        changelog = table.changelog_topic.get_topic_name()
        for key, (partition, value) in result.state_writes.items():
            table.data[key] = value  # the local store; its changelog record goes with the batch
            state.add(changelog, partition, key, value)
        for out in result.outputs:
            outputs.add_keyed(out.topic, out.key, out.value)

        def observe(fetched_at: float) -> None:
            _observe(metrics, task, result, len(records), time.monotonic() - fetched_at)
        return Delivery(outputs.take(), state.take(), observe)

    prepare = _waiting_for(terminals, scorer, metrics) if terminals is not None else None
    add_batch_handler(app, topic, score, prepare)
    _add_state_expiry(app, table, scorer, settings, metrics)
    return scorer


def _waiting_for(terminals: TerminalView, scorer: BatchScorer, metrics: Metrics) -> Prepare:
    """A batch's prepare step: parse it, and wait until the terminal view knows its newest transaction."""
    async def wait_for_terminals(records: list[InputRecord]) -> list[Any]:
        events = scorer.parse_batch(records)
        newest = max((e.ts_ms for e in events if not isinstance(e, InvalidEvent)), default=None)
        if newest is not None:
            started = time.monotonic()
            offsets = {r.partition: r.offset for r in records}  # each partition's last: records are in order
            if await terminals.wait_until_known(newest, offsets):
                metrics.terminal_quiet_releases.inc()
            metrics.terminal_wait.observe(time.monotonic() - started)
        return events
    return wait_for_terminals


def _add_state_expiry(app: faust.App, table: faust.Table, scorer: BatchScorer, settings: Settings,
                      metrics: Metrics, chunk: int = 10_000) -> None:
    """Drop the state of keys idle past every window (bounded memory), a chunk at a time."""
    @app.timer(interval=settings.state_expiry_interval_s)
    async def expire_idle_state() -> None:
        keys = list(table.data.keys())
        for start in range(0, len(keys), chunk):
            present = [(k, v) for k in keys[start:start + chunk] if (v := table.data.get(k)) is not None]
            for key, partition in scorer.expired(present):
                del table.data[key]
                table.send_changelog(partition, key, None, value_serializer="raw")
                metrics.expired_keys.labels(entity=scorer.task.features.entity).inc()
            await asyncio.sleep(0)  # let scoring go on between chunks


def _observe(metrics: Metrics, task: ScoringTask, result: BatchResult, consumed: int,
             latency: float) -> None:
    """Count a batch once Kafka has its outputs; ``latency`` is fetch → acknowledged, for each record."""
    metrics.events_consumed.labels(topic=task.input_topic).inc(consumed)
    metrics.batch_size.labels(topic=task.input_topic).observe(consumed)
    for topic, count in Counter(out.topic for out in result.outputs).items():
        metrics.outputs_produced.labels(topic=topic).inc(count)  # one label lookup per topic
    for reason in result.invalid:
        metrics.invalid_events.labels(topic=task.input_topic, reason=reason).inc()
    if result.alerts:
        metrics.fraud_alerts.inc(result.alerts)
    if result.alerts_withheld:
        metrics.fraud_alerts_withheld.inc(result.alerts_withheld)
    if result.anomalies:
        metrics.anomaly_alerts.labels(task=task.name).inc(result.anomalies)
    if result.late:
        metrics.late_events.labels(topic=task.input_topic).inc(result.late)
    if result.state_resets:
        metrics.state_resets.labels(topic=task.input_topic).inc(result.state_resets)
    if result.replayed:
        metrics.replayed_events.labels(topic=task.input_topic).inc(result.replayed)
    score_hist = metrics.score.labels(task=task.name)
    for score in result.scores:
        score_hist.observe(score)
    latency_hist = metrics.event_to_score_latency.labels(topic=task.input_topic)
    for _ in range(consumed):
        latency_hist.observe(latency)


def add_metrics_page(app: faust.App, registry: CollectorRegistry) -> None:
    """``/metrics`` on Faust's web server, in Prometheus' text format."""
    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        content_type = CONTENT_TYPE_LATEST.split(";")[0]  # aiohttp sets the charset itself
        return web.bytes(generate_latest(registry), content_type=content_type)


def quiet_root_logger(app: faust.App, log_level: str) -> None:
    """Undo the DEBUG root logger Faust's terminal spinner sets, which slows the hot path."""
    name = {"warn": "WARNING", "crit": "CRITICAL"}.get(log_level.lower(), log_level.upper())
    level = logging.getLevelName(name)

    @app.task
    async def reset_root_logger() -> None:
        logging.getLogger().setLevel(level if isinstance(level, int) else logging.WARNING)
