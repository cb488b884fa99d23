"""Benchmark-only candidate models, scored in shadow next to the registered ones (``--candidates``).

A candidate is a variant of a registered model (another optimiser, class
rebalancing, other split parameters) measured in the same run, on the same
examples, before anything changes in ``online_models/registry.py``. Candidates
never reach the engine; the ones worth it become the registry's settings.

>>> CANDIDATES["fraud"]["arf25"]("fraud", 0).n_models
25
"""

from __future__ import annotations

import math
from collections.abc import Callable

from river import base, drift, ensemble, feature_extraction, forest, imblearn, linear_model, optim, tree

from online_models.registry import (
    ARF_DRIFT_DELTA,
    ARF_LAMBDA,
    ARF_LEAF_PREDICTION,
    PRIORS,
    RARE_CLASS_SPLITS,
    ModelOptions,
    adaptive_random_forest,
    prepare_features,
    scaled_logistic_regression,
)

#: ``factory(task, seed)`` gives a fresh candidate.
Factory = Callable[[str, int], base.Classifier]

#: Rebalanced toward 10 % positives by dropping negatives (River's random under-sampler).
REBALANCED = {False: 0.9, True: 0.1}


def logreg(optimizer: Callable[[], optim.base.Optimizer], under: bool = False) -> Factory:
    def make(task: str, seed: int) -> base.Classifier:
        prior = PRIORS[task]
        model = linear_model.LogisticRegression(optimizer=optimizer(),
                                                intercept_init=math.log(prior / (1 - prior)))
        if under:
            model = imblearn.RandomUnderSampler(model, desired_dist=REBALANCED, seed=seed)
        return prepare_features() | model

    return make


def arf(under: bool = False, n_models: int = 10, no_drift: bool = False, adwin_delta: float | None = None,
        **params: object) -> Factory:
    def make(task: str, seed: int) -> base.Classifier:
        detectors = {}
        if no_drift:  # River's way of turning the forest's drift and warning detectors off
            detectors = {"drift_detector": drift.NoDrift(), "warning_detector": drift.NoDrift()}
        if adwin_delta is not None:  # River's defaults: ADWIN(0.001) for drift, ADWIN(0.01) for warning
            detectors = {"drift_detector": drift.ADWIN(adwin_delta),
                         "warning_detector": drift.ADWIN(10 * adwin_delta)}
        model = forest.ARFClassifier(n_models=n_models, seed=seed,
                                     **{**RARE_CLASS_SPLITS, **params, **detectors})
        return imblearn.RandomUnderSampler(model, desired_dist=REBALANCED, seed=seed) if under else model

    return make


class PositivesOversampled(base.Wrapper, base.Classifier):
    """A forest whose online bagging draws each positive ``factor`` times as often.

    Each tree of River's forest learns an example Poisson(λ) times; here λ is multiplied by
    ``factor`` for a positive (Wang, Minku and Yao's oversampling online bagging, OOB), so the
    trees see the rare class often enough to split on it without dropping any negative.
    """

    def __init__(self, forest: forest.ARFClassifier, factor: float) -> None:
        self.forest = forest
        self.factor = factor

    @property
    def _wrapped_model(self) -> base.Classifier:
        return self.forest

    def learn_one(self, x: dict, y: base.typing.ClfTarget, **kwargs: object) -> None:
        rate = self.forest.lambda_value
        self.forest.lambda_value = rate * self.factor if y else rate
        try:
            self.forest.learn_one(x, y)
        finally:
            self.forest.lambda_value = rate

    def predict_proba_one(self, x: dict, **kwargs: object) -> dict[base.typing.ClfTarget, float]:
        return self.forest.predict_proba_one(x)


def arf_oversampled(factor: float) -> Factory:
    def make(task: str, seed: int) -> base.Classifier:
        return PositivesOversampled(adaptive_random_forest(task, ModelOptions(seed=seed)), factor)

    return make


class MeanProbability(base.Ensemble, base.Classifier):
    """Soft voting: the mean of the models' probabilities (River's ``VotingClassifier`` only votes)."""

    def __init__(self, models: list[base.Classifier]) -> None:
        super().__init__(models)

    def learn_one(self, x: dict, y: base.typing.ClfTarget, **kwargs: object) -> None:
        for model in self:
            model.learn_one(x, y)

    def predict_proba_one(self, x: dict, **kwargs: object) -> dict[base.typing.ClfTarget, float]:
        total: dict[base.typing.ClfTarget, float] = {}
        for model in self:
            for label, p in model.predict_proba_one(x).items():
                total[label] = total.get(label, 0.0) + p / len(self)
        return total


def with_forest(first: Factory) -> Factory:
    """``first`` and the registered forest, their probabilities averaged."""
    def make(task: str, seed: int) -> base.Classifier:
        return MeanProbability([first(task, seed), adaptive_random_forest(task, ModelOptions(seed=seed))])

    return make


def registered_logreg(task: str, seed: int) -> base.Classifier:
    return scaled_logistic_regression(task, ModelOptions(seed=seed))


def logreg_interactions(task: str, seed: int) -> base.Classifier:
    """The registered logistic regression on the prepared features and their pairwise products."""
    return (prepare_features() | feature_extraction.PolynomialExtender(degree=2, interaction_only=True)
            | scaled_logistic_regression(task, ModelOptions(seed=seed))[-1])  # its regression step


def amf(task: str, seed: int) -> base.Classifier:
    """River's aggregated Mondrian forest (numbers scaled, categories one-hot): not a registered model."""
    return prepare_features() | forest.AMFClassifier(n_estimators=10, seed=seed)


def registered_forest(**changes: object) -> Factory:
    """The registered forest with some of its parameters changed (River's ``clone``)."""
    def make(task: str, seed: int) -> base.Classifier:
        return adaptive_random_forest(task, ModelOptions(seed=seed)).clone(new_params=changes)

    return make


def random_patches(task: str, seed: int) -> base.Classifier:
    """River's streaming random patches (features *and* examples sampled per tree) of the registered
    forest's trees, bagging and drift detectors: not a registered model."""
    leaf = tree.HoeffdingTreeClassifier(leaf_prediction=ARF_LEAF_PREDICTION, **RARE_CLASS_SPLITS)
    return ensemble.SRPClassifier(model=leaf, n_models=10, lam=ARF_LAMBDA, seed=seed,
                                  drift_detector=drift.ADWIN(ARF_DRIFT_DELTA),
                                  warning_detector=drift.ADWIN(10 * ARF_DRIFT_DELTA))


def hoeffding_under(task: str, seed: int) -> base.Classifier:
    model = tree.HoeffdingAdaptiveTreeClassifier(seed=seed, **RARE_CLASS_SPLITS)
    return imblearn.RandomUnderSampler(model, desired_dist=REBALANCED, seed=seed)


_COMMON: dict[str, Factory] = {
    "logreg_sgd.05": logreg(lambda: optim.SGD(0.05)),
    "logreg_adam": logreg(lambda: optim.Adam(0.01)),
    "logreg_adagrad": logreg(lambda: optim.AdaGrad(0.1)),
    "logreg_under": logreg(lambda: optim.SGD(0.01), under=True),
    "arf_under": arf(under=True),
    "arf_mc": arf(leaf_prediction="mc"),
    "hoeffding_under": hoeffding_under,
    # round 2, after round 1 on seed 1 (bench/results/quality-tuning-*.txt)
    "logreg_adagrad.05": logreg(lambda: optim.AdaGrad(0.05)),
    "logreg_adagrad.3": logreg(lambda: optim.AdaGrad(0.3)),
    "logreg_ftrl": logreg(lambda: optim.FTRLProximal()),
    "logreg_avg": logreg(lambda: optim.Averager(optim.SGD(0.05), start=1000)),
    "arf25": arf(n_models=25),
    "arf_nodrift": arf(no_drift=True),
    "arf_grace20": arf(grace_period=20),
    "arf_mc25": arf(n_models=25, leaf_prediction="mc"),
    # round 3 (fraud), after the registry took AdaGrad(0.05) and "mc" leaves: drift detectors that
    # react less to the noise of a rare class, and without any for reference
    "arf_mc_adwin1e-5": arf(leaf_prediction="mc", adwin_delta=1e-5),
    "arf_mc_nodrift": arf(leaf_prediction="mc", no_drift=True),
    # round 4 (fraud): more features per split, slower and surer splits, and River's other forest
    "arf_mc_feat.5": arf(leaf_prediction="mc", max_features=0.5),
    "arf_mc_grace200": arf(leaf_prediction="mc", grace_period=200),
    "amf": amf,
    # round 5 (cost): each tree learns an example Poisson(λ) times, λ = 6 by default (leveraging
    # bagging); λ = 1 is Oza's online bagging, 2.5× cheaper to learn (149 vs 380 µs per example)
    "arf_mc_lambda1": arf(leaf_prediction="mc", lambda_value=1),
    "arf_mc_lambda3": arf(leaf_prediction="mc", lambda_value=3),
    # round 6 (--scale 5: 5 000 cards, 5x the examples a week), the registered forest (mc, λ = 1)
    # with drift detectors that fire less, without any, and slower, surer splits
    "arf_l1_adwin1e-5": arf(leaf_prediction="mc", lambda_value=1, adwin_delta=1e-5),
    "arf_l1_nodrift": arf(leaf_prediction="mc", lambda_value=1, no_drift=True),
    "arf_l1_grace200": arf(leaf_prediction="mc", lambda_value=1, grace_period=200),
    # round 6 (lead, after seed 1 at --scale 5: logreg 0.009 ROC AUC behind the weekly batch LR):
    # smaller and decaying steps, closer to a converged batch fit
    "logreg_adagrad.02": logreg(lambda: optim.AdaGrad(0.02)),
    "logreg_adagrad.01": logreg(lambda: optim.AdaGrad(0.01)),
    "logreg_sgd_invscaling": logreg(lambda: optim.SGD(optim.schedulers.InverseScaling(0.1, power=0.5))),
    # round 7 (fraud, --scale 5: the forest's AP 0.13 behind the weekly batch RF on both held-out
    # seeds): the registered forest with positives drawn 3, 10 and 30 times as often in its bagging
    "arf_oob3": arf_oversampled(3),
    "arf_oob10": arf_oversampled(10),
    "arf_oob30": arf_oversampled(30),
    # round 7 (lead, --scale 5: logreg 0.006 ROC AUC behind the weekly batch LR): the registered
    # logistic regression and forest averaged, two models of similar quality and different errors
    "logreg+arf": with_forest(registered_logreg),
    # then: the pairwise products of the prepared features, which a batch forest finds by depth
    "logreg_x2": logreg_interactions,
    "logreg_x2+arf": with_forest(logreg_interactions),
    # round 8 (fraud, --scale 5: the forest's AP 0.10-0.13 behind the weekly batch RF): how the trees
    # split. Hellinger distance, a split criterion insensitive to class skew (Cieslak and Chawla);
    # numbers split on histogram bins rather than a Gaussian per class (a fraud amount is no
    # Gaussian); and River's streaming random patches instead of the random forest
    "arf_hellinger": registered_forest(split_criterion="hellinger"),
    "arf_histogram": registered_forest(splitter=tree.splitter.HistogramSplitter()),
    "srp": random_patches,
}

#: The candidates of each task, by name.
CANDIDATES: dict[str, dict[str, Factory]] = {"fraud": dict(_COMMON), "lead": dict(_COMMON)}
