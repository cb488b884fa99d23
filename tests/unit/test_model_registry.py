"""Conformance checks run on every registered model."""

import random

import pytest

from online_models.registry import CHAMPIONS, MODELS, make_model

SPECS = sorted(MODELS)


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_model_scores_probabilities_and_learns(task, name):
    model = make_model(task, name)
    rng = random.Random(0)
    for _ in range(200):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(3, 2)}
        p = model.predict_proba_one(x).get(True, 0.0)
        assert 0.0 <= p <= 1.0
        model.learn_one(x, x["a"] > 0)
    assert model.predict_proba_one({"a": 2.0, "b": 3.0})[True] > model.predict_proba_one(
        {"a": -2.0, "b": 3.0})[True]


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_fresh_models_are_identical(task, name):
    x = {"a": 1.0}
    assert make_model(task, name).predict_proba_one(x) == make_model(task, name).predict_proba_one(x)


def test_every_task_has_a_registered_champion():
    for task, champion in CHAMPIONS.items():
        assert (task, champion) in MODELS
