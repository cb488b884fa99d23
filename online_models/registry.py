"""Every model, declared in one place: per task, a factory for each River model and the champion.

The champion's score is the one published. Adding a model is one entry here;
``tests/unit/test_model_registry.py`` checks every registered model.

>>> model = make_model("fraud", CHAMPIONS["fraud"])
>>> round(model.predict_proba_one({"amount": 12.0})[True], 4)  # before learning: the prior
0.003
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from river import base, compose, linear_model, preprocessing

#: Base rate of the positive class per task: an untrained model scores at its prior.
PRIORS = {"fraud": 0.003, "lead": 0.05}


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def prepare_features() -> base.Transformer:
    """Numbers standardised, strings (categorical features) one-hot encoded."""
    numbers = compose.SelectType(int, float) | preprocessing.StandardScaler()
    categories = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return numbers + categories


def scaled_logistic_regression(task: str) -> base.Classifier:
    """Logistic regression behind a standard scaler, starting at the task's prior."""
    return prepare_features() | linear_model.LogisticRegression(intercept_init=_logit(PRIORS[task]))


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its task, its name and how to build a fresh one."""

    task: str
    name: str
    factory: Callable[[str], base.Classifier]

    @property
    def full_name(self) -> str:
        return f"{self.task}.{self.name}"


MODELS: dict[tuple[str, str], ModelSpec] = {
    (spec.task, spec.name): spec
    for spec in (
        ModelSpec("fraud", "logreg", scaled_logistic_regression),
        ModelSpec("lead", "logreg", scaled_logistic_regression),
    )
}

#: The model whose score is published, per task.
CHAMPIONS = {"fraud": "logreg", "lead": "logreg"}


def make_model(task: str, name: str) -> base.Classifier:
    """A fresh, untrained model of a registered kind."""
    return MODELS[(task, name)].factory(task)
