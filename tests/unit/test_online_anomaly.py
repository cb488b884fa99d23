"""The anomaly detector is River's HalfSpaceTrees loop, seeded, on numbers only, with a threshold."""

import numbers

import pytest
from river import anomaly, compose, preprocessing

from online_models.anomaly import DEFAULT_THRESHOLD, check_threshold, is_anomaly, make_detector
from online_models.testing import labelled_stream


def river_detector(seed):
    trees = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=seed)
    return compose.SelectType(numbers.Number) | preprocessing.MinMaxScaler() | trees


def run(detector, stream):
    scores = []
    for x, _ in stream:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    return scores


def test_scores_equal_rivers_own_loop():
    stream = list(labelled_stream("fraud", 1500, seed=3))
    ours, theirs = run(make_detector(seed=7), stream), run(river_detector(7), stream)
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 1e-12


def test_seeded_and_blind_to_strings():
    stream = list(labelled_stream("fraud", 600, seed=4))
    numeric = [({k: v for k, v in x.items() if not isinstance(v, str)}, y) for x, y in stream]
    assert run(make_detector(seed=1), stream) == run(make_detector(seed=1), numeric)
    assert run(make_detector(seed=1), stream) != run(make_detector(seed=2), stream)


def test_outliers_score_higher_and_cross_the_threshold():
    detector = make_detector()
    normals = [({"amount": 30.0 + i % 17, "customer_tx_count_1d": 1 + i % 3}, False) for i in range(1000)]
    run(detector, normals)
    normal = detector.score_one({"amount": 38.0, "customer_tx_count_1d": 2})
    outlier = detector.score_one({"amount": 900.0, "customer_tx_count_1d": 30})
    assert 0.0 <= normal < outlier <= 1.0
    threshold = (normal + outlier) / 2
    assert is_anomaly(outlier, threshold) and not is_anomaly(normal, threshold)


def test_it_keeps_learning_when_everything_scores_above_the_threshold():
    # River's ThresholdFilter would stop learning here; our detector must not
    detector, stream = make_detector(), list(labelled_stream("fraud", 800, seed=5))
    before = run(detector, stream[:400])
    assert all(is_anomaly(score, 0.0) for score in before)
    frozen = pickle_bytes(detector)
    run(detector, stream[400:])
    assert pickle_bytes(detector) != frozen


def pickle_bytes(model):
    import pickle

    return pickle.dumps(model)


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_must_be_a_score(threshold):
    with pytest.raises(ValueError, match="threshold"):
        check_threshold(threshold)
    assert 0.0 < DEFAULT_THRESHOLD < 1.0 and check_threshold(0.5) == 0.5
