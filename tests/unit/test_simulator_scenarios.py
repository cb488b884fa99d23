"""Fraud scenarios and concept drift: each scenario leaves its documented footprint."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from simulator import SimulatorConfig, simulate_with_truth
from simulator.clock import DAY, HOUR, parse_ts
from simulator.scenarios import (
    CARD_TESTING,
    COMPROMISED_CUSTOMER,
    COMPROMISED_TERMINAL,
    LARGE_AMOUNT,
    SCENARIOS,
)

#: Much more fraud than the default, so every scenario shows up in a short stream.
FRAUDY = SimulatorConfig(fraud_rate=0.05)
START = SimulatorConfig().start


@pytest.fixture(scope="module")
def transactions() -> list[tuple[dict, str | None]]:
    stream = simulate_with_truth(40_000, seed=1, config=FRAUDY)
    return [(event, truth) for event, truth in stream if event["topic"] == "transactions"]


def test_every_scenario_occurs(transactions):
    assert {truth for _, truth in transactions} == {None, *SCENARIOS}


def test_fraud_rate_follows_the_config(transactions):
    rate = sum(truth is not None for _, truth in transactions) / len(transactions)
    assert 0.03 < rate < 0.08


def test_every_amount_above_the_threshold_is_fraud(transactions):
    threshold = FRAUDY.large_amount_threshold
    assert all(truth is not None for event, truth in transactions if event["amount"] > threshold)
    large = [event["amount"] for event, truth in transactions if truth == LARGE_AMOUNT]
    assert large and min(large) > threshold


def test_a_compromised_terminal_makes_all_its_transactions_fraud_for_weeks(transactions):
    at_terminal = defaultdict(list)
    for event, truth in transactions:
        at_terminal[event["terminal_id"]].append((parse_ts(event["ts"]), truth))
    compromised = [
        history
        for history in at_terminal.values()
        if any(truth == COMPROMISED_TERMINAL for _, truth in history)
    ]
    assert compromised
    for history in compromised:
        hits = [ts for ts, truth in history if truth == COMPROMISED_TERMINAL]
        during = [truth for ts, truth in history if hits[0] <= ts <= hits[-1]]
        assert all(truth is not None for truth in during)
        assert hits[-1] - hits[0] <= FRAUDY.terminal_compromise_days * DAY


def test_a_compromised_customer_loses_about_a_third_of_payments_at_five_times_the_amount(
    transactions,
):
    by_customer = defaultdict(list)
    for event, truth in transactions:
        by_customer[event["customer_id"]].append((parse_ts(event["ts"]), event["amount"], truth))
    fraud, legit, fraud_amounts, legit_amounts = 0, 0, [], []
    for history in by_customer.values():
        hits = [ts for ts, _, truth in history if truth == COMPROMISED_CUSTOMER]
        if not hits:
            continue
        assert hits[-1] - hits[0] <= FRAUDY.customer_compromise_days * DAY
        for ts, amount, truth in history:
            if truth == COMPROMISED_CUSTOMER:
                fraud, fraud_amounts = fraud + 1, [*fraud_amounts, amount]
            elif truth is None and hits[0] <= ts <= hits[-1]:
                legit, legit_amounts = legit + 1, [*legit_amounts, amount]
    assert 0.2 < fraud / (fraud + legit) < 0.6
    mean_fraud = sum(fraud_amounts) / len(fraud_amounts)
    mean_legit = sum(legit_amounts) / len(legit_amounts)
    assert mean_fraud > 3 * mean_legit


def test_card_testing_is_small_online_payments_at_night_in_bursts(transactions):
    tests = [event for event, truth in transactions if truth == CARD_TESTING]
    assert len({e["customer_id"] for e in tests}) < len(tests) / 2, "bursts on few cards"
    assert all(0.5 <= e["amount"] <= 5.0 and e["card_present"] is False for e in tests)
    hours = [(parse_ts(e["ts"]) // HOUR) % 24 for e in tests]
    assert sum(h < 6 for h in hours) / len(hours) > 0.9


def test_legitimate_payments_are_rare_at_night(transactions):
    hours = [(parse_ts(e["ts"]) // HOUR) % 24 for e, truth in transactions if truth is None]
    assert sum(h < 5 for h in hours) / len(hours) < 0.05


def test_after_drift_stolen_cards_go_online_and_card_testing_moves_to_daytime():
    drift = START + timedelta(days=2)
    config = SimulatorConfig(fraud_rate=0.05, drift_at=drift)
    after = [
        (event, truth)
        for event, truth in simulate_with_truth(40_000, seed=1, config=config)
        if event["topic"] == "transactions" and event["ts"] >= "2026-01-03T00:00:00.000Z"
    ]
    stolen = [e for e, truth in after if truth == COMPROMISED_CUSTOMER]
    assert stolen and all(e["card_present"] is False for e in stolen)
    hours = [(parse_ts(e["ts"]) // HOUR) % 24 for e, truth in after if truth == CARD_TESTING]
    assert hours and sum(10 <= h < 18 for h in hours) / len(hours) > 0.9


def _converter_devices(config: SimulatorConfig) -> list[str]:
    device, converted = {}, []
    for event, _ in simulate_with_truth(40_000, seed=2, config=config):
        if event["topic"] == "web-events":
            device[event["visitor_id"]] = event["device"]
        elif event["topic"] == "conversions":
            converted.append(device[event["visitor_id"]])
    return converted


def test_after_drift_buyers_convert_on_their_phones():
    before = _converter_devices(SimulatorConfig())
    after = _converter_devices(SimulatorConfig(drift_at=START))
    assert before.count("mobile") / len(before) < 0.3 < after.count("mobile") / len(after)
