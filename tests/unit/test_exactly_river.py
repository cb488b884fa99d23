"""Exactly River without a broker: the pure scoring, label join and trainer add no learning error."""

import orjson
import pytest

from online_models.registry import ModelOptions
from online_models.task_models import TaskModels
from stream.learning import (
    LABEL_TOPICS,
    ChangelogStore,
    JoinHandler,
    example_records,
    join_policy,
    learn_records,
    route_labels,
)
from stream.pipeline import TASKS, BatchScorer, InputRecord
from tests.exactly_river import differences, immediate_labels_stream, moving

TREES = 3


def records(events, offsets):
    """Events as records of one partition, at their offsets (which must increase: replays are skipped)."""
    return [InputRecord(orjson.dumps({k: v for k, v in e.items() if k != "topic"}), None, 0, offset)
            for offset, e in zip(offsets, events, strict=True)]


def run_engine(task, events, batch=7):
    """Score, join and learn batch by batch, the trainer one batch behind the scoring."""
    spec = TASKS[task]
    models = TaskModels(task, n_trees=TREES)
    scorer = BatchScorer(spec, models=models, join_topic="join")
    handler = JoinHandler(task, ChangelogStore({}), ChangelogStore({}), join_policy(task, 0))
    state: dict[bytes, bytes] = {}
    topic: list[bytes] = []  # the single-partition training-examples topic
    scores, learned = [], 0
    for start in range(0, len(events), batch):
        chunk = list(enumerate(events[start:start + batch], start))
        inputs = [(i, e) for i, e in chunk if e["topic"] == spec.input_topic]
        result = scorer.score_batch(records([e for _, e in inputs], [i for i, _ in inputs]), state.get)
        assert not result.invalid, result.invalid
        state.update({k: v for k, (_, v) in result.state_writes.items()})
        scores += [orjson.loads(o.value) for o in result.outputs if o.topic == spec.score_topic]
        labels = [(i, e) for i, e in chunk if e["topic"] == LABEL_TOPICS[task]]
        routed = route_labels(task, records([e for _, e in labels], [i for i, _ in labels]), "join")
        joined = [o for o in result.outputs if o.topic == "join"] + routed.outputs
        examples = handler.handle([InputRecord(o.value, o.key, 0, i) for i, o in enumerate(joined)])
        learn_records({task: models}, [(i, topic[i]) for i in range(learned, len(topic))])
        learned = len(topic)
        topic += [record.value for record in example_records(examples)]
    return scores, [(offset, orjson.loads(raw)) for offset, raw in enumerate(topic)]


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_published_scores_are_rivers_loop_in_the_stated_learning_order(task):
    scores, examples = run_engine(task, immediate_labels_stream(2000, seed=3))
    worst = differences(task, examples, scores, ModelOptions(n_trees=TREES))
    assert set(worst) >= {"logreg", "hoeffding", "arf", "rules"}
    assert all(difference <= 1e-12 for difference in worst.values()), worst
    assert all(moving(scores)[name] > 5 for name in ("logreg", "hoeffding", "arf")), moving(scores)
    positions = [body["training_position"] for body in scores]
    assert positions == sorted(positions) and len(set(positions)) > 40  # learning went on between scores
    labels = {body["label"] for _, body in examples}
    assert labels == {True, False}, "both classes were learned"
    if task == "fraud":  # every transaction's label, learned in the order of the transactions
        assert [body["event_id"] for _, body in examples] == [body["event_id"] for body in scores]
    else:
        assert {body["cause"] for _, body in examples} == {"label", "horizon"}
