"""Rule baselines: documented points, absent features never fire, nothing is learned."""

import pytest

from features.registry import TASK_FEATURES
from online_models.rules import BASELINES, FRAUD_RULES, LEAD_RULES, FraudRules, LeadRules


@pytest.mark.parametrize(("x", "points"), [
    ({}, 0),
    ({"amount": 25.0, "customer_avg_amount_7d": 30.0, "customer_tx_count_1d": 2,
      "seconds_since_last_tx": 20_000.0, "is_night": 0.0}, 0),
    ({"amount": 199.99}, 0),
    ({"amount": 200.0}, 40),
    ({"amount": 500.0}, 70),
    ({"amount": 90.0, "customer_avg_amount_7d": 30.0}, 25),
    ({"amount": 89.0, "customer_avg_amount_7d": 30.0}, 0),
    ({"amount": 90.0, "customer_avg_amount_7d": 0.0}, 0),  # no history: no ratio
    ({"customer_tx_count_1d": 8, "seconds_since_last_tx": 30.0}, 35),
    ({"amount": 1.5, "is_night": 1.0}, 25),  # card testing
    ({"amount_zscore_30d": 3.2, "terminal_risk_7d": 0.5, "distinct_terminals_24h": 4}, 70),
    ({"amount": 900.0, "customer_avg_amount_7d": 100.0, "customer_tx_count_1d": 9,
      "seconds_since_last_tx": 5.0, "is_night": 1.0}, 140),  # scored 1.0
])
def test_fraud_points(x, points):
    assert FraudRules().points(x) == points
    assert FraudRules().predict_proba_one(x)[True] == min(points, 100) / 100


@pytest.mark.parametrize(("x", "points"), [
    ({}, 0),
    ({"is_form_submit": 1.0}, 30),
    ({"demo_or_form_events_7d": 1}, 15),
    ({"demo_or_form_events_7d": 3}, 30),
    ({"pricing_views_7d": 1}, 10),
    ({"pricing_views_7d": 5}, 20),
    ({"current_session_depth": 5, "page_views_7d": 10}, 20),
    ({"current_session_depth": 4, "page_views_7d": 9, "utm_source": "linkedin"}, 0),
])
def test_lead_points(x, points):
    assert LeadRules().points(x) == points
    assert LeadRules().predict_proba_one(x)[True] == pytest.approx(points / 100)


@pytest.mark.parametrize("baseline", [FraudRules, LeadRules])
def test_wrong_types_do_not_fire_and_learning_changes_nothing(baseline):
    model = baseline()
    strange = {"amount": "lots", "is_form_submit": "yes", "pricing_views_7d": None}
    assert model.points(strange) == 0
    x = {"amount": 300.0, "is_form_submit": 1.0}
    before = model.predict_proba_one(x)
    for _ in range(10):
        model.learn_one(x, False)
    assert model.predict_proba_one(x) == before
    assert model.explain_one({}) == []


def test_rules_read_registered_features_or_documented_future_ones():
    future = {"amount_zscore_30d", "terminal_risk_7d", "distinct_terminals_24h"}
    for task, rules in (("fraud", FRAUD_RULES), ("lead", LEAD_RULES)):
        known = set(TASK_FEATURES[task].features) | future
        for rule in rules:
            assert rule.points > 0 and rule.name
        # every rule fires on some vector built from known names only
        assert all(any(rule.fires(x) for x in probe_vectors(known)) for rule in rules), task
    assert set(BASELINES) == {"fraud", "lead"}


def probe_vectors(names):
    for value in (0.0, 1.0, 2.0, 4.0, 10.0, 600.0):
        yield dict.fromkeys(names, value)
        yield {**dict.fromkeys(names, value), "amount": 600.0, "customer_avg_amount_7d": 100.0,
               "seconds_since_last_tx": 10.0}
    yield {**dict.fromkeys(names, 1.0), "amount": 1.0}
