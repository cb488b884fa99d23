"""Prototype "conductor batch": the lighter hook — a custom Conductor buffers raw messages per task.

Faust's fetch loop is untouched: every record is still turned into a ``Message`` and handed to the
conductor through ``wait_first`` (two tasks per message). But for the input topics the conductor's
per-partition callback (``Conductor._build_handler``, selected by ``Transport.Conductor``) only
appends the message to a buffer: no decode, no ``Event``, no channel queue, no stream, no agent.
A full buffer (``batch_size``), or a timer after ``batch_timeout_s``, sends the buffer through the
same batch handler as the batch-drain prototype (pure core → table store → ``send_batch``), and
each message is acknowledged to Faust's consumer (``Consumer.ack``) once Kafka acknowledged the
batch, so Faust's own commit bookkeeping commits it (at-least-once). Messages are tracked
(``track_message``) on arrival, so Faust's ``wait_empty`` on rebalance waits for them.

    python -m bench.prototypes.conductor_batch worker
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from typing import Any

import faust
from faust.transport.conductor import Conductor
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CollectorRegistry

from bench.common import app_options, make_scorer
from bench.prototypes.batch_drain import MAX_IN_FLIGHT, BatchHandler, _env, _keep_state_expiry
from stream.app import _add_metrics_page, _observe, _quiet_root_logger
from stream.metrics import Metrics
from stream.pipeline import TASKS, InputRecord
from stream.settings import Settings


class Buffer:
    """One task's messages waiting to be scored, and its batches in flight."""

    def __init__(self, app: faust.App, handler: BatchHandler, size: int, timeout: float) -> None:
        self.app = app
        self.handler = handler
        self.size = size
        self.timeout = timeout
        self.messages: list[Any] = []
        self.first_at = 0.0
        self.in_flight: deque[asyncio.Future] = deque()

    async def add(self, message: Any) -> None:
        self.app.consumer.track_message(message)
        if not self.messages:
            self.first_at = time.monotonic()
        self.messages.append(message)
        if len(self.messages) >= self.size:
            await self.flush()

    async def flush(self) -> None:
        messages, self.messages = self.messages, []
        if not messages:
            return
        records = [InputRecord(m.value, m.key, m.partition, m.offset) for m in messages]
        result, futures = self.handler.send(records)
        done = asyncio.gather(*futures)
        consumer = self.app.consumer
        fetched_at = self.first_at
        handler = self.handler

        def acknowledge(fut: asyncio.Future) -> None:
            if fut.cancelled() or fut.exception() is not None:
                asyncio.ensure_future(self.app.crash(fut.exception() or RuntimeError("cancelled")))
                return
            ack = consumer.ack
            for message in messages:
                ack(message)
            latency = time.monotonic() - fetched_at
            _observe(handler.metrics, handler.task, result, len(messages), [latency] * len(messages))

        done.add_done_callback(acknowledge)
        self.in_flight.append(done)
        while self.in_flight and self.in_flight[0].done():
            self.in_flight.popleft()
        while len(self.in_flight) > MAX_IN_FLIGHT:
            await asyncio.wait([self.in_flight.popleft()])


class BatchConductor(Conductor):
    """Routes the input topics' messages to their buffers instead of channels."""

    def _build_handler(self, tp: Any, channels: Any) -> Any:
        buffer = getattr(self.app, "batch_buffers", {}).get(tp.topic)
        if buffer is None:
            return super()._build_handler(tp, channels)
        return buffer.add


class BatchConductorTransport(faust_aiokafka.Transport):
    Conductor = BatchConductor


def create_app(settings: Settings, registry: CollectorRegistry | None = None,
               log_level: str = "warn", standby_replicas: int = 0) -> faust.App:
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.app_id, **app_options(settings),
                    table_standby_replicas=standby_replicas,
                    producer_linger_ms=1, producer_max_batch_size=256 * 1024)
    app.transport = BatchConductorTransport(app.conf.broker_consumer, app)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics.create(registry)
    app.batch_buffers = {}
    for task in TASKS.values():
        topic = app.topic(task.input_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", partitions=settings.partitions)
        table = app.Table(f"{task.features.entity}-state", key_type=bytes, value_type=bytes,
                          partitions=settings.partitions)
        scorer = make_scorer(task, settings)
        handler = BatchHandler(app, task, table, metrics, scorer, settings.partitions)
        _keep_state_expiry(app, table, scorer, settings, metrics)
        app.batch_buffers[task.input_topic] = Buffer(app, handler, settings.batch_size,
                                                     settings.batch_timeout_s)
        topic.__aiter__()  # subscribe, as an agent's ``async for`` would

    @app.timer(max(0.005, settings.batch_timeout_s / 2))
    async def flush_stale() -> None:
        now = time.monotonic()
        for buffer in app.batch_buffers.values():
            if buffer.messages and now - buffer.first_at >= buffer.timeout:
                await buffer.flush()

    _add_metrics_page(app, registry)
    _quiet_root_logger(app, log_level)
    return app


def main() -> int:
    from bench.common import bench_settings

    faust_args = [a for a in sys.argv[1:] if a != "worker"]
    if not any(a.startswith(("-l", "--loglevel")) for a in faust_args):
        faust_args = ["--loglevel", "warn", *faust_args]
    app = create_app(bench_settings(), standby_replicas=int(_env("BENCH_STANDBY_REPLICAS", "0")))
    loop = _env("BENCH_LOOP", "")
    sys.argv = ["conductor_batch", *(["--loop", loop] if loop else []), "worker", *faust_args]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
