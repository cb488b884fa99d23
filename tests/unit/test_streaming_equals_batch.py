"""The pure core's features equal the independent pandas reference, event by event (no broker)."""

import orjson
import pytest

from simulator import SimulatorConfig, simulate
from stream.pipeline import TASKS, BatchScorer, InputRecord
from tests.reference import mismatches, transaction_features, web_features


def stream_features(events: list[dict], task: str, batch: int) -> dict[str, dict]:
    """Score events of one task in file order through the batch core; event_id → features."""
    scorer = BatchScorer(TASKS[task])
    topic = TASKS[task].input_topic
    store: dict[bytes, bytes] = {}
    records = [InputRecord(orjson.dumps({k: v for k, v in e.items() if k != "topic"}), None, 0, i)
               for i, e in enumerate(e for e in events if e["topic"] == topic)]
    features = {}
    for start in range(0, len(records), batch):
        result = scorer.score_batch(records[start:start + batch], store.get)
        store.update({key: value for key, (_, value) in result.state_writes.items()})
        for out in result.outputs:
            body = orjson.loads(out.value)
            features[body["event_id"]] = body["features"]
    return features


@pytest.fixture(scope="module", params=["dense", "long"])
def events(request):
    """A dense week with 5 % late events, and a sparse stream spanning ~2 months (pruning)."""
    if request.param == "dense":
        config = SimulatorConfig(out_of_order_fraction=0.05)
    else:
        config = SimulatorConfig(out_of_order_fraction=0.02, input_events_per_day=600,
                                 customers=150, visitors=150)
    return list(simulate(30_000, seed=3, config=config))


@pytest.mark.parametrize("batch", [1, 500])
def test_customer_features_equal_the_reference(events, batch):
    reference = transaction_features(events)
    assert len(reference) > 10_000
    assert mismatches(stream_features(events, "fraud", batch), reference)[:5] == []


@pytest.mark.parametrize("batch", [1, 500])
def test_visitor_features_equal_the_reference(events, batch):
    reference = web_features(events)
    assert len(reference) > 10_000
    assert mismatches(stream_features(events, "lead", batch), reference)[:5] == []
