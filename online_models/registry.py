"""Every model, declared in one place: per task, a factory for each River model and the champion.

Each task has the same four classifiers: ``logreg`` (logistic regression behind
a standard scaler), ``hoeffding`` (River's Hoeffding adaptive tree), ``arf``
(River's adaptive random forest) and ``rules`` (the rule baseline standing for
the previous scoring system, see :mod:`online_models.rules`). The champion's
score is the one published; the others are challengers scored in shadow.
The fraud task also has an anomaly detector (:mod:`online_models.anomaly`).

Adding a model is one entry in ``MODELS``; ``tests/unit/test_model_registry.py``
runs River's own estimator checks on every registered model.

>>> model = make_model("fraud", "logreg")
>>> round(model.predict_proba_one({"amount": 12.0})[True], 4)  # before learning: the prior
0.003
>>> dict(make_model("fraud", CHAMPIONS["fraud"]).predict_proba_one({"amount": 12.0}))  # no class seen yet
{}
>>> model_names("lead")
['arf', 'hoeffding', 'logreg', 'rules']
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from river import base, compose, drift, forest, linear_model, optim, preprocessing, tree

from online_models import anomaly, rules

#: Base rate of the positive class per task: an untrained model scores at its prior.
PRIORS = {"fraud": 0.003, "lead": 0.05}


@dataclass(frozen=True)
class ModelOptions:
    """The few knobs the factories take; everything else is River's defaults."""

    #: Trees of the adaptive random forest (a trained forest of 10 pickles to about 15 MB).
    n_trees: int = 10
    #: Seed of every stochastic model, so that replicas built alike stay identical.
    seed: int = 0


DEFAULT_OPTIONS = ModelOptions()


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def prepare_features() -> base.Transformer:
    """Numbers standardised, strings (categorical features) one-hot encoded.

    Features may come and go: a key absent from ``x`` is simply not used.

    >>> prep = prepare_features()
    >>> prep.learn_one({"amount": 10.0, "device": "mobile"})
    >>> sorted(prep.transform_one({"amount": 10.0, "device": "mobile"}).items())
    [('amount', 0.0), ('device_mobile', 1)]
    """
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categories = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return numeric + categories


#: Per-weight learning rates (AdaGrad) instead of River's default SGD(0.01): on the simulated streams
#: (tuning seed 1) ROC AUC +0.07 / +0.01 and AP +0.02 / +0.03 (fraud / leads), see docs/models.md.
LOGREG_OPTIMIZER = optim.AdaGrad
LOGREG_LEARNING_RATE = 0.05


def scaled_logistic_regression(task: str, options: ModelOptions = DEFAULT_OPTIONS) -> base.Classifier:
    """Logistic regression behind a standard scaler (and one-hot categories), starting at the prior."""
    return prepare_features() | linear_model.LogisticRegression(
        optimizer=LOGREG_OPTIMIZER(LOGREG_LEARNING_RATE), intercept_init=_logit(PRIORS[task]))


#: River's trees never split a leaf whose majority class exceeds ``max_share_to_split`` (default
#: 0.99), nor make a branch with less than ``min_branch_fraction`` (default 1 %) of the leaf's
#: examples. With 0.3 % fraud no leaf would ever split (measured: a single leaf after 200 000
#: transactions, ROC AUC 0.46); relaxed, the trees learn the rare class. Same for both tasks.
RARE_CLASS_SPLITS = {"max_share_to_split": 1.0, "min_branch_fraction": 1e-4}


def hoeffding_tree(task: str, options: ModelOptions = DEFAULT_OPTIONS) -> base.Classifier:
    """River's Hoeffding adaptive tree; strings are nominal features for it, numbers need no scaling."""
    return tree.HoeffdingAdaptiveTreeClassifier(seed=options.seed, **RARE_CLASS_SPLITS)


#: The forest's leaves predict their class shares (``"mc"``) rather than River's default adaptive
#: naive Bayes (``"nba"``), which estimates the rare class's densities from a handful of frauds.
ARF_LEAF_PREDICTION = "mc"
#: Each tree learns an example Poisson(λ) times. River's default λ = 6 (leveraging bagging)
#: makes learning the forest 75 % of the engine's learning work; λ = 1 (Oza's online bagging)
#: learns 2.5× faster (149 vs 380 µs per example) with the same quality within noise on the
#: fraud benchmark, three seeds pooled: ROC AUC 0.922 vs 0.903, AP 0.530 vs 0.537, P@100 equal
#: (``bench/results/quality-round5-lambda-seed*.txt``).
ARF_LAMBDA = 1
#: Confidence of the ADWIN detectors that reset a tree (drift) or grow its replacement (warning);
#: River's defaults are 1e-3 and 1e-2. With 5 000 cards (``bench.quality --scale 5``, tuned on seed
#: 1) the defaults reset trees on the noise of a rare class: 1e-5 raised the forest's AP from 0.50 to
#: 0.59 over three weeks ([-0.134, -0.042] for the defaults' difference); with 1 000 cards it made no
#: difference (``bench/results/quality-scale5-tuning-seed1-fraud.txt``, ``quality-tuning-round3-seed1.txt``).
ARF_DRIFT_DELTA = 1e-5


def adaptive_random_forest(task: str, options: ModelOptions = DEFAULT_OPTIONS) -> base.Classifier:
    """River's adaptive random forest of ``options.n_trees`` trees, seeded."""
    return forest.ARFClassifier(n_models=options.n_trees, seed=options.seed, lambda_value=ARF_LAMBDA,
                                leaf_prediction=ARF_LEAF_PREDICTION,
                                drift_detector=drift.ADWIN(ARF_DRIFT_DELTA),
                                warning_detector=drift.ADWIN(10 * ARF_DRIFT_DELTA), **RARE_CLASS_SPLITS)


def rule_baseline(task: str, options: ModelOptions = DEFAULT_OPTIONS) -> base.Classifier:
    """The task's fixed point rules: scored and evaluated like a model, never trained."""
    return rules.BASELINES[task]()


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its task, its name and how to build a fresh one."""

    task: str
    name: str
    #: ``factory(task, options=DEFAULT_OPTIONS)`` gives a fresh, untrained model
    factory: Callable[..., base.Classifier]
    #: False for a fixed baseline whose ``learn_one`` does nothing
    learns: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.task}.{self.name}"


MODELS: dict[tuple[str, str], ModelSpec] = {
    (spec.task, spec.name): spec
    for task in ("fraud", "lead")
    for spec in (
        ModelSpec(task, "logreg", scaled_logistic_regression),
        ModelSpec(task, "hoeffding", hoeffding_tree),
        ModelSpec(task, "arf", adaptive_random_forest),
        ModelSpec(task, "rules", rule_baseline, learns=False),
    )
}

#: The model whose score is published, per task (see docs/models.md for why).
CHAMPIONS = {"fraud": "arf", "lead": "logreg"}

#: Tasks with an unsupervised anomaly detector next to their classifiers: its factory.
ANOMALY_DETECTORS: dict[str, Callable[..., base.AnomalyDetector]] = {"fraud": anomaly.make_detector}


def model_names(task: str) -> list[str]:
    """The names of a task's registered classifiers, sorted."""
    return sorted(name for spec_task, name in MODELS if spec_task == task)


def make_model(task: str, name: str, options: ModelOptions = DEFAULT_OPTIONS) -> base.Classifier:
    """A fresh, untrained model of a registered kind."""
    return MODELS[(task, name)].factory(task, options)
