"""Every benchmark candidate learns and scores with River's API: a broken one would show only
minutes into a quality run."""

from __future__ import annotations

import random

import pytest
from river import linear_model

from bench.candidates import CANDIDATES, MeanProbability, PositivesOversampled


def _examples(count: int = 300, seed: int = 1) -> list[tuple[dict, bool]]:
    """Numbers and a category; positives (about 5 %) are the large amounts."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        amount = rng.expovariate(1 / 50)
        x = {"amount": amount, "hour": float(rng.randrange(24)), "channel": rng.choice(["pos", "web"])}
        out.append((x, amount > 150))
    return out


@pytest.mark.parametrize(("task", "name"), [(t, n) for t, names in CANDIDATES.items() for n in names])
def test_every_candidate_learns_and_gives_a_probability(task: str, name: str) -> None:
    model = CANDIDATES[task][name](task, 0)
    for x, y in _examples():
        model.learn_one(x, y)
    p = model.predict_proba_one({"amount": 400.0, "hour": 3.0, "channel": "web"}).get(True, 0.0)
    assert 0.0 <= p <= 1.0


def test_mean_probability_averages_its_models() -> None:
    first, second = linear_model.LogisticRegression(), linear_model.LogisticRegression(intercept_init=2.0)
    both = MeanProbability([first, second])
    x = {"a": 1.0}
    expected = (first.predict_proba_one(x)[True] + second.predict_proba_one(x)[True]) / 2
    assert both.predict_proba_one(x)[True] == pytest.approx(expected)


def test_oversampling_draws_positives_more_often_and_restores_the_rate() -> None:
    forest = CANDIDATES["fraud"]["arf_l1_adwin1e-5"]("fraud", 0)
    oversampled = PositivesOversampled(forest, factor=10)
    seen: list[float] = []
    learn = forest.learn_one
    forest.learn_one = lambda x, y, **kw: (seen.append(forest.lambda_value), learn(x, y))  # type: ignore[method-assign]
    oversampled.learn_one({"amount": 1.0}, True)
    oversampled.learn_one({"amount": 1.0}, False)
    assert seen == [10, 1] and forest.lambda_value == 1
