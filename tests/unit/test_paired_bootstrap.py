"""The paired cluster bootstrap behind ``bench.quality``'s verdicts, on synthetic data with known answers."""

import doctest

import numpy as np
import pytest

from bench import bootstrap_calibration, paired_bootstrap
from bench.paired_bootstrap import (
    BEATS,
    MATCHES,
    METRICS,
    WORSE,
    DailyRanking,
    RankedExamples,
    cluster_resample_counts,
    paired_comparisons,
    percentile_interval,
    resampled_metrics,
    verdict,
    weighted_precision_at_k_per_day,
    weighted_roc_auc_ap,
)

DAY_MS = 86_400_000


def synthetic_week(entities: int = 300, per_entity: int = 4, fraud_entities: int = 20, seed: int = 0):
    """Examples of ``entities`` entities over 7 days; the fraud entities' examples are positive."""
    rng = np.random.default_rng(seed)
    entity = np.repeat(np.arange(entities), per_entity)
    y = (entity < fraud_entities).astype(int)
    day = rng.integers(0, 7, len(entity))
    signal = rng.normal(size=len(entity)) + 1.0 * y
    return entity, y, day, signal, rng


def verdicts(found, baseline: str) -> dict[str, str]:
    return {row.metric: row.verdict for row in found.comparisons if row.baseline == baseline}


@pytest.mark.parametrize("module", [paired_bootstrap, bootstrap_calibration])
def test_the_module_doctests_pass(module):  # bench/ is outside pytest's doctest paths
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.001, 0.2, BEATS), (0.0, 0.2, MATCHES), (-0.1, 0.1, MATCHES), (-0.2, 0.0, MATCHES),
    (-0.2, -0.001, WORSE),
])
def test_verdict_rule(low, high, expected):
    assert verdict(low, high) == expected


def test_identical_scores_match_with_an_interval_of_zero():
    entity, y, day, signal, _ = synthetic_week()
    found = paired_comparisons({"champion": signal, "copy": signal.copy()}, "champion", y, entity, day,
                               resamples=300)
    assert found.observed["champion"] == found.observed["copy"]
    assert [(row.difference, row.low, row.high, row.verdict) for row in found.comparisons] == [
        (0, 0, 0, MATCHES)] * 3


def test_a_clearly_better_champion_beats_and_a_clearly_worse_one_is_worse():
    entity, y, day, signal, rng = synthetic_week()
    noise = rng.normal(size=len(y))
    good = signal + 2.0 * y  # separates the fraud entities from the rest
    found = paired_comparisons({"good": good, "noise": noise}, "good", y, entity, day, resamples=300, k=10)
    assert verdicts(found, "noise") == dict.fromkeys(METRICS, BEATS)
    found = paired_comparisons({"noise": noise, "good": good}, "noise", y, entity, day, resamples=300, k=10)
    assert verdicts(found, "good") == dict.fromkeys(METRICS, WORSE)


def test_the_bootstrap_is_deterministic_for_a_seed():
    entity, y, day, signal, rng = synthetic_week()
    scores = {"a": signal, "b": signal + rng.normal(size=len(y))}
    first = paired_comparisons(scores, "a", y, entity, day, resamples=200, seed=3)
    assert paired_comparisons(scores, "a", y, entity, day, resamples=200, seed=3) == first
    assert paired_comparisons(scores, "a", y, entity, day, resamples=200, seed=4) != first


def test_resamples_draw_every_entity_with_replacement():
    counts = cluster_resample_counts(10, 500, seed=1)
    assert counts.shape == (500, 10) and (counts.sum(axis=1) == 10).all()
    assert counts.min() == 0 and counts.max() > 1
    assert abs(counts.mean(axis=0) - 1).max() < 0.15  # each entity drawn once per resample on average


def test_resamples_without_a_positive_are_left_out_of_roc_auc_and_ap_and_counted():
    entity, y, day, signal, rng = synthetic_week(fraud_entities=1)  # (299/300)**300: 37 % without it
    found = paired_comparisons({"a": signal, "b": rng.normal(size=len(y))}, "a", y, entity, day,
                               resamples=400)
    assert (found.entities, found.positive_entities) == (300, 1)
    assert 0.3 < found.undefined / 400 < 0.45
    assert all(np.isfinite([row.low, row.high]).all() for row in found.comparisons)


def test_pairing_narrows_the_interval_of_a_small_consistent_gain():
    """Most of a metric's spread comes from which entities are drawn, shared by both models."""
    entity, y, day, signal, rng = synthetic_week(entities=600, fraud_entities=40)
    baseline = signal
    champion = signal + 0.15 * y  # a little better on every positive
    clusters = entity.max() + 1
    shared = cluster_resample_counts(clusters, 400, seed=0).astype(np.float32)
    other = cluster_resample_counts(clusters, 400, seed=1).astype(np.float32)

    def auc(score, counts):
        return resampled_metrics(score, y, entity, day, counts)["roc_auc"]

    paired = percentile_interval(auc(champion, shared) - auc(baseline, shared))
    unpaired = percentile_interval(auc(champion, shared) - auc(baseline, other))
    assert paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 3
    assert verdict(*paired) == BEATS and verdict(*unpaired) == MATCHES


def test_clusters_of_copies_widen_the_interval_as_one_example_each_would():
    """An entity's examples are not independent: resampling them one by one would understate the noise."""
    entity, y, day, signal, rng = synthetic_week(entities=400, per_entity=1, fraud_entities=30)
    noise = rng.normal(size=len(y))
    copies = 9
    entity, y, day, signal, noise = (np.repeat(a, copies) for a in (entity, y, day, signal, noise))
    scores = {"signal": signal, "noise": noise}
    by_entity = paired_comparisons(scores, "signal", y, entity, day, resamples=400, k=20).comparisons
    examples = np.arange(len(y))
    by_example = paired_comparisons(scores, "signal", y, examples, day, resamples=400, k=20).comparisons
    width = {row.metric: row.high - row.low for row in by_entity}
    # precision@k per day differs in kind: there, an entity's copies are distinct entities
    assert all(width[row.metric] > 2 * (row.high - row.low) for row in by_example if row.metric != "p_at_100")


def test_weighted_metrics_equal_scikit_learn_with_sample_weights():
    from sklearn import metrics
    rng = np.random.default_rng(7)
    clusters = 300
    cluster = rng.integers(0, clusters, 2000)
    y = (rng.random(2000) < 0.05).astype(int)
    score = np.round(rng.random(2000) + 0.3 * y, 2)  # many ties, between classes too
    counts = rng.integers(0, 3, (4, clusters)).astype(np.float32)
    auc, ap = weighted_roc_auc_ap(RankedExamples.of(score, y, cluster, clusters), counts)
    for row in range(len(counts)):
        weight = counts[row, cluster]
        assert auc[row] == pytest.approx(metrics.roc_auc_score(y, score, sample_weight=weight), abs=1e-12)
        assert ap[row] == pytest.approx(metrics.average_precision_score(y, score, sample_weight=weight),
                                        abs=1e-12)


def test_precision_at_k_of_a_resample_is_that_of_the_sample_with_each_entity_copied():
    from bench import quality  # needs scikit-learn, a dev dependency for this check
    rng = np.random.default_rng(11)
    cluster = rng.integers(0, 120, 900)
    ts = rng.integers(0, 7 * DAY_MS, 900)
    y = (rng.random(900) < 0.1).astype(int)
    score = np.round(rng.random(900), 1)  # ties: broken by entity
    counts = rng.integers(0, 4, (3, 120))
    ranking = DailyRanking.of(score, y, cluster, ts // DAY_MS, depth=120)
    resampled = weighted_precision_at_k_per_day(ranking, counts, k=10)
    for row, drawn in enumerate(counts):
        keep = np.repeat(np.arange(900), drawn[cluster])
        copy = np.concatenate([np.arange(m) for m in drawn[cluster]])
        names = np.array([f"{c:04d}#{n:02d}" for c, n in zip(cluster[keep], copy, strict=True)])
        expected = quality.precision_at_k_per_day(ts[keep], names, y[keep], score[keep], k=10)
        assert resampled[row] == pytest.approx(expected, abs=1e-12)


def test_a_ranking_too_shallow_for_a_resample_is_refused():
    score, y = np.array([0.9, 0.8, 0.7]), np.array([1, 0, 0])
    ranking = DailyRanking.of(score, y, np.arange(3), np.zeros(3, dtype=int), depth=2)
    assert weighted_precision_at_k_per_day(ranking, np.array([[1, 1, 1]]), k=2).tolist() == [0.5]
    with pytest.raises(ValueError, match="raise depth"):
        weighted_precision_at_k_per_day(ranking, np.array([[1, 0, 1]]), k=2)
