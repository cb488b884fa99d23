"""bench.quality's held-out evaluation refuses what a batch model cannot be fitted on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.quality import DAY_MS, WEEK_MS, evaluate
from online_models.label_join import TrainingExample


def _example(index: int, ts_ms: int, label: bool) -> TrainingExample:
    return TrainingExample(task="lead", example_id=f"x{index}", event_id=f"e{index}", event_ts_ms=ts_ms,
                           label=label, label_ts_ms=ts_ms, cause="label",
                           features={"page_views": float(index)}, scores={"logreg": 0.5})


def _run(labels_before_test: list[bool]) -> dict:
    """Two weeks of history with the given labels, then a held-out week with both outcomes."""
    test_start = 2 * WEEK_MS
    history = [_example(i, i * DAY_MS, label) for i, label in enumerate(labels_before_test)]
    held_out = [_example(100 + i, test_start + i * DAY_MS, i % 2 == 0) for i in range(6)]
    examples = history + held_out
    return {"models": SimpleNamespace(champion="logreg"), "examples": examples, "names": ["logreg"],
            "entity_of": {e.example_id: e.example_id for e in examples},
            "last_ts": test_start + WEEK_MS, "horizon": 0}


def test_history_with_one_outcome_only_is_refused_with_advice() -> None:
    """Early in a lead stream every known label is a conversion: negatives wait for the horizon."""
    with pytest.raises(SystemExit, match="both outcomes"):
        evaluate("lead", _run([True] * 8), weeks=1, seed=0, resamples=10)


def test_history_with_both_outcomes_is_evaluated() -> None:
    result = evaluate("lead", _run([True, False] * 4), weeks=1, seed=0, resamples=10)
    (week,) = result["weeks"]
    assert week["n"] == 6 and week["positives"] == 3
