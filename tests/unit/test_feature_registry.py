"""Conformance checks run on every registered feature: a new feature is tested by being registered."""

import math
import random

import orjson
import pytest

from features.registry import TASK_FEATURES, TERMINAL_FEATURES
from stream.events import Transaction, WebEvent

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def random_events(task: str, n: int = 300, seed: int = 1):
    rng = random.Random(seed)
    ts = T0
    for i in range(n):
        ts += rng.randint(0, 6 * 3_600_000)
        late = rng.random() < 0.1  # some events out of order by up to an hour
        at = ts - rng.randint(0, 3_600_000) if late else ts
        if task == "fraud":
            yield Transaction(f"t{i}", at, f"c{rng.randint(0, 3)}", f"k{rng.randint(0, 9)}",
                              round(rng.uniform(1, 500), 2))
        else:
            page = rng.choice(["home", "pricing", "demo", "docs", "blog"])
            yield WebEvent(f"w{i}", at, f"v{rng.randint(0, 3)}", f"s{i // 5}",
                           rng.choice(["page_view", "click", "form_submit"]), "/" + page, page)


ALL = [(task, name) for task, fs in TASK_FEATURES.items() for name in fs.features]


@pytest.mark.parametrize(("task", "name"), ALL)
def test_feature_is_documented(task, name):
    fn = TASK_FEATURES[task].features[name]
    assert fn.__doc__ and fn.__doc__.strip(), f"{name} needs a docstring saying what it is"


def test_feature_names_are_unique_across_tasks():
    names = [name for _, name in ALL] + list(TERMINAL_FEATURES)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("task", sorted(TASK_FEATURES))
def test_features_are_finite_numbers_and_survive_serialisation(task):
    feature_set = TASK_FEATURES[task]
    states = {}
    for event in random_events(task):
        key = getattr(event, "customer_id", None) or event.visitor_id
        state = states.get(key) or feature_set.state_type()
        feature_set.update(state, event, 3_600_000)
        values = feature_set.compute(state, event)
        assert set(values) == set(feature_set.features)
        for name, value in values.items():
            if isinstance(value, str):  # categorical
                assert value, name
            else:
                assert isinstance(value, int | float) and math.isfinite(value), (name, value)
        # what is written to the changelog gives back the same features
        restored = feature_set.state_type.from_list(orjson.loads(orjson.dumps(state.to_list())))
        assert feature_set.compute(restored, event) == values
        states[key] = restored
