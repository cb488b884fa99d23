"""Exactly River through the real broker: the published scores are River's own predict-then-learn loop.

One partition, every label delivered right after its event and joined at once
(``label_grace_s=0``). Each score message says which training examples its
models had learned (``training_position``); fresh River models replay
``training-examples`` in that order and must give every published score of
every model to 1e-12. With the challengers separate, ``scorestream challengers``
must end with River's own test-then-train models and metrics, to 1e-12.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from online_models.task_models import ALL, CHALLENGERS
from simulator import write_jsonl
from stream import admin, model_store, topics
from tests.exactly_river import differences, immediate_labels_stream, moving, river_progressive
from tests.integration.conftest import consume
from tests.integration.test_learning_loop import run_cli

pytestmark = pytest.mark.integration

INPUTS = 2000
#: Events per second sent: paced so that learning (label → join → trainer) goes on between scores.
RATE = 150.0


async def read_examples(settings) -> list[tuple[int, dict]]:
    """Every record of ``training-examples``, with its offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topics.TRAINING_EXAMPLES, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, 0)
        found: list[tuple[int, dict]] = []
        deadline = time.monotonic() + 30
        while len(found) < end and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            found.extend((r.offset, orjson.loads(r.value)) for r in batch.get(partition, []))
        return found
    finally:
        await consumer.stop()


def wait_until_learned(process, expected: int, timeout: float = 60) -> None:
    """Until the process's trainer has learned ``expected`` examples (every task)."""
    deadline = time.monotonic() + timeout
    learned = 0.0
    while time.monotonic() < deadline:
        learned = sum(v for k, v in process.metrics().items()
                      if k.startswith("scorestream_examples_learned_total"))
        if learned >= expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{process.command} learned {learned} of {expected} examples")


@pytest.mark.parametrize("mode", ["inline", "separate", "trainer"])
def test_published_scores_are_rivers_own_loop(engine, start_worker, tmp_path, mode):
    """Inline, every model's score is published and checked; separate, the champion's and the
    detector's are, and ``scorestream challengers`` ends with River's own test-then-train models.
    With a trainer, the workers' scores are those of River's models at the training position of
    the models the trainer last published, and the trainer ends with River's own models."""
    challengers = "separate" if mode == "separate" else "inline"  # with a trainer: it learns them all
    settings = replace(engine, partitions=1, label_grace_s=0.0, challengers=challengers,
                       learning="trainer" if mode == "trainer" else "workers", model_publish_interval_s=0.5)
    asyncio.run(admin.delete_topics(settings, prefix="it-"))
    asyncio.run(admin.create_topics(settings))
    events = immediate_labels_stream(INPUTS, seed=7)
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)

    worker = start_worker(settings)
    shadow = {"inline": None, "separate": lambda: start_worker(settings, "challengers", "challengers"),
              "trainer": lambda: start_worker(settings, "trainer", "trainer")}[mode]
    shadow = shadow() if shadow is not None else None
    produced = run_cli(settings, "produce", str(path), "--rate", str(RATE))
    assert produced.returncode == 0, produced.stderr
    scored = consume(settings, (topics.TRANSACTION_SCORES, topics.LEAD_SCORES), INPUTS, timeout=120)
    examples = asyncio.run(read_examples(settings))  # holds every example a published score learned

    inputs = {topics.TRANSACTION_SCORES: topics.TRANSACTIONS, topics.LEAD_SCORES: topics.WEB_EVENTS}
    for score_topic, task in ((topics.TRANSACTION_SCORES, "fraud"), (topics.LEAD_SCORES, "lead")):
        scores = [body for topic, body in scored if topic == score_topic]
        sent = [e["event_id"] for e in events if e["topic"] == inputs[score_topic]]
        assert [body["event_id"] for body in scores] == sent, "each event scored once, in order"
        learned = [body for _, body in examples if body["task"] == task]
        worst = differences(task, examples, scores)
        print(f"\n{task} ({mode}): {len(scores)} scores, {len(learned)} examples "
              f"{dict(Counter((e['cause'], e['label']) for e in learned))}, "
              f"last training position {scores[-1]['training_position']}, max |engine - River| {worst}")
        champion = settings.champion(task)
        published = ({"logreg", "hoeffding", "arf", "rules"} if mode == "inline"
                     else {champion}) | ({"hst"} if task == "fraud" else set())
        assert set(worst) == published
        assert all(difference <= 1e-12 for difference in worst.values()), worst
        assert all(moving(scores)[name] > 5 for name in published - {"rules", "hst"}), moving(scores)
        assert {e["label"] for e in learned} == {True, False}
        if task == "fraud":  # every label learned, in the order of the transactions
            offsets = sorted(offset for offset, body in examples if body["task"] == task)
            lags = sorted(i - bisect.bisect_right(offsets, body["training_position"])
                          for i, body in enumerate(scores))
            print(f"fraud labels not yet learned when a transaction was scored: median "
                  f"{lags[len(lags) // 2]}, max {lags[-1]}; none (River's strict loop) for "
                  f"{lags.count(0)} of {len(lags)}")
            positions = len({body["training_position"] for body in scores})
            assert positions > (5 if mode == "trainer" else 100), f"learning went on: {positions}"
            in_order = [e["event_id"] for e in learned]
            assert in_order == sent[:len(in_order)] and len(in_order) >= len(sent) - 5

    if shadow is not None:  # a learner yields the CPU to the workers' scoring
        assert os.getpriority(os.PRIO_PROCESS, shadow.process.pid) == settings.learner_nice == 10
    if mode == "trainer":
        swaps = {k: v for k, v in worker.metrics().items() if k.startswith("scorestream_model_swaps_total")}
        assert all(count > 5 for count in swaps.values()) and len(swaps) == 2, swaps
    if shadow is not None:
        wait_until_learned(shadow, len(examples))
        shadow.stop()  # a snapshot at shutdown: the challengers as they ended
        for task in ("fraud", "lead"):
            ours = model_store.restore(task, settings, CHALLENGERS if mode == "separate" else ALL)
            names = [name for name in ours.names if name != "hst"]
            assert set(names) == {"logreg", "hoeffding", "arf", "rules"}  # the champion's too
            rivers, river_auc = river_progressive(task, names, examples)
            count = sum(body["task"] == task for _, body in examples)
            probes = [body["features"] for _, body in examples if body["task"] == task]
            worst = {name: max(abs(ours.models[name].predict_proba_one(x).get(True, 0.0)
                                   - rivers[name].predict_proba_one(x).get(True, 0.0)) for x in probes)
                     for name in names}
            auc = {name: ours.evaluations[name].roc_auc.get() for name in names}
            print(f"{task} challengers: {count} examples, max |ours - River| {worst}, "
                  f"rolling ROC AUC {auc} (River {river_auc})")
            assert all(ours.learned[name] == ours.evaluations[name].evaluated == count for name in names)
            assert all(difference <= 1e-12 for difference in worst.values()), worst
            # the trainer judges the champion on the scores the workers published (a few seconds
            # staler than River's strict loop); every other model, like River, just before it learns
            at_label = [name for name in names if mode == "separate" or name != settings.champion(task)]
            assert all(abs(auc[name] - river_auc[name]) <= 1e-12 for name in at_label), (auc, river_auc)
