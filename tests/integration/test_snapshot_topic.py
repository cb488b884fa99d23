"""Model snapshots through the snapshot topic: a worker on a new machine starts where the last one stopped."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from simulator import SimulatorConfig, simulate, write_jsonl
from stream import model_store, snapshot_topic, topics
from stream.pipeline import TASKS
from tests.integration.conftest import consume, free_port
from tests.integration.test_learning_loop import read_partition, run_cli

pytestmark = pytest.mark.integration

KEY = "the secret every process of the integration test shares"


def learned(worker) -> float:
    return sum(v for k, v in worker.metrics().items() if k.startswith("scorestream_examples_learned_total"))


def wait_until_learned(worker, settings, timeout: float = 120) -> list[dict]:
    """The training examples, once the join has stopped making them and ``worker`` learned them all."""
    deadline, stable_since, seen = time.monotonic() + timeout, time.monotonic(), -1
    while time.monotonic() < deadline:
        examples = asyncio.run(read_partition(settings, topics.TRAINING_EXAMPLES))
        if len(examples) != seen:
            seen, stable_since = len(examples), time.monotonic()
        if examples and learned(worker) == len(examples) and time.monotonic() - stable_since > 5:
            return examples
        time.sleep(1)
    raise AssertionError(f"learned {learned(worker)} of {seen} examples")


def test_a_worker_on_a_new_machine_restores_the_models_from_the_snapshot_topic(engine, start_worker,
                                                                                tmp_path):
    settings = replace(engine, model_key=KEY)
    holds = settings.worker_holds
    events = list(simulate(20_000, seed=41, config=SimulatorConfig(fraud_rate=0.02)))
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    first = start_worker(settings, name="first")
    assert run_cli(settings, "produce", str(path)).returncode == 0
    consume(settings, (topics.TRANSACTION_SCORES, topics.LEAD_SCORES),
            sum(e["topic"] in topics.INPUT_TOPICS for e in events), timeout=300)
    examples = wait_until_learned(first, settings)
    first.stop()  # a snapshot at shutdown: saved, then published

    saved = {task: model_store.restore(task, settings, holds) for task in TASKS}
    published = asyncio.run(snapshot_topic.read(settings, TASKS))
    for task, models in saved.items():
        manifest, blob = next(published.snapshots(task))
        assert (manifest.position, manifest.version) == (models.position, models.version)
        assert blob == model_store.snapshot_path(settings, task, holds).read_bytes()
        assert models.position >= 0 and sum(models.learned.values()) > 0

    # a new machine: an empty home, the same key
    new_machine = replace(settings, home=tmp_path / "new-machine", web_port=free_port())
    second = start_worker(new_machine, name="second")
    time.sleep(5)
    assert learned(second) == 0, "restored from the topic: nothing of training-examples learned again"
    second.stop()
    for task, models in saved.items():
        restored = model_store.restore(task, new_machine, holds)  # what it held, saved at its shutdown
        assert (restored.position, restored.version) == (models.position, models.version + 1)
        assert restored.learned == models.learned
        for x in [e["features"] for e in examples if e["task"] == task][:50]:
            assert restored.score_one(x) == models.score_one(x)
    # its publish deleted the chunks of the snapshot it superseded: one whole snapshot per name
    again = asyncio.run(snapshot_topic.read(settings, TASKS))
    assert {task: len(again.candidates[task]) for task in TASKS} == {task: 1 for task in TASKS}
    assert again.skipped == {}

    # another key: the topic's snapshots are refused, the worker says why, and learns afresh
    other_key = replace(settings, home=tmp_path / "other-key", web_port=free_port(),
                        model_key="a secret the others do not share")
    third = start_worker(other_key, name="third")
    deadline = time.monotonic() + 120
    while learned(third) < len(examples) and time.monotonic() < deadline:
        time.sleep(1)
    assert learned(third) == len(examples)
    said = third.log()
    for task in TASKS:
        assert f"refusing the {task} snapshot v{saved[task].version + 1}" in said
    assert "bad signature" in said and "SCORESTREAM_MODEL_KEY is the same secret" in said
