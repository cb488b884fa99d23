"""Shared pieces of the benchmark: its own broker settings, events, topic resets, loading, reading outputs.

Everything here talks to the benchmark's *own* broker (default ``127.0.0.1:39092``, data in
``.scorestream/bench``) so that it never collides with a developer's or the tests' broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from features.time import DAY
from online_models.task_models import TaskModels
from simulator import SimulatorConfig, simulate
from stream import admin, topics
from stream.events import Transaction
from stream.pipeline import BatchScorer, ScoringTask
from stream.producer import to_record
from stream.settings import Settings
from stream.terminal_view import TerminalView

REPO = Path(__file__).resolve().parents[1]
BENCH_BOOTSTRAP = "127.0.0.1:39092"
SCORE_TOPICS = (topics.LEAD_SCORES, topics.TRANSACTION_SCORES)
#: Every topic a worker reads, re-created empty for each run: ``training-examples`` above all,
#: or a run's fresh models would also learn every example of the runs before it.
WORKER_INPUTS = topics.INPUT_TOPICS + topics.LABEL_TOPICS + topics.INTERNAL_TOPICS


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM end the benchmark as Ctrl-C does, through its ``finally`` blocks, which stop
    the workers, trainers and peers it started: they run in process groups of their own, so a
    benchmark killed outright leaves them running.

    >>> import signal
    >>> stop_cleanly_on_sigterm()
    >>> signal.getsignal(signal.SIGTERM) is _interrupt
    True
    >>> _ = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    """
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def bench_settings(extra_env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """The benchmark's settings: its own broker and home unless the environment says otherwise.

    ``extra_env`` is a contender's configuration (``SCORESTREAM_*`` variables) on top.
    """
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("SCORESTREAM_KAFKA_BOOTSTRAP", BENCH_BOOTSTRAP)
    env.setdefault("SCORESTREAM_KAFKA_CONTROLLER_PORT", "39093")
    env.setdefault("SCORESTREAM_HOME", str(REPO / ".scorestream" / "bench"))
    env.setdefault("SCORESTREAM_KAFKA_CACHE", str(REPO / ".scorestream" / "cache"))
    return replace(Settings.from_env(env), **overrides)


def make_scorer(task: ScoringTask, settings: Settings) -> BatchScorer:
    """The engine's scorer for a task, built as ``stream.app`` builds it from these settings.

    The fraud task's terminal features come from a :class:`InlineTerminals` (each
    transaction told to the terminal history just before it is scored), the same
    features and work as the worker's terminal view minus its own consumer.
    """
    kwargs: dict[str, object] = {}
    if hasattr(settings, "allowed_lateness_s"):
        kwargs["lateness_ms"] = int(settings.allowed_lateness_s * 1000)
    if task.terminal_features:
        kwargs["context"] = InlineTerminals(settings).features
    return BatchScorer(task, settings.fraud_alert_threshold, models=worker_models(task.name, settings),
                       **kwargs)


def worker_models(task: str, settings: Settings) -> TaskModels:
    """Fresh models of a task as a worker with these settings holds them (champion, challengers)."""
    return TaskModels(task, n_trees=settings.arf_trees, champion=settings.champion(task),
                      holds=settings.worker_holds)


class InlineTerminals:
    """The terminal view without its consumer: a transaction is told to the history as it is scored."""

    def __init__(self, settings: Settings) -> None:
        self.view = TerminalView(int(settings.terminal_delay_days * DAY), 0, 0.0)

    def features(self, tx: Transaction, partition: int) -> dict[str, float]:
        self.view.history.add_transaction(tx.event_id, tx.terminal_id, tx.ts_ms)
        return self.view.features(tx, partition)


def app_options(settings: Settings) -> dict[str, object]:
    """The ``faust.App`` options ``stream.app.create_app`` passes, for prototypes to start from."""
    options: dict[str, object] = dict(
        broker=f"kafka://{settings.kafka_bootstrap}", datadir=str(settings.worker_dir),
        store="memory://", topic_partitions=settings.partitions, topic_allow_declare=True,
        consumer_auto_offset_reset="earliest", web_port=settings.web_port, web_host="0.0.0.0",
        web_in_thread=False)
    if hasattr(settings, "session_timeout_s"):
        options.update(broker_session_timeout=settings.session_timeout_s,
                       broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3))
    return options


@dataclass(frozen=True, slots=True)
class Event:
    """One input event as the broker will hold it."""

    topic: str
    key: bytes
    value: bytes
    ts_ms: int
    partition: int
    event_id: str


#: The hot path benchmark's stream: labels come within minutes (fraud labels within 7, conversions
#: within 6 after the session), inside the 15-minute label horizons the engine is run with
#: (``bench.engine.STEADY_STATE_ENV``), so that the examples it learns hold frauds and conversions
#: at the stream's rates, as at steady state, not only the horizon's negatives.
HOTPATH_SIMULATOR = SimulatorConfig(fraud_label_delay_days=(0.0, 0.005), conversion_delay_hours=(0.0, 0.1))


def make_events(count: int, seed: int, partitions: int, labels: bool = False,
                config: SimulatorConfig | None = None) -> list[Event]:
    """``count`` simulated input events (web events and transactions), in simulator order; with
    ``labels``, the fraud labels and conversions the simulator sends meanwhile too (on top)."""
    partitioner = DefaultPartitioner()
    all_partitions = list(range(partitions))
    wanted = topics.INPUT_TOPICS + (topics.LABEL_TOPICS if labels else ())
    out: list[Event] = []
    inputs = 0
    for raw in simulate(None, seed=seed, config=config):
        if raw["topic"] not in wanted:
            continue
        topic, key, value, ts = to_record(raw)
        out.append(Event(topic, key, value, ts, partitioner(key, all_partitions, all_partitions),
                         raw.get("event_id", "")))
        inputs += topic in topics.INPUT_TOPICS
        if inputs >= count:
            return out
    return out


def inputs_only(events: list[Event]) -> list[Event]:
    """The input events (web events and transactions) of ``events``."""
    return [e for e in events if e.topic in topics.INPUT_TOPICS]


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median with min and max, and every repetition."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


async def recreate_topics(settings: Settings, names: tuple[str, ...]) -> None:
    """Delete and create topics, so that they start empty."""
    await admin.delete_topics(settings, names=names)
    for attempt in range(20):
        try:
            await admin.create_topics(settings, names=names)
            await asyncio.sleep(1.0)  # let the new partitions' leaders settle before producing
            return
        except Exception:  # the broker may still be deleting them
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)


async def delete_prefixed(settings: Settings, prefix: str) -> None:
    """Delete a run's internal topics (changelogs, assignor topic)."""
    await admin.delete_topics(settings, names=(), prefix=prefix)


async def load(settings: Settings, events: Iterable[Event], use_event_time: bool = True) -> float:
    """Put events into their topics as fast as possible (batched per partition); returns seconds."""
    # idempotent: a retried batch (NotLeaderForPartition right after a topic was re-created)
    # must not land after the next one, or the input order would differ from the list's
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5,
                                max_batch_size=512 * 1024, acks="all", enable_idempotence=True)
    await producer.start()
    started = time.perf_counter()
    try:
        by_tp: dict[tuple[str, int], list[Event]] = defaultdict(list)
        for e in events:
            by_tp[(e.topic, e.partition)].append(e)
        futures = []
        now = int(time.time() * 1000)
        for (topic, partition), items in by_tp.items():
            batch = producer.create_batch()
            for e in items:
                ts = e.ts_ms if use_event_time else now
                if batch.append(key=e.key, value=e.value, timestamp=ts) is None:
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=e.key, value=e.value, timestamp=ts)
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer; aiokafka's group-less coordinator may raise CancelledError from its own task."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # a real cancellation of ours: let it through
            raise


async def end_offsets(settings: Settings, names: tuple[str, ...]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in names for p in range(settings.partitions)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await stop_consumer(consumer)


def count_since(now: dict[TopicPartition, int], base: dict[TopicPartition, int]) -> int:
    return sum(now[tp] - base.get(tp, 0) for tp in now)


async def wait_for_count(settings: Settings, names: tuple[str, ...], base: dict[TopicPartition, int],
                         expected: int, timeout: float, alive: object = None) -> int:
    """Poll end offsets until ``expected`` records arrived since ``base``; returns the count seen."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = list(base)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = count_since(dict(await consumer.end_offsets(tps)), base)
            if seen >= expected:
                return seen
            if callable(alive) and not alive():
                return seen
            await asyncio.sleep(0.2)
        return seen
    finally:
        await stop_consumer(consumer)


async def wait_quiet(settings: Settings, names: tuple[str, ...], base: dict[TopicPartition, int],
                     expected: int, timeout: float, quiet_s: float = 4.0) -> int:
    """Like :func:`wait_for_count`, then until no record has arrived for ``quiet_s`` seconds.

    With duplicates (at-least-once replays) the count can reach ``expected`` before every
    event has its score: waiting for quiet avoids calling those "missing".
    """
    seen = await wait_for_count(settings, names, base, expected, timeout)
    deadline = time.monotonic() + timeout
    last, last_change = seen, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < quiet_s:
        await asyncio.sleep(0.5)
        now = count_since(await end_offsets(settings, names), base)
        if now != last:
            last, last_change = now, time.monotonic()
    return last


async def read_since(settings: Settings, base: dict[TopicPartition, int],
                     upto: dict[TopicPartition, int]) -> list[tuple[str, int, bytes]]:
    """Every record between two offset snapshots, as (topic, timestamp ms, value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    out: list[tuple[str, int, bytes]] = []
    try:
        wanted = {tp: upto[tp] for tp in upto if upto[tp] > base.get(tp, 0)}
        if not wanted:
            return out
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, base.get(tp, 0))
        remaining = dict(wanted)
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, records in batches.items():
                if tp not in remaining:
                    continue
                for r in records:
                    if r.offset < remaining[tp]:
                        out.append((tp.topic, r.timestamp, r.value))
                if records and records[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
                    consumer.pause(tp)
        return out
    finally:
        await stop_consumer(consumer)


async def group_stable(settings: Settings, group: str, members: int, timeout: float = 60) -> bool:
    """Wait until a consumer group is Stable with ``members`` members that all have an assignment."""
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await client.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                described = await client.describe_consumer_groups([group])
                state, n = _group_state(described)
                if state == "Stable" and n == members:
                    return True
            except Exception:
                pass
            await asyncio.sleep(0.3)
        return False
    finally:
        await client.close()


def _group_state(described: object) -> tuple[str, int]:
    """(state, member count) from aiokafka's DescribeGroups response(s)."""
    for response in described if isinstance(described, list) else [described]:
        for group in response.groups:
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            return group[2], len(group[5])
    return "", 0
