"""Paired cluster bootstrap: does the champion measurably beat, match or trail a baseline?

``bench/quality.py`` compares models on one held-out week with a few dozen
frauds (seed 2's final week: 28 frauds on 15 of the 1 000 cards), where a
point difference alone cannot tell a better model from luck. This module gives
each difference (champion - baseline) of ROC AUC, average precision and
precision@k per day a 95 % confidence interval, and a verdict.

**Unit resampled: the entity (card for fraud, visitor for leads), for every metric.**
A card's transactions share its history features, and a compromised card has
several fraudulent transactions; a visitor's sessions share one conversion
window. Examples of one entity are not independent, so resampling examples
would make the intervals too narrow. Each resample draws entities with
replacement and keeps all their examples (an entity drawn twice counts as two
entities): a cluster bootstrap. Precision@k per day ranks entities within
each day, so it is recomputed on the same resample: an entity drawn ``m``
times is ``m`` entities in each day's ranking (days stay as they are).
Resampling days instead would leave 7 units in a week: too few.

**Not stratified.** Entities are drawn from all of them, with a positive or
not, as a week draws them: the number of fraudulent cards varies between
resamples as it does between weeks (15 +- 4 on seed 2). A resample without a
positive (or a negative) has no ROC AUC or AP: it is left out of those
intervals and counted (on 15 fraudulent cards of 1 000, one in a few
million). Resampling the two classes separately, as pROC does for ROC AUC
(commit 683a166), was tried: between equally good models it said "beats" or
"worse" more often (a first version of the simulation below, each model's
own noise per transaction, 500 resamples: ROC AUC 9.6 % against 7.7 % of
1 000 weeks, AP 8.7 % against 7.4 %).

**Paired.** The champion and the baseline are scored on the same resample
and the difference is taken per resample: what the two models share (which
entities happen to be in the week, how hard they are) cancels out.

**Interval and verdict.** The 2.5 and 97.5 percentiles of the resampled
differences. The rule (issue #5 asks to "match or beat"): **beats** if the
whole interval lies above 0, **worse** if it lies below 0, **matches**
otherwise (an end exactly at 0 included: precision@100 moves in steps of one
card over the week): no difference measurable at this sample size, not proof
that the models are equal; the interval's width says how large a difference
could hide in it.

**Calibration** (``python -m bench.bootstrap_calibration``: simulated fraud
weeks, 1 000 cards, 13.5 fraudulent on average, two equally good models).
The rule should say "matches" 95 % of the time; it said "beats" or "worse"
in 8.4 % of 1 000 weeks for ROC AUC, 5.7 % for AP and 1.3 % for P@100/day
(+- about 1.7 points). With so few fraudulent cards the percentile interval
is a little too narrow for ROC AUC, and conservative for the step-wise
P@100: a "beats" that barely clears 0 is weak evidence. Resampling
transactions instead of cards gave 15.6 %, 13.4 % and 4.2 % (500 weeks).
Many comparisons are made (metrics x baselines x windows), so a few "beats"
or "worse" are expected by chance alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

BEATS, MATCHES, WORSE = "beats", "matches", "worse"
METRICS = ("roc_auc", "ap", "p_at_100")
#: The rule, as printed next to the tables.
VERDICT_RULE = ("beats: 95 % CI above 0; matches: CI contains 0 (no measurable difference); "
                "worse: CI below 0")
#: Resample rows handled at once: bounds the memory of the (rows x entity-days) weight matrices.
CELLS_PER_CHUNK = 4_000_000
#: Entity-days kept per day and per place of the top k: 3k places, drawn once each on average.
RANKING_DEPTH_PER_K = 3


def verdict(low: float, high: float) -> str:
    """The verdict of a difference whose confidence interval is ``[low, high]``.

    >>> verdict(0.01, 0.03), verdict(-0.01, 0.03), verdict(-0.03, -0.01), verdict(0.0, 0.0)
    ('beats', 'matches', 'worse', 'matches')
    """
    if low > 0:
        return BEATS
    if high < 0:
        return WORSE
    return MATCHES


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of resampled values, the undefined (NaN) left out.

    >>> [round(bound, 9) for bound in percentile_interval(np.r_[np.arange(101.0), np.nan])]
    [2.5, 97.5]
    """
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values[~np.isnan(values)], [tail, 100 - tail])
    return float(low), float(high)


def cluster_resample_counts(clusters: int, resamples: int, seed: int) -> np.ndarray:
    """How many times each cluster is drawn in each resample: ``(resamples, clusters)`` integers.

    Each row draws ``clusters`` clusters with replacement. Deterministic for a seed.

    >>> counts = cluster_resample_counts(4, 3, seed=0)
    >>> counts.shape, counts.sum(axis=1).tolist(), bool((counts == 0).any())
    ((3, 4), [4, 4, 4], True)
    """
    rng = np.random.default_rng(seed)
    counts = np.empty((resamples, clusters), dtype=np.int32)
    for row in range(resamples):
        counts[row] = np.bincount(rng.integers(0, clusters, clusters), minlength=clusters)
    return counts


@dataclass(frozen=True)
class RankedExamples:
    """One model's scores reduced to what ROC AUC and AP need, for any cluster resample.

    Both metrics only look at each positive example: how many negatives rank
    below it, tie with it, and how many positives rank at or above it. With few
    positives these are small matrices, and a resample's metrics are matrix
    products with its cluster counts. Positives are in ascending score order.
    """

    positive_cluster: np.ndarray  # (P,) the cluster of each positive example
    positives_at_or_above: np.ndarray  # (P, P): positive j scored at or above positive i
    negatives_below: np.ndarray  # (C, P): negatives of cluster c scored strictly below positive i
    negatives_tied: np.ndarray  # (C, P): negatives of cluster c scored as positive i
    negatives: np.ndarray  # (C,): negatives of cluster c

    @classmethod
    def of(cls, score: np.ndarray, y: np.ndarray, cluster: np.ndarray, clusters: int) -> RankedExamples:
        positive = y.astype(bool)
        order = np.argsort(score[positive], kind="stable")
        positive_score, positive_cluster = score[positive][order], cluster[positive][order]
        negative_score, negative_cluster = score[~positive], cluster[~positive]
        # a negative is below every positive from its first strictly higher one on: mark, then cumulate
        first_above = np.searchsorted(positive_score, negative_score, side="right")
        first_tied = np.searchsorted(positive_score, negative_score, side="left")
        below = np.zeros((clusters, len(order) + 1), dtype=np.float32)
        np.add.at(below, (negative_cluster, first_above), 1)
        tied = np.zeros_like(below)
        np.add.at(tied, (negative_cluster, first_tied), 1)
        np.add.at(tied, (negative_cluster, first_above), -1)
        at_or_above = (positive_score[:, None] >= positive_score[None, :]).astype(np.float32)
        return cls(positive_cluster, at_or_above, np.cumsum(below, axis=1)[:, :-1],
                   np.cumsum(tied, axis=1)[:, :-1],
                   np.bincount(negative_cluster, minlength=clusters).astype(np.float32))


def weighted_roc_auc_ap(ranked: RankedExamples, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and average precision of one model on each resample (a row of cluster ``counts``).

    An example weighs as many times as its cluster was drawn. ROC AUC: the
    weighted share of (positive, negative) pairs ranked right, ties counting
    half; AP: the mean over positives of the precision at their score, as
    scikit-learn computes both; both NaN for a resample without a positive or
    without a negative. Unit counts give the plain metrics. Counts are
    float32: sums of integers below 2**24 are exact.

    >>> ranked = RankedExamples.of(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]),
    ...                            np.arange(4), 4)
    >>> auc, ap = weighted_roc_auc_ap(ranked, np.ones((1, 4), dtype=np.float32))
    >>> float(auc[0]), round(float(ap[0]), 4)
    (0.75, 0.8333)
    """
    weight = counts[:, ranked.positive_cluster].astype(float)
    below = (counts @ ranked.negatives_below).astype(float)
    tied = (counts @ ranked.negatives_tied).astype(float)
    negatives = (counts @ ranked.negatives).astype(float)
    positives = weight.sum(axis=1)
    defined = (positives > 0) & (negatives > 0)
    auc = (weight * (below + 0.5 * tied)).sum(axis=1) / np.where(defined, positives * negatives, 1)
    true_positives = weight @ ranked.positives_at_or_above.astype(float)
    flagged = true_positives + negatives[:, None] - below
    precision = np.divide(true_positives, flagged, out=np.zeros_like(flagged), where=flagged > 0)
    ap = (weight * precision).sum(axis=1) / np.where(defined, positives, 1)
    return np.where(defined, auc, np.nan), np.where(defined, ap, np.nan)


@dataclass(frozen=True)
class DailyRanking:
    """One model's entity-days, ranked within each day, for precision@k per day.

    An entity-day's score is the entity's highest score that day; it is positive
    if any of the entity's examples that day is. Within a day, units are in
    descending score order, ties broken by entity (as ``bench.quality`` does),
    and only the first ``depth`` are kept: a resample fills the top ``k`` long
    before (each entity is drawn once on average), which
    :func:`weighted_precision_at_k_per_day` checks.
    """

    cluster: np.ndarray
    positive: np.ndarray
    day_starts: np.ndarray
    truncated: np.ndarray  # per day: whether units were dropped

    @classmethod
    def of(cls, score: np.ndarray, y: np.ndarray, cluster: np.ndarray, day: np.ndarray,
           depth: int) -> DailyRanking:
        """``cluster`` codes must sort as the entity ids do (``np.unique``'s inverse does)."""
        pairs, unit = np.unique(np.stack([day, cluster]), axis=1, return_inverse=True)
        unit = unit.ravel()
        best = np.full(pairs.shape[1], -np.inf)
        np.maximum.at(best, unit, score)
        positive = np.zeros(pairs.shape[1], dtype=bool)
        np.logical_or.at(positive, unit, y.astype(bool))
        order = np.lexsort((pairs[1], -best, pairs[0]))
        days = pairs[0][order]
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        sizes = np.diff(np.r_[starts, len(days)])
        rank = np.arange(len(days)) - np.repeat(starts, sizes)
        kept = order[rank < depth]
        return cls(pairs[1][kept], positive[kept], np.r_[0, np.cumsum(np.minimum(sizes, depth))[:-1]],
                   sizes > depth)


def weighted_precision_at_k_per_day(ranking: DailyRanking, counts: np.ndarray, k: int = 100) -> np.ndarray:
    """Mean over days of the share of positives among each day's ``k`` best entities, per resample.

    An entity drawn ``m`` times fills ``m`` places of the day's ranking (the
    last one drawn may only partly fit in the ``k``); the share is over ``k``,
    as in ``bench.quality.precision_at_k_per_day``.

    >>> ranking = DailyRanking.of(np.array([0.9, 0.8, 0.7, 0.2]), np.array([1, 0, 1, 0]),
    ...                           np.array([0, 1, 2, 2]), np.array([0, 0, 0, 1]), depth=3)
    >>> weighted_precision_at_k_per_day(ranking, np.array([[1, 1, 1], [2, 0, 1]]), k=2).tolist()
    [0.25, 0.5]
    """
    weights = counts[:, ranking.cluster].astype(float)
    ends = np.r_[ranking.day_starts[1:], weights.shape[1]]
    taken_before = np.cumsum(weights, axis=1) - weights
    before = taken_before - np.repeat(taken_before[:, ranking.day_starts], ends - ranking.day_starts, axis=1)
    if np.any((before[:, ends - 1] + weights[:, ends - 1] < k) & ranking.truncated):
        raise ValueError("a resample did not fill a day's top k within the ranking's depth: raise depth")
    in_top = np.clip(before + weights, 0, k) - np.clip(before, 0, k)
    hits = np.add.reduceat(in_top * ranking.positive, ranking.day_starts, axis=1)
    return hits.mean(axis=1) / k


def resampled_metrics(score: np.ndarray, y: np.ndarray, cluster: np.ndarray, day: np.ndarray,
                      counts: np.ndarray, k: int = 100) -> dict[str, np.ndarray]:
    """ROC AUC, AP and precision@k per day of one model on each row of ``counts`` (float32)."""
    auc, ap = weighted_roc_auc_ap(RankedExamples.of(score, y, cluster, counts.shape[1]), counts)
    ranking = DailyRanking.of(score, y, cluster, day, depth=RANKING_DEPTH_PER_K * k)
    rows = max(1, CELLS_PER_CHUNK // max(1, len(ranking.cluster)))
    precision = np.concatenate([weighted_precision_at_k_per_day(ranking, counts[first:first + rows], k)
                                for first in range(0, len(counts), rows)])
    return {"roc_auc": auc, "ap": ap, "p_at_100": precision}


@dataclass(frozen=True)
class Comparison:
    """Champion minus one baseline on one metric: the sample's difference, its interval, the verdict."""

    baseline: str
    metric: str
    difference: float
    low: float
    high: float
    verdict: str


@dataclass(frozen=True)
class PairedBootstrap:
    """What :func:`paired_comparisons` found, and on how much data."""

    observed: dict[str, dict[str, float]]  # model -> metric -> value on the sample
    comparisons: list[Comparison]  # champion minus each other model, metric by metric
    entities: int
    positive_entities: int  # entities with a positive example
    undefined: int  # resamples without a positive or a negative: left out of ROC AUC and AP


def paired_comparisons(scores: Mapping[str, np.ndarray], champion: str, y: np.ndarray, entity: np.ndarray,
                       day: np.ndarray, resamples: int = 2000, seed: int = 0, k: int = 100,
                       ) -> PairedBootstrap:
    """Each model's metrics on the sample, and the champion's paired comparison with every other model.

    All models are scored on the same cluster resamples of ``entity`` (see the
    module docstring), so each difference is paired.

    >>> i = np.arange(120)
    >>> y, entity, day = (i % 4 == 0).astype(int), i // 2, i // 40  # 3 days, 5 positive entities a day
    >>> better, noise = y + np.linspace(0, 0.5, 120), np.random.default_rng(1).random(120)
    >>> found = paired_comparisons({"a": better, "b": noise}, "a", y, entity, day, 200, k=5)
    >>> found.observed["a"]["roc_auc"], [(row.metric, row.verdict) for row in found.comparisons]
    (1.0, [('roc_auc', 'beats'), ('ap', 'beats'), ('p_at_100', 'beats')])
    """
    ids, cluster = np.unique(entity, return_inverse=True)
    positives = np.bincount(cluster, weights=y, minlength=len(ids))
    negatives = np.bincount(cluster, minlength=len(ids)) - positives
    counts = cluster_resample_counts(len(ids), resamples, seed).astype(np.float32)
    sample = np.ones((1, len(ids)), dtype=np.float32)
    observed, resampled = {}, {}
    for name, score in scores.items():
        observed[name] = {metric: float(values[0])
                          for metric, values in resampled_metrics(score, y, cluster, day, sample, k).items()}
        resampled[name] = resampled_metrics(score, y, cluster, day, counts, k)
    comparisons = []
    for baseline in (name for name in scores if name != champion):
        for metric in METRICS:
            low, high = percentile_interval(resampled[champion][metric] - resampled[baseline][metric])
            difference = observed[champion][metric] - observed[baseline][metric]
            comparisons.append(Comparison(baseline, metric, difference, low, high, verdict(low, high)))
    undefined = int(((counts @ positives == 0) | (counts @ negatives == 0)).sum())
    return PairedBootstrap(observed, comparisons, len(ids), int((positives > 0).sum()), undefined)
