"""Terminal risk with label delay equals the pandas reference, whatever order it is told things in."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.terminal import FEATURE_NAMES, TerminalHistory
from simulator import SimulatorConfig, simulate
from stream.events import parse_ts
from tests.reference import mismatches
from tests.reference import terminal_features as reference_terminal_features

DAY = 86_400_000


def tell(history: TerminalHistory, event: dict) -> None:
    if event["topic"] == "transactions":
        history.add_transaction(event["event_id"], event["terminal_id"], parse_ts(event["ts"]))
    elif event["topic"] == "fraud-labels" and event["is_fraud"]:
        history.add_fraud_label(event["event_id"], parse_ts(event["ts"]))


def in_time_order(events, delay_ms):
    """Ask for each transaction's features right after telling it, events in time order, pruning."""
    history = TerminalHistory(delay_ms)
    out = {}
    for n, event in enumerate(sorted(events, key=lambda e: parse_ts(e["ts"]))):
        tell(history, event)
        if event["topic"] == "transactions":
            t = parse_ts(event["ts"])
            out[event["event_id"]] = history.features(event["terminal_id"], t)
            if n % 1000 == 0:
                history.prune(t)
    return out


def all_told_first(events, delay_ms, seed):
    """Tell everything in a random order, then ask: the answers are the same."""
    history = TerminalHistory(delay_ms)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    for event in shuffled:
        tell(history, event)
    return {e["event_id"]: history.features(e["terminal_id"], parse_ts(e["ts"]))
            for e in events if e["topic"] == "transactions"}


@pytest.fixture(scope="module")
def sparse_stream():
    # a long sparse stream (pruning), with many frauds so that risks are rarely 0
    config = SimulatorConfig(input_events_per_day=800, terminals=200, customers=300,
                             fraud_rate=0.02, web_share=0.0)
    return list(simulate(25_000, seed=5, config=config))


@pytest.mark.parametrize("delay_days", [7, 2])
def test_terminal_features_equal_the_reference(sparse_stream, delay_days):
    reference = reference_terminal_features(sparse_stream, delay_days * DAY)
    risky = sum(1 for f in reference.values() if f["terminal_risk_7d"] > 0)
    assert risky > 500, "the stream should exercise non-zero risks"
    assert mismatches(in_time_order(sparse_stream, delay_days * DAY), reference)[:5] == []
    assert mismatches(all_told_first(sparse_stream, delay_days * DAY, seed=delay_days), reference)[:5] == []


def test_a_fraud_label_counts_once_and_only_from_its_own_time():
    history = TerminalHistory(delay_ms=DAY)
    history.add_transaction("a", "k", 0)
    assert history.add_fraud_label("a", label_ts=3 * DAY)
    history.add_fraud_label("a", label_ts=4 * DAY)  # a later label changes nothing
    assert history.features("k", 2 * DAY - 1)["terminal_risk_7d"] == 0.0  # label not yet known
    assert history.features("k", 3 * DAY)["terminal_risk_7d"] == 1.0
    history.add_fraud_label("a", label_ts=2 * DAY)  # an earlier one counts from its time
    assert history.features("k", 2 * DAY)["terminal_risk_7d"] == 1.0
    assert len(history.terminals["k"].fraud_tx_ts) == 1


def test_a_repeated_transaction_counts_once():
    history = TerminalHistory(delay_ms=DAY)
    assert history.add_transaction("a", "k", 0)
    assert not history.add_transaction("a", "k", 0)
    assert history.features("k", DAY)["terminal_tx_count_1d"] == 1


def test_a_label_waits_for_its_transaction_and_pruning_forgets_the_old():
    history = TerminalHistory(delay_ms=DAY)
    assert not history.add_fraud_label("a", label_ts=DAY)
    history.add_transaction("a", "k", 0)
    assert history.features("k", DAY)["terminal_risk_1d"] == 1.0
    assert history.prune(oldest_t=history.horizon_ms) == 1
    assert history.terminals == {} and history.transactions == {} and history.fraud_label_ts == {}
    history.add_fraud_label("old", label_ts=0)
    history.prune(oldest_t=history.horizon_ms)
    assert history.waiting == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40 * DAY), st.sampled_from("kl"), st.booleans(),
                          st.integers(0, 10 * DAY)), max_size=40),
       st.integers(0, 60 * DAY))
def test_features_equal_brute_force(transactions, t):
    history = TerminalHistory(delay_ms=7 * DAY)
    for n, (ts, terminal, fraud, label_after) in enumerate(transactions):
        history.add_transaction(str(n), terminal, ts)
        if fraud:
            history.add_fraud_label(str(n), ts + label_after)
    got = history.features("k", t)
    assert tuple(got) == FEATURE_NAMES
    end = t - 7 * DAY
    for days in (1, 7, 30):
        window = [(fraud, ts + after) for ts, terminal, fraud, after in transactions
                  if terminal == "k" and end - days * DAY < ts <= end]
        frauds = sum(1 for fraud, label_ts in window if fraud and label_ts <= t)
        assert got[f"terminal_tx_count_{days}d"] == len(window)
        assert got[f"terminal_risk_{days}d"] == (frauds / len(window) if window else 0.0)
