"""Issue #5's "Exactly River": a stream with labels delivered at once, and the check of published scores.

:func:`immediate_labels_stream` is the simulator's stream with every transaction
followed by its fraud label (same ``ts``) and every conversion at the end of its
session. :func:`differences` replays the published scores against River's own
loop (``online_models.testing.river_replay``) in the learning order each score
states (its ``training_position``), and gives the largest difference per model.
Both the pure test and the broker test use them.
"""

from __future__ import annotations

from collections.abc import Iterable

from river import base, metrics

from online_models.registry import DEFAULT_OPTIONS, ModelOptions, make_model
from online_models.task_models import METRIC_WINDOW
from online_models.testing import river_replay
from simulator import SimulatorConfig
from simulator.engine import simulate_with_truth
from stream import topics
from stream.events import parse_ts

#: About 20 days of event time for 2 000 inputs: many lead sessions also reach their 7-day horizon.
CONFIG = SimulatorConfig(input_events_per_day=100.0, fraud_rate=0.05, conversion_delay_hours=(0.0, 0.0))


def immediate_labels_stream(inputs: int, seed: int = 0, config: SimulatorConfig = CONFIG) -> list[dict]:
    """``inputs`` input events; each transaction followed by its fraud label, conversions at once.

    Transaction times are made distinct (a millisecond apart if they collide), so that a
    join with no grace never meets a label before the snapshot of its own transaction.
    """
    events: list[dict] = []
    last_tx = 0
    count = 0
    for event, scenario in simulate_with_truth(None, seed, config):
        topic = event["topic"]
        if topic == topics.FRAUD_LABELS:
            continue  # the simulator's delayed labels: replaced by immediate ones
        if topic == topics.TRANSACTIONS:
            ts = max(parse_ts(event["ts"]), last_tx + 1)
            last_tx = ts
            event = {**event, "ts": ts}
            events.append(event)
            events.append({"topic": topics.FRAUD_LABELS, "event_id": event["event_id"], "ts": ts,
                           "is_fraud": scenario is not None})
        else:
            events.append(event)
        count += topic in topics.INPUT_TOPICS
        if count == inputs:
            return events
    return events


def published(body: dict) -> dict[str, float]:
    """Every model's score in a score message: the champion's and the challengers'."""
    champion = body["model"].split(".", 1)[1]
    return {champion: body["score"], **body["challengers"]}


def differences(task: str, examples: Iterable[tuple[int, dict]], scores: list[dict],
                options: ModelOptions = DEFAULT_OPTIONS) -> dict[str, float]:
    """The largest |published - River| per model over ``scores`` (score messages, in order).

    ``examples`` are ``(offset, body)`` records of ``training-examples`` (every task).
    """
    learned = [(offset, body["features"], body["label"]) for offset, body in examples
               if body["task"] == task]
    scored = [(body["training_position"], body["features"]) for body in scores]
    river = river_replay(task, learned, scored, options)
    worst: dict[str, float] = {}
    for body, theirs in zip(scores, river, strict=True):
        ours = published(body)
        assert set(ours) <= set(theirs), (sorted(ours), sorted(theirs))
        for name, score in ours.items():
            worst[name] = max(worst.get(name, 0.0), abs(score - theirs[name]))
    return worst


def river_progressive(task: str, names: Iterable[str], examples: Iterable[tuple[int, dict]],
                      options: ModelOptions = DEFAULT_OPTIONS,
                      ) -> tuple[dict[str, base.Classifier], dict[str, float]]:
    """River's test-then-train loop over a task's training examples, for the models ``names``.

    Each model scores an example (``predict_proba_one``), its rolling ROC AUC is updated
    with that score, then it learns the example: what ``scorestream challengers`` does.
    Returns the models after the last example and each one's rolling ROC AUC.
    """
    models = {name: make_model(task, name, options) for name in names}
    roc_auc = {name: metrics.RollingROCAUC(window_size=METRIC_WINDOW) for name in models}
    for _, body in examples:
        if body["task"] != task:
            continue
        for name, model in models.items():
            roc_auc[name].update(body["label"], model.predict_proba_one(body["features"]).get(True, 0.0))
            model.learn_one(body["features"], body["label"])
    return models, {name: metric.get() for name, metric in roc_auc.items()}


def moving(scores: list[dict]) -> dict[str, int]:
    """How many distinct published scores (to 6 digits) each model gave: learned models' scores move."""
    values: dict[str, set[float]] = {}
    for body in scores:
        for name, score in published(body).items():
            values.setdefault(name, set()).add(round(score, 6))
    return {name: len(distinct) for name, distinct in values.items()}
