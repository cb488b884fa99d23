"""Helpers for testing the learning layer without Kafka: seeded labelled vectors, River's loop replayed.

The vectors use the feature names of ``features/registry.py`` (numbers, and a
few categorical strings that are sometimes absent) and the labels depend on
them, so that trees split and metrics move within a few hundred examples.

>>> x, y = next(labelled_stream("lead", 1))
>>> sorted(x)[:3], type(y)
(['current_session_depth', 'demo_or_form_events_7d', 'device'], <class 'bool'>)
>>> list(labelled_stream("fraud", 5, seed=1)) == list(labelled_stream("fraud", 5, seed=1))
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from online_models.label_join import Features
from online_models.registry import ANOMALY_DETECTORS, DEFAULT_OPTIONS, ModelOptions, make_model, model_names
from online_models.task_models import ANOMALY


def _fraud(rng: random.Random) -> tuple[Features, float]:
    average = rng.uniform(10, 100)
    fraud_like = rng.random() < 0.15
    amount = round(average * (rng.uniform(2, 6) if fraud_like else rng.uniform(0.3, 1.7)), 2)
    x: Features = {
        "amount": amount,
        "customer_avg_amount_7d": round((6 * average + amount) / 7, 2),
        "customer_tx_count_1d": rng.randint(1, 12 if fraud_like else 5),
        "seconds_since_last_tx": rng.expovariate(1 / (300 if fraud_like else 20_000)),
        "is_night": 1.0 if rng.random() < (0.4 if fraud_like else 0.1) else 0.0,
    }
    if rng.random() < 0.7:
        x["merchant_category"] = rng.choice(["grocery", "online_retail", "travel", "fuel"])
    return x, (2.5 if fraud_like else -2.5)


def _lead(rng: random.Random) -> tuple[Features, float]:
    buyer = rng.random() < 0.2
    x: Features = {
        "page_views_7d": rng.randint(1, 25 if buyer else 10),
        "pricing_views_7d": rng.randint(0, 4 if buyer else 1),
        "demo_or_form_events_7d": rng.randint(0, 3 if buyer else 1),
        "current_session_depth": rng.randint(1, 12),
        "is_form_submit": 1.0 if rng.random() < (0.3 if buyer else 0.02) else 0.0,
        "device": rng.choice(["desktop", "desktop", "mobile"] if buyer else ["mobile", "desktop", "tablet"]),
    }
    if rng.random() < 0.8:
        x["utm_source"] = rng.choice(["linkedin", "google"] if buyer else ["facebook", "google", "direct"])
    return x, (3.0 if buyer else -3.0)


def labelled_stream(task: str, n: int, seed: int = 0) -> Iterator[tuple[Features, bool]]:
    """``n`` seeded ``(features, label)`` pairs for ``task`` (``fraud`` or ``lead``)."""
    rng = random.Random(seed)
    make = {"fraud": _fraud, "lead": _lead}[task]
    for _ in range(n):
        x, logit = make(rng)
        yield x, rng.random() < 1 / (1 + math.exp(-logit))


def river_replay(task: str, examples: list[tuple[int, Features, bool]],
                 scored: list[tuple[int, Features]],
                 options: ModelOptions = DEFAULT_OPTIONS) -> list[dict[str, float]]:
    """What River's own models say for each published score, replaying the engine's learning order.

    ``examples`` are the task's training examples ``(position, features, label)`` in
    ``training-examples`` order; ``scored`` is each published score's
    ``(training_position, features)`` in publication order. Fresh models from the
    registry's factories learn (``learn_one``) every example up to a score's
    position, then ``predict_proba_one`` on the score's features: River's own
    predict-then-learn loop, interleaved as the engine says it was.

    >>> stream = list(labelled_stream("lead", 3))
    >>> examples = [(i, x, y) for i, (x, y) in enumerate(stream)]
    >>> replayed = river_replay("lead", examples, [(-1, stream[0][0]), (2, stream[0][0])],
    ...                         ModelOptions(n_trees=1))
    >>> sorted(replayed[0]), replayed[0]["logreg"] != replayed[1]["logreg"]
    (['arf', 'hoeffding', 'logreg', 'rules'], True)
    """
    models = {name: make_model(task, name, options) for name in model_names(task)}
    detector = ANOMALY_DETECTORS[task](seed=options.seed) if task in ANOMALY_DETECTORS else None
    done, last = 0, -1  # examples learned so far, the previous score's position
    replayed = []
    for position, x in scored:
        if position < last:
            msg = f"training position went back from {last} to {position}"
            raise ValueError(msg)
        last = position
        while done < len(examples) and examples[done][0] <= position:  # learn up to the position
            _, features, label = examples[done]
            for model in models.values():
                model.learn_one(features, label)
            if detector is not None:
                detector.learn_one(features)
            done += 1
        scores = {name: model.predict_proba_one(x).get(True, 0.0) for name, model in models.items()}
        if detector is not None:
            scores[ANOMALY] = detector.score_one(x)
        replayed.append(scores)
    return replayed
