"""The ceiling (the engine's pure batch core in a tight loop, no Kafka) and its per-component costs.

The ceiling runs ``BatchScorer.score_batch`` for both tasks over pre-generated record bytes, in
batches of ``batch_size`` per task in arrival order, with a dict as the state store (state written
back after every batch, as the worker does).

The per-component costs run the same loop with timing wrappers around what ``score_batch`` calls
(``task.parse``, ``features.update``, ``features.compute``, ``model.predict_proba_one``,
``orjson.dumps`` of the output body, the state's (de)serialisation) and then the worker's metrics
update for each batch; the wrapper's own cost, measured on a no-op, is subtracted. What is left
of the loop's time is the core's own bookkeeping ("batch overhead").
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.common import Event, make_scorer
from stream import pipeline
from stream.pipeline import TASKS, BatchScorer, InputRecord
from stream.settings import Settings


def task_batches(events: list[Event], batch_size: int) -> list[tuple[str, list[InputRecord]]]:
    """(task name, records) batches in arrival order, as the two agents would see them."""
    by_topic = {task.input_topic: name for name, task in TASKS.items()}
    pending: dict[str, list[InputRecord]] = defaultdict(list)
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for e in events:
        name = by_topic[e.topic]
        offset = offsets[(e.topic, e.partition)]
        offsets[(e.topic, e.partition)] += 1
        pending[name].append(InputRecord(e.value, e.key, e.partition, offset))
        if len(pending[name]) >= batch_size:
            out.append((name, pending.pop(name)))
    out.extend((name, records) for name, records in pending.items() if records)
    return out


def run_ceiling(events: list[Event], settings: Settings) -> dict[str, float]:
    """Events per second (wall) and CPU µs per event of the pure core over ``events``."""
    batches = task_batches(events, settings.batch_size)
    scorers = {name: make_scorer(task, settings) for name, task in TASKS.items()}
    stores: dict[str, dict[bytes, bytes]] = {name: {} for name in TASKS}
    wall, cpu = time.perf_counter(), time.process_time()
    for name, records in batches:
        store = stores[name]
        result = scorers[name].score_batch(records, store.get)
        for key, (_, value) in result.state_writes.items():
            store[key] = value
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"events_per_s": len(events) / wall, "cpu_us_per_event": cpu / len(events) * 1e6}


class _Clock:
    """Accumulates time per component; ``wrap`` times a callable."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.overhead = 0.0

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        total, calls, clock = self.total, self.calls, time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                total[name] += clock() - start
                calls[name] += 1

        return timed

    def calibrate(self) -> None:
        probe = _Clock()
        noop = probe.wrap("noop", lambda *a: None)
        for _ in range(200_000):
            noop(1)
        self.overhead = probe.total["noop"] / probe.calls["noop"]

    def net(self, name: str) -> float:
        return max(0.0, self.total[name] - self.calls[name] * self.overhead)


class _Proxy:
    """Delegates every attribute to ``target`` except those given."""

    def __init__(self, target: Any, **overrides: Any) -> None:
        self._target = target
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _timed_scorer(name: str, clock: _Clock, settings: Settings) -> BatchScorer:
    task = TASKS[name]
    features = task.features
    timed_features = _Proxy(
        features,
        update=clock.wrap("feature update", features.update),
        compute=clock.wrap("feature compute", features.compute),
        **({"state_from_bytes": clock.wrap("state (de)serialise", features.state_from_bytes)}
           if hasattr(features, "state_from_bytes") else {}),
    )
    timed_task = dataclasses.replace(task, parse=clock.wrap("decode + validate", task.parse),
                                     features=timed_features)
    scorer = make_scorer(timed_task, settings)
    models = scorer.models.models
    for model_name, model in models.items():  # every model the worker holds scores each event
        models[model_name] = _Proxy(model, predict_proba_one=clock.wrap(
            f"predict {model_name}", model.predict_proba_one))
    return scorer


def run_components(events: list[Event], settings: Settings) -> dict[str, float]:
    """µs per event of each component of the core, plus the worker's metrics update."""
    clock = _Clock()
    clock.calibrate()
    dumps = pipeline.orjson.dumps
    encode = clock.wrap("encode", dumps)
    serialise = clock.wrap("state (de)serialise", dumps)
    loads = clock.wrap("state (de)serialise", pipeline.orjson.loads)

    def dumps_by_kind(obj: Any, *args: Any) -> bytes:
        return encode(obj, *args) if isinstance(obj, dict) else serialise(obj, *args)

    batches = task_batches(events, settings.batch_size)
    scorers = {name: _timed_scorer(name, clock, settings) for name in TASKS}
    stores: dict[str, dict[bytes, bytes]] = {name: {} for name in TASKS}
    results = []
    original = pipeline.orjson
    pipeline.orjson = _Proxy(original, dumps=dumps_by_kind, loads=loads)
    try:
        wall = time.perf_counter()
        for name, records in batches:
            store = stores[name]
            result = scorers[name].score_batch(records, store.get)
            for key, (_, value) in result.state_writes.items():
                store[key] = value
            results.append((name, result, len(records)))
        wall = time.perf_counter() - wall
    finally:
        pipeline.orjson = original
    n = len(events)
    predicts = sorted(part for part in clock.calls if part.startswith("predict "))
    us = {part: clock.net(part) / n * 1e6 for part in
          ("decode + validate", "feature update", "feature compute", *predicts, "encode",
           "state (de)serialise")}
    wrapped_calls = sum(clock.calls.values())
    loop_net = wall - wrapped_calls * clock.overhead
    us["batch overhead"] = max(0.0, loop_net / n * 1e6 - sum(us.values()))
    us["metrics"] = _metrics_cost(results) / n * 1e6
    return us


def _metrics_cost(results: list[tuple[str, Any, int]]) -> float:
    """Seconds the worker's per-batch metrics update takes for these results (fresh registry)."""
    try:
        from prometheus_client import CollectorRegistry

        from stream.app import _observe
        from stream.metrics import Metrics
    except ImportError:  # the app module moved: no figure rather than a wrong one
        return float("nan")
    metrics = Metrics.create(CollectorRegistry())
    started = time.perf_counter()
    for name, result, consumed in results:
        _observe(metrics, TASKS[name], result, consumed, 0.003)
    return time.perf_counter() - started
