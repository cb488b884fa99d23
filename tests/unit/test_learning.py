"""The learning glue: labels meet their snapshots whatever the delivery order; examples learned once."""

from dataclasses import asdict

import orjson
import pytest
from prometheus_client import CollectorRegistry

from online_models.label_join import TrainingExample, fraud_label, fraud_snapshot
from online_models.task_models import TaskModels
from simulator import SimulatorConfig, simulate
from stream.events import parse_ts
from stream.learning import ChangelogStore, JoinHandler, learn_records, route_labels
from stream.learning_agents import _count_learning
from stream.metrics import Metrics
from stream.pipeline import TASKS, BatchScorer, InputRecord


def scored_and_labels(task: str):
    """(time, join-topic record) for every snapshot and label of a simulated stream."""
    events = list(simulate(30_000, seed=8, config=SimulatorConfig(fraud_rate=0.02)))
    spec = TASKS[task]
    scorer = BatchScorer(spec, join_topic="join")
    inputs = [e for e in events if e["topic"] == spec.input_topic]
    store: dict[bytes, bytes] = {}
    timed = []
    for start in range(0, len(inputs), 500):
        chunk = inputs[start:start + 500]
        records = [InputRecord(orjson.dumps({k: v for k, v in e.items() if k != "topic"}), None, 0, i)
                   for i, e in enumerate(chunk, start)]
        result = scorer.score_batch(records, store.get)
        store.update({k: v for k, (_, v) in result.state_writes.items()})
        snapshots = [o for o in result.outputs if o.topic == "join"]
        timed += [(parse_ts(e["ts"]), o) for e, o in zip(chunk, snapshots, strict=True)]
    label_topic = "fraud-labels" if task == "fraud" else "conversions"
    labels = [e for e in events if e["topic"] == label_topic]
    routed = route_labels(task, [InputRecord(orjson.dumps(e), None, 0, i) for i, e in enumerate(labels)],
                          "join").outputs
    return timed, [(parse_ts(e["ts"]), o) for e, o in zip(labels, routed, strict=True)]


def join_all(task, delivered):
    handler = JoinHandler(task, ChangelogStore({}), ChangelogStore({}))
    examples = []
    for start in range(0, len(delivered), 200):
        chunk = delivered[start:start + 200]
        batch = [InputRecord(o.value, o.key, 0, start + i) for i, o in enumerate(chunk)]
        examples += handler.handle(batch)
    return {(e.example_id, e.label, e.cause, e.label_ts_ms) for e in examples}, handler.join.counts


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_labels_delivered_first_or_in_order_give_the_same_examples(task):
    snapshots, labels = scored_and_labels(task)
    in_order = [o for _, o in sorted(snapshots + labels, key=lambda item: item[0])]
    ahead = [o for _, o in labels] + [o for _, o in sorted(snapshots, key=lambda item: item[0])]
    expected, counts = join_all(task, in_order)
    assert counts["label.joined"] > 10
    assert join_all(task, ahead)[0] == expected
    ids = [example_id for example_id, *_ in expected]
    assert len(ids) == len(set(ids)), "each example is learned once"


def _snapshot_record(event_id: str, ts_ms: int, source: int, offset: int) -> InputRecord:
    snapshot = fraud_snapshot(event_id, ts_ms, {"amount": 1.0}, {"logreg": 0.5})
    return InputRecord(orjson.dumps({"snapshot": asdict(snapshot), "source": source}),
                       event_id.encode(), 0, offset)


def _label_record(event_id: str, ts_ms: int, offset: int) -> InputRecord:
    label = fraud_label(event_id, ts_ms, True)
    return InputRecord(orjson.dumps({"label": asdict(label)}), event_id.encode(), 0, offset)


def test_the_join_clock_is_the_slowest_input_partition():
    """Input partition 1 runs days ahead of partition 0 (a backlog read unevenly): the join
    partition's clock, which makes labels due and horizons expire, follows partition 0."""
    hour = 3_600_000
    handler = JoinHandler("fraud", ChangelogStore({}), ChangelogStore({}), sources=2)
    handler.handle([_snapshot_record("b", 240 * hour, source=1, offset=0),  # ten days ahead
                    _label_record("c", 3 * hour, offset=1)])  # "c" is on partition 0, not scored yet
    assert handler.clock(0) == 0, "partition 0 has not spoken: no clock yet"
    examples = handler.handle([_snapshot_record("c", 2 * hour, source=0, offset=2)])
    assert handler.clock(0) == 2 * hour and examples == []
    examples = handler.handle([_snapshot_record("d", 300 * hour, source=0, offset=3)])
    assert handler.clock(0) == 240 * hour
    assert [e.example_id for e in examples if e.cause == "label"] == ["c"]
    assert handler.join.counts["label.joined"] == 1


def test_a_fraud_label_waits_for_its_snapshot_that_comes_out_of_order():
    """A snapshot can trail later ones of its partition by more than the grace (a stage before
    the scorer merging partitions): the label is due, its snapshot is not there yet, comes later."""
    hour = 3_600_000
    handler = JoinHandler("fraud", ChangelogStore({}), ChangelogStore({}))
    examples = handler.handle([_snapshot_record("a", 1 * hour, source=0, offset=0),
                               _label_record("b", 3 * hour, offset=1),
                               _snapshot_record("c", 48 * hour, source=0, offset=2)])  # "b" is due
    assert examples == [] and len(handler.pending) == 1
    examples = handler.handle([_snapshot_record("b", 2 * hour, source=0, offset=3),
                               _snapshot_record("d", 49 * hour, source=0, offset=4)])
    assert [e.example_id for e in examples if e.cause == "label"] == ["b"]
    assert len(handler.pending) == 0 and handler.join.counts["label.unknown"] == 0


def example_bytes(task, example_id, ts_ms):
    return TrainingExample(task, example_id, example_id, ts_ms, False, ts_ms, "horizon", {"amount": 1.0},
                           {}).to_bytes()


def test_a_copy_sent_again_is_skipped_and_counted_a_replay_of_the_topic_is_not():
    models = {task: TaskModels(task, n_trees=1) for task in ("fraud", "lead")}
    t1, t2, t3 = (example_bytes("fraud", f"t{i}", 1000 * i) for i in range(3))
    v1 = example_bytes("lead", "v1/s1", 1500)
    records = list(enumerate([t1, v1, t2, t1, v1, t3]))  # t1 and v1 sent twice by the join
    first = learn_records(models, records)
    assert first.learned == {"fraud": 3, "lead": 1} and first.duplicates == {"fraud": 1, "lead": 1}
    again = learn_records(models, records)  # the topic read again after a restart: offsets say so
    assert again.learned == again.duplicates == {}
    assert models["fraud"].learned["logreg"] == 3 and models["fraud"].duplicates == 1
    registry = CollectorRegistry()
    _count_learning(Metrics.create(registry), first)
    assert registry.get_sample_value("scorestream_duplicate_examples_total", {"task": "fraud"}) == 1
    assert registry.get_sample_value("scorestream_examples_learned_total", {"task": "lead"}) == 1
