"""The label join's glue: labels meet their snapshots whatever the delivery order (no broker)."""

from dataclasses import asdict

import orjson
import pytest

from online_models.label_join import fraud_label, fraud_snapshot
from simulator import SimulatorConfig, simulate
from stream.events import parse_ts
from stream.learning import ChangelogStore, JoinHandler, route_labels
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


@pytest.mark.parametrize("sources", [1, 2])
def test_a_label_waits_for_the_slowest_input_partition(sources):
    """Input partition 1 runs days ahead of partition 0 (a backlog read unevenly): a label on
    partition 0's transaction must wait for that transaction's snapshot, not be dropped."""
    hour = 3_600_000
    handler = JoinHandler("fraud", ChangelogStore({}), ChangelogStore({}), sources=sources)
    early = [_snapshot_record("b", 240 * hour, source=1, offset=1),  # ten days ahead
             _label_record("c", 3 * hour, offset=2)]  # "c" is on partition 0, not scored yet
    examples = handler.handle(early)
    examples += handler.handle([_snapshot_record("c", 2 * hour, source=0, offset=3),
                                _snapshot_record("d", 240 * hour, source=0, offset=4)])
    joined = [e.example_id for e in examples if e.cause == "label"]
    if sources == 2:
        assert joined == ["c"] and handler.join.counts["label.joined"] == 1
    else:  # partition 0 not counted as a source: the label looks due, finds nothing, is lost
        assert joined == [] and handler.join.counts["label.joined"] == 0
