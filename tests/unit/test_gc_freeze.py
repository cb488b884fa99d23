"""Freezing what is alive is safe only if what dies later needs no cycle collection: check River's."""

import gc
import random

import pytest
from prometheus_client import CollectorRegistry

from online_models import persistence
from online_models.label_join import TrainingExample
from online_models.task_models import CHAMPION, TaskModels
from stream.gc_freeze import freeze
from stream.metrics import Metrics
from stream.settings import Settings


def trained(task: str, champion: str) -> TaskModels:
    rng = random.Random(0)
    models = TaskModels(task, champion=champion, n_trees=3)
    for i in range(2000):
        x = {"amount": rng.random() * 100, "count_1d": float(rng.randrange(5)),
             "channel": rng.choice(["web", "pos"])}
        label, scores = rng.random() < 0.1, models.score_one(x)
        example = TrainingExample(task, str(i), str(i), i, label, i, "label", x, scores)
        models.learn_example(example, position=i)
    return models


@pytest.mark.parametrize("task,champion", [("fraud", "arf"), ("fraud", "logreg"), ("lead", "logreg")])
def test_every_registered_model_is_freed_without_the_cycle_collector(task, champion):
    models = trained(task, champion)
    published = persistence.dump(models.subset(CHAMPION), b"k" * 32, 1)
    gc.collect()
    gc.disable()
    try:
        swapped_in = persistence.load(published, b"k" * 32)  # what a worker swaps in, then out
        del swapped_in
        del models  # every model: champion, challengers, rules, hst
        assert gc.collect() == 0, "reference cycles: frozen models would never be freed"
    finally:
        gc.enable()


def test_freeze_reports_how_many_objects_it_froze():
    metrics = Metrics.create(CollectorRegistry())
    try:
        count = freeze(metrics.gc_frozen_objects)
        assert count > 0 and count == gc.get_freeze_count()
        assert metrics.gc_frozen_objects._value.get() == count
    finally:
        gc.unfreeze()


def test_the_interval_is_a_setting():
    assert Settings().gc_freeze_interval_s == 10.0
    assert Settings.from_env({"SCORESTREAM_GC_FREEZE_INTERVAL_S": "0"}).gc_freeze_interval_s == 0.0
