"""How often the paired bootstrap's verdict is wrong when the two models are equally good.

A null simulation shaped like a held-out fraud week of ``bench/quality.py``:
1 000 cards of 14 transactions over 7 days, each card fraudulent with
probability 1.5 % (about 15 cards, as seed 2's final week), 15 % of a
fraudulent card's transactions fraudulent (about 30 frauds). Two models score
every transaction with the same signal (a card effect, the label, noise) plus
each its own noise, per card (one model better on some cards, the other on
others) and per transaction. Neither is better, so each verdict of
``bench.paired_bootstrap`` should be "matches" 95 % of the time; the share of
simulated weeks with "beats" or "worse" is the rule's false-alarm rate.
``--by examples`` resamples transactions instead of cards, which the cluster
bootstrap avoids.

    python -m bench.bootstrap_calibration --weeks 1000
    python -m bench.bootstrap_calibration --weeks 1000 --by examples
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.paired_bootstrap import MATCHES, METRICS, paired_comparisons

CARDS, PER_CARD, DAYS = 1000, 14, 7


def null_week(rng: np.random.Generator, fraud_card_share: float = 0.015, card_noise: float = 0.5,
              example_noise: float = 0.5) -> dict[str, np.ndarray]:
    """One simulated week: labels, cards, days and two equally good models' scores ``a`` and ``b``.

    >>> week = null_week(np.random.default_rng(0))
    >>> sorted(week), len(week["y"]) == CARDS * PER_CARD
    (['a', 'b', 'day', 'entity', 'y'], True)
    """
    entity = np.repeat(np.arange(CARDS), PER_CARD)
    fraudulent = rng.random(CARDS) < fraud_card_share
    y = (fraudulent[entity] & (rng.random(len(entity)) < 0.15)).astype(int)
    shared = rng.normal(size=CARDS)[entity] + 1.5 * y + rng.normal(size=len(entity))

    def own_noise() -> np.ndarray:
        return card_noise * rng.normal(size=CARDS)[entity] + example_noise * rng.normal(size=len(entity))

    return {"y": y, "entity": entity, "day": rng.integers(0, DAYS, len(entity)),
            "a": shared + own_noise(), "b": shared + own_noise()}


def false_alarm_rates(weeks: int, resamples: int, seed: int, by: str = "cards",
                      card_noise: float = 0.5) -> tuple[dict[str, float], float]:
    """Share of null weeks whose verdict is not "matches", per metric; and the mean number of fraud cards."""
    rng = np.random.default_rng(seed)
    alarms, fraud_cards, simulated = dict.fromkeys(METRICS, 0), 0, 0
    while simulated < weeks:
        week = null_week(rng, card_noise=card_noise)
        if week["y"].sum() < 2:  # nothing to rank: no week of the benchmark is like this
            continue
        unit = week["entity"] if by == "cards" else np.arange(len(week["y"]))
        found = paired_comparisons({"a": week["a"], "b": week["b"]}, "a", week["y"], unit, week["day"],
                                   resamples, seed=simulated)
        for comparison in found.comparisons:
            alarms[comparison.metric] += comparison.verdict != MATCHES
        fraud_cards += len(np.unique(week["entity"][week["y"] == 1]))
        simulated += 1
    return {metric: count / weeks for metric, count in alarms.items()}, fraud_cards / weeks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=1000, help="simulated null weeks")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by", choices=("cards", "examples"), default="cards", help="unit resampled")
    parser.add_argument("--card-noise", type=float, default=0.5,
                        help="spread of each model's own per-card error (0: per transaction only)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rates, fraud_cards = false_alarm_rates(args.weeks, args.resamples, args.seed, args.by, args.card_noise)
    print(f"{args.weeks} null weeks ({fraud_cards:.1f} fraudulent cards on average), resampling {args.by}, "
          f"{args.resamples} resamples, card noise {args.card_noise:g}: "
          "share of verdicts other than 'matches' (nominal 0.05, +- 2 standard errors)")
    for metric, rate in rates.items():
        error = 2 * (rate * (1 - rate) / args.weeks) ** 0.5
        print(f"  {metric:<9} {rate:.3f} +- {error:.3f}")
    print(f"{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
