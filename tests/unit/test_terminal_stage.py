"""The terminal stage without Kafka: customer stage → terminal handler (labels in event time) → scorer."""

import zlib
from functools import lru_cache

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import SimulatorConfig, simulate
from stream.pipeline import BatchScorer, InputRecord
from stream.producer import to_record
from stream.terminal_stage import (
    TERMINAL_FEATURES,
    CustomerStage,
    FeaturedTransaction,
    LabelClock,
    TerminalHandler,
    featured_body,
    parse_featured,
    scoring_tasks,
)
from tests.reference import mismatches, terminal_features, transaction_features

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LATENESS = 3_600_000
LABEL_PARTITIONS = 3


@lru_cache
def events(n: int = 4_000) -> list[dict]:
    config = SimulatorConfig(input_events_per_day=300, terminals=40, customers=120, fraud_rate=0.03,
                             web_share=0.0, out_of_order_fraction=0.02)
    return list(simulate(n, seed=11, config=config))


def label_partitions(all_events):
    """The fraud-labels records per partition, in topic order (keyed by event id, as produced)."""
    parts = [[] for _ in range(LABEL_PARTITIONS)]
    for event in all_events:
        if event["topic"] == "fraud-labels":
            _, key, value, ts = to_record(event)
            parts[zlib.crc32(key) % LABEL_PARTITIONS].append((ts, value))
    return parts


def run(all_events, ahead: list[int], batch: int = 50, delay_ms: int = 7 * DAY):
    """The three stages over the file; before each terminal batch the labels are read until the
    clock reaches the batch (the glue's wait), plus ``ahead[i]`` more (any interleaving)."""
    customer = CustomerStage("by-terminal", LATENESS)
    states: dict[bytes, bytes] = {}
    records = [InputRecord(to_record(e)[2], None, 0, i) for i, e in enumerate(all_events)
               if e["topic"] == "transactions"]
    forwarded = customer.score_batch(records, states.get)
    handler = TerminalHandler("by-terminal", "enriched", delay_ms, LATENESS)
    clock = LabelClock(wait_s=1.0)
    clock.set_partitions(range(LABEL_PARTITIONS))
    labels = label_partitions(all_events)
    read = [0] * LABEL_PARTITIONS

    def read_one(partition: int) -> None:
        ts, value = labels[partition][read[partition]]
        read[partition] += 1
        clock.observe(partition, handler.read_label(partition, value), now=0.0)

    terminal_states: dict[bytes, bytes] = {}
    enriched = []
    by_terminal = [InputRecord(o.value, o.key, 0, i) for i, o in enumerate(forwarded.outputs)]
    for n, start in enumerate(range(0, len(by_terminal), batch)):
        chunk = by_terminal[start:start + batch]
        newest = max(parse_featured(r.value).ts_ms for r in chunk)
        for partition in range(LABEL_PARTITIONS):
            while clock.newest.get(partition, 0) < newest and read[partition] < len(labels[partition]):
                read_one(partition)
        for step in range(ahead[n % len(ahead)]):
            partition = step % LABEL_PARTITIONS
            if read[partition] < len(labels[partition]):
                read_one(partition)
        result = handler.handle(chunk, terminal_states.get)
        terminal_states.update({k: v for k, (_, v) in result.state_writes.items()})
        enriched.extend(result.outputs)
    return enriched


def features_by_event(outputs) -> dict[str, dict]:
    return {orjson.loads(o.value)["event_id"]: orjson.loads(o.value)["features"] for o in outputs}


def test_the_stages_equal_both_references_and_the_scorer_publishes_every_feature():
    all_events = events()
    enriched = run(all_events, ahead=[0])
    streamed = features_by_event(enriched)
    reference = terminal_features(all_events)
    assert sum(1 for f in reference.values() if f["terminal_risk_30d"] > 0) > 200
    assert mismatches(streamed, reference)[:5] == []
    assert mismatches(streamed, transaction_features(all_events))[:5] == []  # customer order kept

    scorer = BatchScorer(scoring_tasks("app")["fraud"])
    records = [InputRecord(o.value, o.key, 0, i) for i, o in enumerate(enriched[:20])]
    scores = [orjson.loads(o.value) for o in scorer.score_batch(records, lambda key: None).outputs
              if o.topic == "transaction-scores"]
    assert len(scores) == 20 and all(set(TERMINAL_FEATURES) <= set(s["features"]) for s in scores)
    assert scorer.expired([(b"k", b"x")]) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ahead=st.lists(st.integers(0, 60), min_size=1, max_size=8),
       batch=st.integers(1, 400), delay_days=st.sampled_from([1, 7]))
def test_any_interleaving_of_labels_and_transactions_gives_the_same_features(ahead, batch, delay_days):
    all_events = events(1_500)
    streamed = features_by_event(run(all_events, ahead, batch, delay_days * DAY))
    assert mismatches(streamed, terminal_features(all_events, delay_days * DAY))[:5] == []


def featured(event_id: str, ts: int, terminal: str = "k1") -> bytes:
    return featured_body(FeaturedTransaction(event_id, T0 + ts, "c1", terminal, {"amount": 1.0}))


def label(event_id: str, ts: int, is_fraud: bool = True) -> bytes:
    return orjson.dumps({"event_id": event_id, "ts": T0 + ts, "is_fraud": is_fraud})


def test_duplicates_count_once_and_labels_may_come_first():
    handler = TerminalHandler("in", "out", delay_ms=DAY, lateness_ms=0)
    handler.read_label(0, label("a", 1000))  # before "a" itself
    store: dict[bytes, bytes] = {}
    batch = [InputRecord(featured("a", 0), b"k1", 0, 0), InputRecord(featured("a", 0), b"k1", 0, 1),
             InputRecord(featured("b", DAY), b"k1", 0, 2)]
    result = handler.handle(batch, store.get)
    assert (result.duplicates, result.replayed) == (1, 0)
    again = handler.handle(batch[2:], {k: v for k, (_, v) in result.state_writes.items()}.get)
    assert (again.duplicates, again.replayed) == (0, 1)
    last = orjson.loads(result.outputs[-1].value)["features"]
    assert (last["terminal_tx_count_1d"], last["terminal_risk_1d"], last["amount"]) == (1, 1.0, 1.0)
    assert orjson.loads(result.outputs[-1].value)["customer_id"] == "c1"
    assert [o.key for o in result.outputs] == [b"c1"] * 3


def test_a_label_for_a_transaction_seen_before_is_applied_and_a_late_one_counted():
    handler = TerminalHandler("in", "out", delay_ms=DAY, lateness_ms=0)
    store: dict[bytes, bytes] = {}
    first = handler.handle([InputRecord(featured("a", 0), b"k1", 0, 0),
                            InputRecord(featured("b", 2 * DAY), b"k1", 0, 1)], store.get)
    store.update({k: v for k, (_, v) in first.state_writes.items()})
    handler.read_label(1, label("a", 1000))  # late: b passed it
    second = handler.handle([InputRecord(featured("c", DAY + 5), b"k1", 0, 2)], store.get)
    assert second.late_labels == 1
    assert orjson.loads(second.outputs[0].value)["features"]["terminal_risk_1d"] == 1.0


def test_labels_for_other_workers_terminals_are_dropped_past_the_horizon():
    handler = TerminalHandler("in", "out", delay_ms=DAY, lateness_ms=0)
    assert handler.read_label(0, label("elsewhere", 0)) == T0
    assert handler.read_label(0, label("legit", 0, is_fraud=False)) == T0
    assert handler.read_label(0, b'{"event_id": 3}') is None
    assert list(handler.unmatched) == ["elsewhere"]
    handler.handle([InputRecord(featured("z", 40 * DAY), b"k1", 0, 0)], {}.get)
    assert handler.unmatched == {}


def test_an_invalid_internal_record_is_a_dead_letter():
    handler = TerminalHandler("in", "out", delay_ms=DAY, lateness_ms=0)
    result = handler.handle([InputRecord(b'{"event_id": "x"}', b"k", 0, 0)], {}.get)
    assert result.invalid == ["missing_field"] and result.outputs[0].topic == "dead-letter"


def test_the_label_clock_waits_for_a_quiet_partition_once_then_until_it_speaks_again():
    clock = LabelClock(wait_s=2.0)
    assert clock.blocking(10, since=0.0, now=1.0)  # partitions not known yet
    clock.set_partitions([0, 1])
    clock.observe(0, 100, now=1.0)
    assert clock.time == 0 and clock.blocking(50, since=0.0, now=1.9)
    assert not clock.blocking(50, since=0.0, now=2.0) and clock.timeouts == 1
    assert clock.time == 100 and not clock.blocking(60, since=5.0, now=5.0)  # idle: no new wait
    clock.observe(1, 30, now=6.0)  # it speaks again: waited for anew
    assert clock.time == 30 and clock.blocking(60, since=6.0, now=7.0)
    clock.observe(1, 70, now=7.5)
    assert clock.time == 70 and not clock.blocking(60, since=6.0, now=7.5)
    assert clock.blocking(200, since=7.5, now=9.0)  # both behind, the wait counts from its start
    assert not clock.blocking(200, since=7.5, now=9.5) and clock.idle == {0, 1}
    assert clock.time == float("inf") and clock.timeouts == 3  # both quiet: one wait, not two
