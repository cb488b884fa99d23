"""Rule baselines: the "previous scoring system", scored and evaluated like a model.

A baseline adds up the points of the rules that fire and scores
``min(points, 100) / 100``. It is a River classifier (``predict_proba_one``,
``learn_one``) whose ``learn_one`` does nothing, so it goes through the same
scoring, label join and prequential metrics as the learned models and the gain
of machine learning is measured against it, not claimed.

The rules read feature names from ``features/registry.py`` with ``.get`` and a
harmless default, so a feature that is absent (not yet computed, or renamed)
simply never fires its rule. The points are the kind of thresholds such
systems are made of; they were written from domain habits, not fitted to the
simulator.

>>> baseline = FraudRules()
>>> baseline.predict_proba_one({"amount": 350.0, "is_night": 1.0})[True]
0.5
>>> baseline.explain_one({"amount": 350.0, "is_night": 1.0})
['amount >= 200', 'at night']
>>> LeadRules().predict_proba_one({"is_form_submit": 1.0, "pricing_views_7d": 2})[True]
0.4
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from river import base

Features = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """Points given when ``fires(x)`` is true; ``name`` says what the rule checks."""

    name: str
    points: int
    fires: Callable[[Features], bool]


def _num(x: Features, name: str, default: float = 0.0) -> float:
    """A numeric feature, or ``default`` when it is absent or not a number."""
    value = x.get(name, default)
    return float(value) if isinstance(value, int | float) else default


def _unusual_amount(x: Features) -> bool:
    average = _num(x, "customer_avg_amount_7d")
    return average > 0 and _num(x, "amount") >= 3 * average


#: Amount and velocity thresholds of a card-fraud rule engine.
FRAUD_RULES: tuple[Rule, ...] = (
    Rule("amount >= 200", 40, lambda x: _num(x, "amount") >= 200),
    Rule("amount >= 500", 30, lambda x: _num(x, "amount") >= 500),
    Rule("amount >= 3x the customer's 7-day average", 25, _unusual_amount),
    Rule("amount z-score >= 3 over 30 days", 20, lambda x: _num(x, "amount_zscore_30d") >= 3),
    Rule(">= 8 transactions in 24 h", 20, lambda x: _num(x, "customer_tx_count_1d") >= 8),
    Rule("< 60 s since the previous transaction", 15,
         lambda x: _num(x, "seconds_since_last_tx", 86_400.0) < 60),
    Rule(">= 4 terminals in 24 h", 10, lambda x: _num(x, "distinct_terminals_24h") >= 4),
    Rule("terminal with recent fraud", 40, lambda x: _num(x, "terminal_risk_7d") >= 0.2),
    Rule("at night", 10, lambda x: _num(x, "is_night") > 0),
    Rule("amount < 5 at night", 15, lambda x: _num(x, "is_night") > 0 and 0 < _num(x, "amount") < 5),
)

#: Points of a marketing lead-scoring sheet.
LEAD_RULES: tuple[Rule, ...] = (
    Rule("form submit now", 30, lambda x: _num(x, "is_form_submit") > 0),
    Rule(">= 1 demo/contact/form event in 7 days", 15, lambda x: _num(x, "demo_or_form_events_7d") >= 1),
    Rule(">= 3 demo/contact/form events in 7 days", 15, lambda x: _num(x, "demo_or_form_events_7d") >= 3),
    Rule(">= 1 pricing view in 7 days", 10, lambda x: _num(x, "pricing_views_7d") >= 1),
    Rule(">= 3 pricing views in 7 days", 10, lambda x: _num(x, "pricing_views_7d") >= 3),
    Rule(">= 5 pages in this session", 10, lambda x: _num(x, "current_session_depth") >= 5),
    Rule(">= 10 pages in 7 days", 10, lambda x: _num(x, "page_views_7d") >= 10),
)


class PointRules(base.Classifier):
    """Base class of a rule baseline: ``RULES`` summed, scaled to [0, 1], never trained."""

    RULES: tuple[Rule, ...] = ()

    def points(self, x: Features) -> int:
        """The sum of the points of every rule that fires on ``x``."""
        return sum(rule.points for rule in self.RULES if rule.fires(x))

    def explain_one(self, x: Features) -> list[str]:
        """The names of the rules that fire on ``x``, in table order."""
        return [rule.name for rule in self.RULES if rule.fires(x)]

    def learn_one(self, x: Features, y: base.typing.ClfTarget) -> None:
        """Nothing to learn: the rules are fixed."""

    def predict_proba_one(self, x: Features) -> dict[bool, float]:
        p = min(self.points(x), 100) / 100
        return {False: 1.0 - p, True: p}


class FraudRules(PointRules):
    """The fraud rule baseline (``FRAUD_RULES``): amount and velocity thresholds."""

    RULES = FRAUD_RULES


class LeadRules(PointRules):
    """The lead rule baseline (``LEAD_RULES``): points for intent and engagement."""

    RULES = LEAD_RULES


#: The rule baseline of each task.
BASELINES: dict[str, type[PointRules]] = {"fraud": FraudRules, "lead": LeadRules}
