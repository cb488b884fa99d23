"""The pure batch core: one score per valid event, dead letters for the rest, state per entity."""

import orjson

from stream.pipeline import TASKS, BatchScorer, InputRecord

T0 = 1_767_225_600_000


def tx(i, customer="c1", amount=10.0, ts=None):
    return orjson.dumps({"event_id": f"t{i}", "ts": T0 + i * 60_000 if ts is None else ts,
                         "customer_id": customer, "terminal_id": "k1", "amount": amount})


def test_one_score_per_valid_event_and_dead_letters_for_the_rest():
    scorer = BatchScorer(TASKS["fraud"])
    records = [InputRecord(tx(0), b"c1", 0, 0), InputRecord(b"garbage", b"c1", 0, 1),
               InputRecord(tx(1), b"c1", 0, 2), InputRecord(None, b"c1", 0, 3),
               InputRecord(tx(2, customer="c2"), b"c2", 1, 0)]
    result = scorer.score_batch(records, lambda key: None)
    scores = [orjson.loads(o.value) for o in result.outputs if o.topic == "transaction-scores"]
    dead = [orjson.loads(o.value) for o in result.outputs if o.topic == "dead-letter"]
    assert [s["event_id"] for s in scores] == ["t0", "t1", "t2"]
    assert [d["reason"] for d in dead] == ["malformed_json", "missing_value"]
    assert dead[0]["value"] == "garbage" and dead[0]["offset"] == 1
    assert result.invalid == ["malformed_json", "missing_value"]
    assert scores[1]["features"]["customer_tx_count_1d"] == 2
    assert all(0.0 <= s["score"] <= 1.0 for s in scores)
    assert scores[0]["model"] == "fraud.arf" and scores[0]["customer_id"] == "c1"
    assert {k: p for k, (p, _) in result.state_writes.items()} == {b"c1": 0, b"c2": 1}


def test_state_carries_across_batches_through_its_bytes():
    scorer = BatchScorer(TASKS["fraud"])
    store = {}
    for i in range(3):
        result = scorer.score_batch([InputRecord(tx(i), b"c1", 0, i)], store.get)
        store.update({k: v for k, (_, v) in result.state_writes.items()})
    last = orjson.loads(result.outputs[0].value)
    assert last["features"]["customer_tx_count_1d"] == 3
    assert last["features"]["seconds_since_last_tx"] == 60.0


def test_invalid_utf8_is_kept_in_base64():
    scorer = BatchScorer(TASKS["lead"])
    result = scorer.score_batch([InputRecord(b"\xff\xfe", None, 2, 7)], lambda key: None)
    body = orjson.loads(result.outputs[0].value)
    assert body["value_base64"] == "//4=" and body["source_topic"] == "web-events"


def test_alerts_at_or_above_the_threshold():
    scorer = BatchScorer(TASKS["fraud"], fraud_alert_threshold=0.0)
    result = scorer.score_batch([InputRecord(tx(0), b"c1", 0, 0)], lambda key: None)
    assert [o.topic for o in result.outputs] == ["transaction-scores", "fraud-alerts"]
    assert result.alerts == 1


def test_alerts_wait_until_the_models_learned_enough_of_each_class():
    scorer = BatchScorer(TASKS["fraud"], fraud_alert_threshold=0.0, alert_warmup=2)
    x = {"amount": 10.0}
    for label in (True, True, True, False):  # labels first: positives before any negative
        scorer.models.learn_one(x, label, {})
    result = scorer.score_batch([InputRecord(tx(0), b"c1", 0, 0)], lambda key: None)
    assert [o.topic for o in result.outputs] == ["transaction-scores"]
    assert (result.alerts, result.alerts_withheld) == (0, 1)
    scorer.models.learn_one(x, False, {})
    result = scorer.score_batch([InputRecord(tx(1), b"c1", 0, 1)], lambda key: None)
    assert (result.alerts, result.alerts_withheld) == (1, 0)


def test_idle_keys_expire_after_the_longest_window_plus_lateness():
    scorer = BatchScorer(TASKS["fraud"], lateness_ms=3_600_000)
    store = {}
    day = 86_400_000
    for i, (customer, ts) in enumerate([("old", T0), ("recent", T0 + 20 * day),
                                        ("now", T0 + 31 * day + 3_600_000)]):
        result = scorer.score_batch([InputRecord(tx(i, customer=customer, ts=ts), None, 2, i)],
                                    store.get)
        store.update({k: v for k, (_, v) in result.state_writes.items()})
    # "old" last moved 31 days + 1 hour before the newest event: past 30 days + 1 hour
    assert scorer.expired(store.items()) == [(b"old", 2)]


def test_a_state_this_version_cannot_read_starts_afresh_instead_of_crashing():
    scorer = BatchScorer(TASKS["fraud"])
    old = {b"c1": orjson.dumps([T0, [T0], [10.0]]), b"c2": b"\x00garbage"}
    records = [InputRecord(tx(1, customer="c1"), b"c1", 0, 5), InputRecord(tx(2, customer="c2"), b"c2", 0, 6)]
    result = scorer.score_batch(records, old.get)
    assert result.state_resets == 2
    scores = [orjson.loads(o.value) for o in result.outputs if o.topic == "transaction-scores"]
    assert [s["features"]["customer_tx_count_30d"] for s in scores] == [1, 1]


def test_an_unforeseen_failure_dead_letters_the_record_and_scoring_goes_on(monkeypatch):
    def broken(state, event):
        if event.event_id == "t1":
            raise ZeroDivisionError("a bug")
        return 0.0

    monkeypatch.setitem(TASKS["fraud"].features.features, "amount", broken)
    scorer = BatchScorer(TASKS["fraud"])
    records = [InputRecord(tx(i), b"c1", 0, i) for i in range(3)]
    result = scorer.score_batch(records, lambda key: None)
    assert [o.topic for o in result.outputs if o.topic != "transaction-scores"] == ["dead-letter"]
    assert result.invalid == ["processing_error"]
    assert len([o for o in result.outputs if o.topic == "transaction-scores"]) == 2
