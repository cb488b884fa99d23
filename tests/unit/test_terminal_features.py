"""Terminal risk with label delay equals the pandas reference when fed in event-time order."""

import pytest

from features.terminal import TerminalState, add_fraud_label, add_transaction, terminal_features
from simulator import SimulatorConfig, simulate
from stream.events import parse_ts
from tests.reference import mismatches
from tests.reference import terminal_features as reference_terminal_features

DAY = 86_400_000


def delivered(events, labels_ahead_ms=0):
    """Transactions and fraud labels by timestamp (labels first on ties), labels possibly early.

    ``labels_ahead_ms`` > 0 delivers each label that much before its own time, as when
    the label topic is consumed ahead of the transactions: a label must still count
    only for transactions at or after its timestamp.
    """
    kinds = {"fraud-labels": 0, "transactions": 1}
    chosen = [e for e in events if e["topic"] in kinds]
    shift = {"fraud-labels": labels_ahead_ms, "transactions": 0}
    return sorted(chosen, key=lambda e: (parse_ts(e["ts"]) - shift[e["topic"]], kinds[e["topic"]]))


def stream_terminal_features(events, delay_ms, labels_ahead_ms=0):
    states: dict[str, TerminalState] = {}
    where: dict[str, tuple[str, int]] = {}  # event_id → (terminal, transaction time)
    out = {}
    for event in delivered(events, labels_ahead_ms):
        ts = parse_ts(event["ts"])
        if event["topic"] == "transactions":
            state = states.setdefault(event["terminal_id"], TerminalState())
            add_transaction(state, event["event_id"], ts, lateness_ms=3_600_000, delay_ms=delay_ms)
            out[event["event_id"]] = terminal_features(state, ts, delay_ms)
            where[event["event_id"]] = (event["terminal_id"], ts)
        elif event["is_fraud"] and event["event_id"] in where:
            terminal, tx_ts = where[event["event_id"]]
            add_fraud_label(states[terminal], event["event_id"], tx_ts, ts)
    return out


@pytest.mark.parametrize(("delay_days", "labels_ahead_ms"), [(7, 0), (2, 0), (7, 3_600_000)])
def test_terminal_features_equal_the_reference(delay_days, labels_ahead_ms):
    # a long sparse stream (pruning), with many frauds so that risks are rarely 0
    config = SimulatorConfig(input_events_per_day=800, terminals=200, customers=300,
                             fraud_rate=0.02, web_share=0.0)
    events = list(simulate(25_000, seed=5, config=config))
    reference = reference_terminal_features(events, delay_days * DAY)
    streamed = stream_terminal_features(events, delay_days * DAY, labels_ahead_ms)
    risky = sum(1 for f in reference.values() if f["terminal_risk_7d"] > 0)
    assert risky > 500, "the stream should exercise non-zero risks"
    assert mismatches(streamed, reference)[:5] == []


def test_a_fraud_label_counts_once_and_only_from_its_own_time():
    state = TerminalState()
    add_transaction(state, "a", 0, lateness_ms=0, delay_ms=DAY)
    assert add_fraud_label(state, "a", 0, label_ts=3 * DAY)
    assert not add_fraud_label(state, "a", 0, label_ts=4 * DAY)
    assert terminal_features(state, 2 * DAY - 1, DAY)["terminal_risk_7d"] == 0.0  # label not yet known
    assert terminal_features(state, 3 * DAY, DAY)["terminal_risk_7d"] == 1.0
