"""River's own loop: the yardstick for the engine when a costly model (the forest) is champion.

The issue's target: "with ARF as champion the engine stays within 15 % of River's own
ARF loop". River's own loop here is the tight ``predict_proba_one``-then-``learn_one``
loop over the same feature vectors the engine computes (features are computed first,
with the engine's own core, and not timed), with the models a contender's worker holds
(its champions, and ``hst`` scoring then learning each transaction). No Kafka, no label
join, no encoding: only what River itself does.

It learns every event at once (River's loop), where the engine learns every transaction
and every *session* (one example per session for leads, after its horizon): a little more
learning for River's loop, none of it for a label that is not there yet.

Labels come from the simulator's truth: a transaction is positive if it is a fraud, a
web event if its visitor converts at some point of the stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

from bench.ceiling import task_batches
from bench.common import Event, make_scorer, worker_models
from simulator import SimulatorConfig
from simulator import topics as sim_topics
from simulator.engine import simulate_with_truth
from stream.pipeline import TASKS
from stream.settings import Settings

#: Events read past the backlog's last one for the conversions of its visitors (the hot path's
#: stream converts within minutes: ``bench.common.HOTPATH_SIMULATOR``).
TRUTH_LOOKAHEAD = 20_000


def truth(events: list[Event], seed: int, config: SimulatorConfig | None = None) -> dict[str, bool]:
    """Each event's label by its id: a fraud, or a web event of a visitor who converts."""
    wanted = {e.event_id for e in events}
    fraud: dict[str, bool] = {}
    visitor_of: dict[str, str] = {}
    converted: set[str] = set()
    after_last = 0  # events read since the last wanted one: conversions come a little later
    for event, scenario in simulate_with_truth(None, seed, config):
        if len(fraud) + len(visitor_of) == len(wanted):
            after_last += 1
            if after_last > TRUTH_LOOKAHEAD:
                break
        topic = event["topic"]
        if topic == sim_topics.CONVERSIONS:
            converted.add(event["visitor_id"])
        elif topic in sim_topics.INPUT_TOPICS and event["event_id"] in wanted:
            if topic == sim_topics.TRANSACTIONS:
                fraud[event["event_id"]] = scenario is not None
            else:
                visitor_of[event["event_id"]] = event["visitor_id"]
    return {**fraud, **{event_id: visitor in converted for event_id, visitor in visitor_of.items()}}


def feature_vectors(events: list[Event], settings: Settings) -> Iterator[tuple[str, str, dict]]:
    """``(task, event_id, features)`` of every event, as the engine's core computes them (in the
    ceiling's batches: each task's events in order)."""
    scorers = {name: make_scorer(task, settings) for name, task in TASKS.items()}
    stores: dict[str, dict[bytes, bytes]] = {name: {} for name in TASKS}
    for name, records in task_batches(events, settings.batch_size):
        result = scorers[name].score_batch(records, stores[name].get)
        for key, (_, value) in result.state_writes.items():
            stores[name][key] = value
        for out in result.outputs:
            if out.topic == TASKS[name].score_topic:
                body = orjson.loads(out.value)
                yield name, body["event_id"], body["features"]


def run_river_loop(events: list[Event], settings: Settings, labels: dict[str, bool]) -> dict[str, float]:
    """Events per second (wall) and CPU µs per event of River's own loop with the worker's models.

    ``labels`` are :func:`truth`'s for ``events``.
    """
    vectors = [(task, x, labels.get(event_id, False))
               for task, event_id, x in feature_vectors(events, settings)]
    models = {name: worker_models(name, settings) for name in TASKS}
    wall, cpu = time.perf_counter(), time.process_time()
    for task, x, y in vectors:
        task_models = models[task]
        for model in task_models.models.values():
            model.predict_proba_one(x)
            model.learn_one(x, y)
        if task_models.detector is not None:
            task_models.detector.score_one(x)
            task_models.detector.learn_one(x)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"events_per_s": len(vectors) / wall, "cpu_us_per_event": cpu / len(vectors) * 1e6}
