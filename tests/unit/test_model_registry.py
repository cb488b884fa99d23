"""Conformance checks run on every registered model: a new model is tested by being registered."""

import copy
import pickle
import random

import pytest
from river.checks import clf, common

from online_models.registry import ANOMALY_DETECTORS, CHAMPIONS, MODELS, PRIORS, make_model, model_names
from online_models.testing import labelled_stream

SPECS = sorted(MODELS)
LEARNERS = [key for key in SPECS if MODELS[key].learns]

#: River's own estimator checks that need no data.
RIVER_CHECKS = [
    common.check_repr, common.check_str, common.check_tags, common.check_clone_same_class,
    common.check_clone_is_idempotent, common.check_init_default_params_are_not_mutable,
    common.check_doc, common.check_clone_changes_memory_addresses, common.check_mutate_can_be_idempotent,
    common.check_pickling_supports_roundtrip, common.check_repr_roundtrips_clone,
    common.check_clone_with_new_params_applies, common.check_get_params_matches_signature,
]
#: River's own checks run on a stream of our features (numbers and categorical strings). Not run:
#: ``check_shuffle_features_no_impact`` and ``check_seeding_is_idempotent``, whose ``seed_params``
#: helper cannot read ``compose.SelectType`` parameters (covered by the determinism tests below).
RIVER_DATA_CHECKS = [
    common.check_learn_one, common.check_pickling, common.check_emerging_features,
    common.check_disappearing_features, common.check_radically_disappearing_features,
    common.check_predict_one_pure, common.check_predict_one_before_any_learn,
    common.check_no_state_aliasing_with_input, common.check_clone_is_independent,
    clf.check_predict_proba_one, clf.check_classifier_tracks_seen_labels,
]
#: River's trees answer ``{}`` before their first ``learn_one``, so this River check fails on
#: them by design; the engine reads ``predict_proba_one(x).get(True, 0.0)``.
EMPTY_BEFORE_LEARNING = {"hoeffding", "arf"}


def stream(task, n=150, seed=0):
    return list(labelled_stream(task, n, seed))


@pytest.mark.parametrize(("task", "name"), LEARNERS)
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


def test_champions_learn_and_every_task_has_the_same_kinds_of_model():
    assert all(MODELS[(task, name)].learns for task, name in CHAMPIONS.items())
    assert model_names("fraud") == model_names("lead") == ["arf", "hoeffding", "logreg", "rules"]
    assert set(PRIORS) == set(CHAMPIONS) and set(ANOMALY_DETECTORS) <= set(CHAMPIONS)


@pytest.mark.parametrize("check", RIVER_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize(("task", "name"), SPECS)
def test_river_estimator_checks(task, name, check):
    check(make_model(task, name))


@pytest.mark.parametrize("check", RIVER_DATA_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize(("task", "name"), SPECS)
def test_river_checks_on_our_features(task, name, check):
    random.seed(0)  # River's checks drop features with the global random
    check(make_model(task, name), dataset=stream(task))


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_scores_are_probabilities_of_the_classes_seen(task, name):
    model, seen = make_model(task, name), set()
    for x, y in stream(task):
        proba = model.predict_proba_one(x)
        assert set(proba) <= {False, True} and all(0.0 <= p <= 1.0 for p in proba.values())
        if proba:
            assert abs(sum(proba.values()) - 1) < 1e-9
        if len(seen) == 2 or name not in EMPTY_BEFORE_LEARNING:
            assert set(proba) == {False, True}
        model.learn_one(x, y)
        seen.add(y)


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_categorical_features_may_be_present_absent_or_new(task, name):
    model = make_model(task, name)
    for x, y in stream(task):
        model.learn_one(x, y)
    x, _ = stream(task, 1, seed=99)[0]
    numeric = {k: v for k, v in x.items() if not isinstance(v, str)}
    unseen = {**x, **{k: "never-seen" for k, v in x.items() if isinstance(v, str)}}
    for variant in (x, numeric, unseen, {}):
        assert 0.0 <= model.predict_proba_one(variant).get(True, 0.0) <= 1.0


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_same_seed_same_stream_same_scores(task, name):
    a, b = make_model(task, name), make_model(task, name)
    for x, y in stream(task, 300):
        assert a.predict_proba_one(x) == b.predict_proba_one(x)
        a.learn_one(x, y)
        b.learn_one(x, y)


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_feature_order_changes_scores_by_rounding_only(task, name):
    # River sums features in dict order: exact (bitwise) equality needs the same order, which the
    # snapshot keeps (orjson preserves it); another order only moves the last bits.
    a, b = make_model(task, name), make_model(task, name)
    rng = random.Random(1)
    for x, y in stream(task, 300):
        shuffled = dict(rng.sample(sorted(x.items()), len(x)))
        pa, pb = a.predict_proba_one(x).get(True, 0.0), b.predict_proba_one(shuffled).get(True, 0.0)
        assert abs(pa - pb) < 1e-9
        a.learn_one(x, y)
        b.learn_one(shuffled, y)


@pytest.mark.parametrize(("task", "name"), SPECS)
def test_pickle_round_trip_predicts_identically_and_keeps_learning_identically(task, name):
    model = make_model(task, name)
    data = stream(task, 300)
    for x, y in data[:200]:
        model.learn_one(x, y)
    restored = pickle.loads(pickle.dumps(model))
    for x, y in data[200:]:
        assert restored.predict_proba_one(x) == model.predict_proba_one(x)
        model.learn_one(x, y)
        restored.learn_one(copy.deepcopy(x), y)
