"""Anomaly detection on transactions: River's HalfSpaceTrees behind a MinMaxScaler, and a threshold.

Half-space trees need features in [0, 1], hence the scaler; they only read
numbers, so categorical (string) features are dropped first. The loop is
River's: score, then learn. A score at or above the threshold is an anomaly
(an alert on ``anomaly-alerts``).

The detector learns from every example, flagged or not. River's
``anomaly.ThresholdFilter`` would instead stop learning from the points it
flags; with a fixed threshold that is a trap: once the usual scores drift
above the threshold, the detector never learns again (seen on the simulated
stream: every score stuck near 0.997).

>>> import random
>>> rng = random.Random(0)
>>> detector = make_detector()
>>> for _ in range(1000):
...     x = {"amount": rng.gauss(40, 10), "customer_tx_count_1d": rng.randint(1, 4), "device": "pos"}
...     score = detector.score_one(x)
...     detector.learn_one(x)
>>> normal = detector.score_one({"amount": 40.0, "customer_tx_count_1d": 2})
>>> odd = detector.score_one({"amount": 400.0, "customer_tx_count_1d": 40})
>>> round(normal, 3), round(odd, 3), is_anomaly(normal, 0.98), is_anomaly(odd, 0.98)
(0.913, 0.989, False, True)
"""

from __future__ import annotations

import numbers

from river import anomaly, compose, preprocessing

#: Scores at or above this are anomalies, by default (see docs/models.md for how it was chosen).
DEFAULT_THRESHOLD = 0.95


def make_detector(seed: int = 0, n_trees: int = 10, height: int = 8,
                  window_size: int = 250) -> compose.Pipeline:
    """A fresh detector: numbers only, min-max scaled, half-space trees; seeded."""
    trees = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    return compose.SelectType(numbers.Number) | preprocessing.MinMaxScaler() | trees


def check_threshold(threshold: float) -> float:
    """``threshold`` if it is a possible score (HalfSpaceTrees scores lie in [0, 1])."""
    if not 0.0 <= threshold <= 1.0:
        msg = f"anomaly threshold must be in [0, 1], got {threshold}"
        raise ValueError(msg)
    return threshold


def is_anomaly(score: float, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether an anomaly score reaches the threshold."""
    return score >= threshold
