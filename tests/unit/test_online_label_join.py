"""Point-in-time label join: exactly-once examples, late and duplicate labels, negatives at the horizon."""

import random
from collections.abc import MutableMapping

import pytest

from online_models.label_join import (
    CAUSE_HORIZON,
    CAUSE_LABEL,
    DAY_MS,
    POLICIES,
    JoinPolicy,
    Label,
    LabelJoin,
    TrainingExample,
    conversion,
    fraud_label,
    fraud_snapshot,
    lead_snapshot,
)

H = 7 * DAY_MS
POLICY = JoinPolicy(horizon_ms=H, grace_ms=0)
T0 = 1_767_225_600_000


def tx(i, ts, amount=10.0, score=0.1):
    return fraud_snapshot(f"x{i}", ts, {"amount": amount, "customer_tx_count_1d": i}, {"logreg": score})


def web(visitor, session, i, ts, depth):
    features = {"current_session_depth": depth, "device": "mobile"}
    return lead_snapshot(visitor, session, f"w{i}", ts, features, {"logreg": depth / 10})


# --- fraud ---------------------------------------------------------------------------------------

def test_fraud_label_joins_once_with_what_the_models_saw():
    join = LabelJoin("fraud", {}, POLICY)
    assert join.record(tx(1, T0, amount=250.0, score=0.7)) == "stored"
    joined = join.apply_label(fraud_label("x1", T0 + DAY_MS, True))
    assert joined.outcome == "joined"
    (example,) = joined.examples
    assert example == TrainingExample("fraud", "x1", "x1", T0, True, T0 + DAY_MS, CAUSE_LABEL,
                                      {"amount": 250.0, "customer_tx_count_1d": 1}, {"logreg": 0.7})
    for second in (fraud_label("x1", T0 + 2 * DAY_MS, True), fraud_label("x1", T0 + 2 * DAY_MS, False)):
        assert join.apply_label(second) == ([], "duplicate")
    assert join.counts["label.duplicate"] == 2 and join.counts["label.joined"] == 1
    assert join.advance(T0 + 30 * DAY_MS) == []  # labelled: no negative at the horizon either


def test_a_cleared_dispute_is_a_negative_example_at_once():
    join = LabelJoin("fraud", {}, POLICY)
    join.record(tx(1, T0))
    (example,) = join.apply_label(fraud_label("x1", T0 + DAY_MS, False)).examples
    assert (example.label, example.cause) == (False, CAUSE_LABEL)


def test_label_for_a_transaction_never_scored_here_is_unknown():
    join = LabelJoin("fraud", {}, POLICY)
    assert join.apply_label(fraud_label("nope", T0, True)) == ([], "unknown")
    assert join.counts["label.unknown"] == 1


def test_unlabelled_transaction_becomes_negative_once_the_horizon_has_passed():
    store = {}
    join = LabelJoin("fraud", store, POLICY)
    join.record(tx(1, T0))
    assert join.advance(T0 + H) == []  # not past yet
    (example,) = join.advance(T0 + H + 1)
    assert (example.label, example.cause, example.label_ts_ms) == (False, CAUSE_HORIZON, T0 + H)
    assert join.apply_label(fraud_label("x1", T0 + H, True)) == ([], "late")  # marker kept
    assert join.advance(T0 + 2 * H + 1) == [] and store == {}  # marker forgotten after one more horizon
    assert join.apply_label(fraud_label("x1", T0 + H, True)).outcome == "unknown"


def test_label_past_the_horizon_is_late_and_the_example_stays_negative():
    join = LabelJoin("fraud", {}, POLICY)
    join.record(tx(1, T0))
    assert join.apply_label(fraud_label("x1", T0 + H + 1, True)) == ([], "late")
    (example,) = join.advance(T0 + H + 1)
    assert example.label is False


def test_grace_lets_labels_lag_behind_the_watermark():
    join = LabelJoin("fraud", {}, JoinPolicy(horizon_ms=H, grace_ms=3_600_000))
    join.record(tx(1, T0))
    assert join.advance(T0 + H + 1) == []
    (example,) = join.apply_label(fraud_label("x1", T0 + H, True)).examples  # in time, though behind
    assert example.label is True


def test_a_replayed_transaction_does_not_make_a_second_example():
    join = LabelJoin("fraud", {}, POLICY)
    assert join.record(tx(1, T0, score=0.1)) == "stored"
    assert join.record(tx(1, T0, score=0.2)) == "replaced"  # same event scored again: last score kept
    join.apply_label(fraud_label("x1", T0 + DAY_MS, True))
    assert join.record(tx(1, T0, score=0.3)) == "closed"
    assert join.advance(T0 + 100 * DAY_MS) == []


# --- leads ---------------------------------------------------------------------------------------

def test_a_session_is_kept_as_its_last_event():
    join = LabelJoin("lead", {}, POLICY)
    for depth in (1, 2, 3):
        join.record(web("v1", "s1", depth, T0 + depth * 60_000, depth))
    assert join.record(web("v1", "s1", 9, T0 + 90_000, 9)) == "stale"  # a late event, older than the newest
    (example,) = join.apply_label(conversion("v1", T0 + 3_600_000)).examples
    assert (example.example_id, example.event_id, example.features["current_session_depth"]) == (
        "v1/s1", "w3", 3)
    assert example.scores == {"logreg": 0.3} and example.event_ts_ms == T0 + 180_000


def test_conversion_labels_the_sessions_in_the_horizon_before_it():
    join = LabelJoin("lead", {}, POLICY)
    join.record(web("v1", "old", 1, T0 - 8 * DAY_MS, 1))  # more than a horizon before
    join.record(web("v1", "s1", 2, T0, 2))
    join.record(web("v1", "s2", 3, T0 + 2 * DAY_MS, 3))
    join.record(web("v1", "after", 4, T0 + 4 * DAY_MS, 4))  # after the conversion
    join.record(web("v2", "other", 5, T0, 5))  # another visitor
    joined = join.apply_label(conversion("v1", T0 + 3 * DAY_MS))
    assert [(e.example_id, e.label) for e in joined.examples] == [("v1/s1", True), ("v1/s2", True)]
    assert all(e.event_ts_ms <= e.label_ts_ms <= e.event_ts_ms + H for e in joined.examples)
    assert join.apply_label(conversion("v1", T0 + 3 * DAY_MS)).outcome == "duplicate"
    expired = join.advance(T0 + 20 * DAY_MS)
    assert [(e.example_id, e.label) for e in expired] == [  # in order of their horizon
        ("v1/old", False), ("v2/other", False), ("v1/after", False)]


def test_a_labelled_session_is_not_reopened_by_its_later_events():
    join = LabelJoin("lead", {}, POLICY)
    join.record(web("v1", "s1", 1, T0, 1))
    join.apply_label(conversion("v1", T0 + 1000))
    assert join.record(web("v1", "s1", 2, T0 + 2000, 2)) == "closed"
    assert join.advance(T0 + 30 * DAY_MS) == []


def test_a_conversion_with_no_session_before_it_is_unknown():
    join = LabelJoin("lead", {}, POLICY)
    join.record(web("v1", "s1", 1, T0, 1))
    assert join.apply_label(conversion("v1", T0 - 1)) == ([], "unknown")
    assert join.apply_label(conversion("v9", T0)) == ([], "unknown")


def test_a_conversion_after_the_session_expired_is_late():
    join = LabelJoin("lead", {}, JoinPolicy(horizon_ms=H, grace_ms=0))
    join.record(web("v1", "s1", 1, T0, 1))
    join.advance(T0 + H + 1)
    assert join.apply_label(conversion("v1", T0 + H)) == ([], "late")


# --- properties over random streams --------------------------------------------------------------

def random_run(task, seed, restart_every=None):
    """Scores, labels (late, duplicate, unknown) and watermarks in random order; returns the log."""
    rng = random.Random(seed)
    policy = JoinPolicy(horizon_ms=1000, grace_ms=50)
    store = {}
    join = LabelJoin(task, store, policy)
    now, examples, recorded = 0, [], {}
    for step in range(1500):
        if restart_every and step % restart_every == 0:
            watermark = join.watermark_ms
            join = LabelJoin(task, store, policy)  # a restart: only the store survives
            if watermark is not None:
                join.advance(watermark)
        now += rng.randint(0, 20)
        ts = now - rng.randint(0, 40)  # events come up to 40 ms out of order
        i = rng.randint(0, 400)
        if rng.random() < 0.6:
            if task == "fraud":
                snapshot = fraud_snapshot(f"x{step}", ts, {"n": step, "v": rng.random()}, {"m": rng.random()})
            else:
                session = f"s{i}-{now // 500}"  # a session lasts less than a horizon, ids are not reused
                features, scores = {"n": step}, {"m": rng.random()}
                snapshot = lead_snapshot(f"v{i % 40}", session, f"e{step}", ts, features, scores)
            if join.record(snapshot) in ("stored", "replaced"):
                recorded.setdefault(snapshot.example_id, []).append(snapshot)
        elif task == "fraud":
            target = f"x{rng.randint(max(0, step - 200), step)}"
            label = fraud_label(target, ts + rng.randint(0, 1200), rng.random() < 0.5)
            examples += join.apply_label(label).examples
        else:
            examples += join.apply_label(conversion(f"v{i % 40}", ts))[0]
        examples += join.advance(now - 40)
    examples += join.advance(10**12)
    return examples, recorded, store


@pytest.mark.parametrize("task", ["fraud", "lead"])
@pytest.mark.parametrize("seed", range(4))
def test_every_snapshot_gives_exactly_one_example_with_the_features_it_was_scored_on(task, seed):
    examples, recorded, store = random_run(task, seed)
    ids = [e.example_id for e in examples]
    assert len(ids) == len(set(ids)) and set(ids) == set(recorded)
    for e in examples:
        # the last snapshot kept before the example was made: same features and scores, same event
        kept = recorded[e.example_id][-1]
        assert (e.event_id, e.event_ts_ms, e.features, e.scores) == (
            kept.event_id, kept.ts_ms, kept.features, kept.scores)
        if e.cause == CAUSE_HORIZON:
            assert e.label is False and e.label_ts_ms == e.event_ts_ms + 1000
        elif task == "lead":
            assert e.label is True and e.event_ts_ms <= e.label_ts_ms <= e.event_ts_ms + 1000
        else:
            assert e.label_ts_ms <= e.event_ts_ms + 1000
    assert store == {}  # everything forgotten in the end


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_same_calls_same_examples_in_the_same_order_even_across_restarts(task):
    first, _, _ = random_run(task, seed=11)
    again, _, _ = random_run(task, seed=11)
    restarted, _, _ = random_run(task, seed=11, restart_every=97)
    assert [e.to_bytes() for e in first] == [e.to_bytes() for e in again] == [e.to_bytes() for e in restarted]


def test_the_store_holds_bytes_only_and_may_be_any_mapping():
    class Table(MutableMapping):  # stands for a Faust table
        def __init__(self):
            self.data = {}

        def __getitem__(self, key):
            return self.data[key]

        def __setitem__(self, key, value):
            assert isinstance(key, bytes) and isinstance(value, bytes)
            self.data[key] = value

        def __delitem__(self, key):
            del self.data[key]

        def __iter__(self):
            return iter(self.data)

        def __len__(self):
            return len(self.data)

    join = LabelJoin("lead", Table(), POLICY)
    join.record(web("v1", "s1", 1, T0, 1))
    join.record(web("v1", "s2", 2, T0 + 1, 2))
    assert list(join.store) == [b"v1"] and join.open_snapshots() == 2


# --- values --------------------------------------------------------------------------------------

def test_training_examples_survive_bytes_exactly():
    example = TrainingExample("lead", "v1/s1", "w1", T0, True, T0 + 5, CAUSE_LABEL,
                              {"a": 0.1 + 0.2, "n": 3, "flag": 1.0, "device": "mobile"},
                              {"logreg": 1 / 3, "arf": 0.0})
    back = TrainingExample.from_bytes(example.to_bytes())
    assert back == example and list(back.features) == list(example.features)
    assert type(back.features["n"]) is int
    assert example.key == b"v1/s1"


@pytest.mark.parametrize("raw", [b"{oops", b"[]", b'{"task": "lead"}', b'{"unexpected": 1}'])
def test_bytes_that_are_not_a_training_example_are_refused_clearly(raw):
    with pytest.raises(ValueError, match="not a training example"):
        TrainingExample.from_bytes(raw)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_value_is_refused_by_name(bad):
    join = LabelJoin("fraud", {}, POLICY)
    with pytest.raises(ValueError, match="'amount'"):
        join.record(fraud_snapshot("x1", T0, {"amount": bad}, {"logreg": 0.1}))


def test_watermark_never_goes_back_and_policies_are_sane():
    join = LabelJoin("fraud", {}, POLICY)
    join.advance(T0)
    join.advance(T0 - DAY_MS)
    assert join.watermark_ms == T0
    assert POLICIES["lead"].horizon_ms == 7 * DAY_MS and POLICIES["fraud"].horizon_ms >= 7 * DAY_MS
    with pytest.raises(ValueError):
        JoinPolicy(horizon_ms=-1)
    assert Label("v1", T0, True).example_id is None
