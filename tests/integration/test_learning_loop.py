"""The learning loop through the real broker: every label learned once, on the features it was scored with."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from simulator import SimulatorConfig, simulate, write_jsonl
from stream import topics
from stream.events import parse_ts
from tests.integration.conftest import REPO, consume, settings_env

pytestmark = pytest.mark.integration


async def read_partition(settings, topic: str) -> list[dict]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, 0)
        found: list[dict] = []
        deadline = time.monotonic() + 30
        while len(found) < end and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            found.extend(orjson.loads(r.value) for r in batch.get(partition, []))
        return found
    finally:
        await consumer.stop()


def run_cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=settings_env(settings),
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("learning", ["workers", "trainer"])
def test_every_label_is_learned_once_on_the_scored_features(engine, start_worker, tmp_path, learning):
    """With a trainer, it does the join and the learning, and the worker swaps its models in."""
    engine = replace(engine, learning=learning, model_publish_interval_s=1.0)
    config = SimulatorConfig(fraud_rate=0.01)
    events = list(simulate(40_000, seed=31, config=config))
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    n_inputs = sum(e["topic"] in topics.INPUT_TOPICS for e in events)
    fraud_labels = [e for e in events if e["topic"] == topics.FRAUD_LABELS]
    assert len(fraud_labels) > 50

    worker = start_worker(engine)
    learner = start_worker(engine, "trainer", "trainer") if learning == "trainer" else worker
    shadow = start_worker(engine, name="challengers", command="challengers")  # the challengers, separate
    assert run_cli(engine, "produce", str(path)).returncode == 0
    scored = consume(engine, (topics.TRANSACTION_SCORES, topics.LEAD_SCORES), n_inputs, timeout=300)
    features_at_scoring = {body["event_id"]: body["features"] for _, body in scored}

    # every fraud label within the horizon becomes exactly one example, caused by the label
    # labels wait until the snapshots' event time is an hour (the grace) past them
    tx_ids = {e["event_id"] for e in events if e["topic"] == topics.TRANSACTIONS}
    watermark = max(parse_ts(e["ts"]) for e in events if e["topic"] == topics.TRANSACTIONS)
    expected = {e["event_id"] for e in fraud_labels
                if e["event_id"] in tx_ids and parse_ts(e["ts"]) <= watermark - 3_600_000}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        examples = asyncio.run(read_partition(engine, topics.TRAINING_EXAMPLES))
        labelled = [e for e in examples if e["task"] == "fraud" and e["cause"] == "label"]
        if len(labelled) >= len(expected):
            break
        time.sleep(1)
    print(f"\n{len(examples)} examples, {len(labelled)} fraud labels joined, {len(expected)} expected")
    ids = Counter(e["example_id"] for e in labelled)
    assert set(ids) == expected and set(ids.values()) == {1}, "each label learned exactly once"
    truth = {e["event_id"]: e["is_fraud"] for e in fraud_labels}
    for example in labelled:
        assert example["label"] == truth[example["example_id"]]
        # learned on the features the score was computed from, never on later ones
        assert example["features"] == features_at_scoring[example["event_id"]]
    conversions = [e for e in examples if e["task"] == "lead" and e["cause"] == "label"]
    assert conversions and all(e["label"] for e in conversions)
    negatives = [e for e in examples if e["cause"] == "horizon"]
    assert negatives and not any(e["label"] for e in negatives)
    assert len({(e["task"], e["example_id"]) for e in examples}) == len(examples)

    # the learner (every worker, or the trainer) learns every example of the topic, and so does
    # the challengers process
    for process in (learner, shadow):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            samples = process.metrics()
            learned = sum(v for k, v in samples.items()
                          if k.startswith("scorestream_examples_learned_total"))
            if learned >= len(examples):
                break
            time.sleep(0.5)
        assert learned == len(examples), process.command

    if learning == "trainer":  # the worker scores with what the trainer published last
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            published, used = ({k.split("{")[1]: v for k, v in process.metrics().items()
                                if k.startswith("scorestream_model_training_position")}
                               for process in (learner, worker))
            if published and used == published:
                break
            time.sleep(0.5)
        assert used == published and len(used) == 2, (used, published)
        swaps = {k: v for k, v in worker.metrics().items() if k.startswith("scorestream_model_swaps_total")}
        assert len(swaps) == 2 and all(count >= 1 for count in swaps.values()), swaps

    # the models survive a restart: a signed snapshot at shutdown, restored at start
    assert {worker.stop(), learner.stop(), shadow.stop()} == {0}
    shown = run_cli(engine, "models")
    assert shown.returncode == 0, shown.stderr
    print(shown.stdout)
    listed = {(cells[0], cells[3] if "*" in cells else cells[2]): cells
              for cells in (line.split() for line in shown.stdout.splitlines()[1:])}
    # the worker's champions and detector, scored at event time; every classifier at label time
    assert set(listed) == {("fraud.arf", "event"), ("fraud.hst", "event"), ("lead.logreg", "event")} | {
        (f"{task}.{name}", "label") for task in ("fraud", "lead")
        for name in ("logreg", "hoeffding", "arf", "rules")}
    champions = {name for (name, _), cells in listed.items() if "*" in cells}
    assert champions == {"fraud.arf", "lead.logreg"}
    command = "trainer" if learning == "trainer" else "worker"
    restarted = start_worker(engine, name="restarted", command=command)
    time.sleep(3)
    again = sum(v for k, v in restarted.metrics().items()
                if k.startswith("scorestream_examples_learned_total"))
    assert again == 0, f"a restored {restarted.command} does not learn the same examples twice"


def test_two_workers_keep_identical_models(engine, start_worker, tmp_path):
    """Two replicas share the scoring, and each learns every example in the same order."""
    from bench.common import group_stable
    from stream import model_store
    from tests.integration.conftest import free_port

    events = list(simulate(20_000, seed=32, config=SimulatorConfig(fraud_rate=0.02)))
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    n_inputs = sum(e["topic"] in topics.INPUT_TOPICS for e in events)
    first = start_worker(name="one")
    second_settings = replace(engine, home=tmp_path / "second", web_port=free_port())
    second = start_worker(second_settings, name="two")
    # serving /metrics is not being in the group: produced before the rebalance, the stream can
    # be scored by the first worker alone
    assert asyncio.run(group_stable(engine, engine.app_id, 2)), "the two workers never formed a group"
    time.sleep(1.0)  # the (empty) tables' recovery ends after the group is stable
    assert run_cli(engine, "produce", str(path)).returncode == 0
    consume(engine, (topics.TRANSACTION_SCORES, topics.LEAD_SCORES), n_inputs, timeout=300)

    deadline, stable_since, seen = time.monotonic() + 120, time.monotonic(), -1
    while time.monotonic() < deadline:  # until the join is done and both learned it all
        examples = asyncio.run(read_partition(engine, topics.TRAINING_EXAMPLES))
        if len(examples) != seen:
            seen, stable_since = len(examples), time.monotonic()
        learned = [sum(v for k, v in w.metrics().items()
                       if k.startswith("scorestream_examples_learned_total")) for w in (first, second)]
        if examples and learned == [len(examples)] * 2 and time.monotonic() - stable_since > 5:
            break
        time.sleep(1)
    assert examples and learned == [len(examples)] * 2, (learned, len(examples))
    consumed = [sum(v for k, v in w.metrics().items()
                    if k.startswith('scorestream_events_consumed_total{topic="transactions"}'))
                for w in (first, second)]
    assert all(consumed), f"both workers score part of the stream: {consumed}"

    # a clean stop writes each worker's final snapshot (killed, it would leave an older one)
    assert first.stop() == 0, f"the first worker did not stop cleanly:\n{first.log()}"
    assert second.stop() == 0, f"the second worker did not stop cleanly:\n{second.log()}"
    for task in ("fraud", "lead"):
        probes = [e["features"] for e in examples if e["task"] == task][:50]
        one = model_store.restore(task, engine, engine.worker_holds)
        two = model_store.restore(task, second_settings, engine.worker_holds)
        assert one.learned == two.learned
        for x in probes:
            assert one.score_one(x) == two.score_one(x), "replicas must stay identical"
