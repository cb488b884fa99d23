"""The thin real path, end to end through the real broker: every input event gets exactly one score."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import orjson
import pytest

from simulator import simulate, write_jsonl
from stream import topics
from tests.integration.conftest import REPO, consume, settings_env

pytestmark = pytest.mark.integration

N_EVENTS = 6_000
#: Valid JSON with a known topic but a bad field: the worker must dead-letter them.
BAD_EVENTS = [
    {"topic": "transactions", "event_id": "bad-1", "ts": "2026-01-01T00:00:00Z",
     "customer_id": "c-bad", "terminal_id": "k1", "amount": "twelve"},
    {"topic": "transactions", "event_id": "bad-2", "ts": "2026-01-01T00:00:00Z",
     "customer_id": "c-bad", "terminal_id": "k1", "amount": -3},
    {"topic": "web-events", "event_id": "bad-3", "ts": "not a time", "visitor_id": "v-bad",
     "session_id": "s", "type": "page_view", "url": "/", "page_type": "home"},
    {"topic": "web-events", "event_id": "bad-4", "ts": "2026-01-01T00:00:00Z",
     "visitor_id": "v-bad", "session_id": "s", "type": "teleport", "url": "/", "page_type": "home"},
]


def test_every_event_gets_exactly_one_score(engine, start_worker, tmp_path):
    events = list(simulate(N_EVENTS, seed=7))
    path = tmp_path / "events.jsonl"
    write_jsonl(events[: N_EVENTS // 2] + BAD_EVENTS + events[N_EVENTS // 2:], path)
    inputs = {t: {e["event_id"] for e in events if e["topic"] == t} for t in topics.INPUT_TOPICS}
    assert min(len(ids) for ids in inputs.values()) > 1_000, "the simulator should mix both kinds"

    worker = start_worker()
    started = time.monotonic()
    produced = subprocess.run([sys.executable, "-m", "stream.cli", "produce", str(path)],
                              env=settings_env(engine), cwd=REPO, capture_output=True, text=True,
                              timeout=120)
    assert produced.returncode == 0, produced.stderr

    expected = sum(len(ids) for ids in inputs.values()) + len(BAD_EVENTS)
    out = consume(engine, (topics.LEAD_SCORES, topics.TRANSACTION_SCORES, topics.DEAD_LETTER),
                  expected)
    elapsed = consume.reached_at - started

    scored = {t: Counter(body["event_id"] for topic, body in out if topic == t)
              for t in (topics.LEAD_SCORES, topics.TRANSACTION_SCORES)}
    for input_topic, score_topic in ((topics.WEB_EVENTS, topics.LEAD_SCORES),
                                     (topics.TRANSACTIONS, topics.TRANSACTION_SCORES)):
        missing = inputs[input_topic] - set(scored[score_topic])
        twice = [e for e, n in scored[score_topic].items() if n > 1]
        assert not missing, f"{len(missing)} {input_topic} events got no score, e.g. {sorted(missing)[:3]}"
        assert not twice, f"{len(twice)} {input_topic} events were scored twice"
        assert set(scored[score_topic]) == inputs[input_topic]
    for topic, body in out:
        if topic != topics.DEAD_LETTER:
            assert 0.0 <= body["score"] <= 1.0
            assert body["model"] and isinstance(body["features"], dict) and body["features"]
            assert "__faust" not in body
    dead = sorted(orjson.loads(orjson.dumps(body))["reason"] for topic, body in out
                  if topic == topics.DEAD_LETTER)
    assert dead == ["bad_timestamp", "out_of_range", "unknown_type", "wrong_type"]

    samples = worker.metrics()
    n_web, n_tx = len(inputs[topics.WEB_EVENTS]) + 2, len(inputs[topics.TRANSACTIONS]) + 2
    assert samples['scorestream_events_consumed_total{topic="web-events"}'] == n_web
    assert samples['scorestream_events_consumed_total{topic="transactions"}'] == n_tx
    assert samples['scorestream_outputs_produced_total{topic="lead-scores"}'] == n_web - 2
    assert samples['scorestream_outputs_produced_total{topic="transaction-scores"}'] == n_tx - 2
    assert samples['scorestream_outputs_produced_total{topic="dead-letter"}'] == 4
    assert sum(v for k, v in samples.items()
               if k.startswith("scorestream_invalid_events_total")) == 4
    latency_count = sum(v for k, v in samples.items()
                        if k.startswith("scorestream_event_to_score_latency_seconds_count"))
    assert latency_count == n_web + n_tx
    assert samples['scorestream_batch_loop_wait_seconds_total{on="records"}'] > 0  # idle before the events
    assert samples['scorestream_batch_loop_wait_seconds_total{on="acknowledgements"}'] >= 0
    print(f"\nend to end: {expected} events scored in {elapsed:.1f} s "
          f"({expected / elapsed:,.0f} events/s through one worker, worker start excluded)")
