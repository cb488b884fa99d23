"""Card-fraud scenarios from the literature, and the fraud labels they produce.

Four scenarios, after the simulator of the "Reproducible Machine Learning for
Credit Card Fraud Detection" handbook (Le Borgne et al.), plus card testing:

``large_amount``
    Any transaction above ``large_amount_threshold`` is fraud (legitimate
    amounts never exceed it); a share of transactions get such an amount.
``compromised_terminal``
    Now and then a terminal is compromised (a skimmer); all its transactions
    over the next ``terminal_compromise_days`` are fraud. Busy terminals are
    more likely targets.
``compromised_customer``
    Now and then a customer's card details leak; over the next
    ``customer_compromise_days``, ``customer_fraud_share`` of their
    transactions are fraud with the amount times ``customer_amount_factor``.
``card_testing``
    Bursts of 3-12 small online payments (0.50-5.00) minutes apart, at
    night, on one card: fraudsters checking that stolen cards work.

Rates are derived from ``fraud_rate`` and ``fraud_mix`` so that, on average,
``fraud_rate`` of transactions are fraud. After ``drift_at`` fraud shifts:
compromised cards are used online for amounts times
:data:`DRIFTED_AMOUNT_FACTOR`, and card testing moves to office hours.

Ground truth never appears in a ``transactions`` event: it is only in the
``fraud-labels`` it schedules (and in ``simulate_with_truth`` for tests).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from simulator.choice import Weighted
from simulator.clock import DAY, MINUTE, SECOND, format_ts
from simulator.compromise import Compromises
from simulator.config import SimulatorConfig
from simulator.merge import EventQueue, Timed
from simulator.rhythm import DAYTIME, NIGHT
from simulator.topics import FRAUD_LABELS
from simulator.transactions import AWAY_SHARE, Payments

LARGE_AMOUNT = "large_amount"
COMPROMISED_TERMINAL = "compromised_terminal"
COMPROMISED_CUSTOMER = "compromised_customer"
CARD_TESTING = "card_testing"
#: Every scenario, in the order of ``SimulatorConfig.fraud_mix``.
SCENARIOS = (LARGE_AMOUNT, COMPROMISED_TERMINAL, COMPROMISED_CUSTOMER, CARD_TESTING)
#: Amount factor of compromised-customer fraud after drift (smaller, so harder to see).
DRIFTED_AMOUNT_FACTOR = 2.0
#: Smallest and largest number of payments in a card-testing burst.
CARD_TEST_BURST = (3, 12)
#: Internal marker on events made fraudulent at birth; removed before emission.
_TRUTH = "_scenario"


class Fraud:
    """Decides which transactions are fraud, alters them, and schedules their labels."""

    def __init__(
        self, config: SimulatorConfig, payments: Payments, queue: EventQueue, rng: random.Random
    ) -> None:
        self._config = config
        self._payments = payments
        self._queue = queue
        self._rng = rng
        self._drift_ms = config.drift_ms
        per_day = payments.payments_per_day
        self._large_share = config.scenario_rate(0)
        activity = {i: c.payments_per_day for i, c in enumerate(payments.customers)}
        self._by_activity = Weighted(activity) if per_day > 0 else None
        busy = _busy_terminal_per_day(payments) * config.terminal_compromise_days
        stolen = config.customer_compromise_days * config.customer_fraud_share
        self.terminals = Compromises(
            rng,
            config.start_ms,
            per_day=config.scenario_rate(1) * per_day / busy,
            window_ms=int(config.terminal_compromise_days * DAY),
            pick=self._pick_terminal,
        )
        self.customers = Compromises(
            rng,
            config.start_ms,
            per_day=config.scenario_rate(2) * len(payments.customers) / stolen,
            window_ms=int(config.customer_compromise_days * DAY),
            pick=lambda r: r.choice(payments.customers).customer_id,
        )
        mean_burst = sum(CARD_TEST_BURST) / 2
        self.bursts_per_day = config.scenario_rate(3) * per_day / mean_burst

    def judge(self, event: dict, ts_ms: int) -> str | None:
        """The scenario that makes this transaction fraud, or None; schedules its label."""
        scenario = event.pop(_TRUTH, None) or self._scenario(event, ts_ms)
        rng = self._rng
        if scenario is not None or rng.random() < self._config.legit_label_rate:
            low, high = self._config.fraud_label_delay_ms
            t = ts_ms + max(1, rng.randint(low, high))
            label = {
                "topic": FRAUD_LABELS,
                "event_id": event["event_id"],
                "ts": format_ts(t),
                "is_fraud": scenario is not None,
            }
            self._queue.schedule(t, label)
        return scenario

    def _scenario(self, event: dict, ts_ms: int) -> str | None:
        rng = self._rng
        self.terminals.advance(ts_ms)
        self.customers.advance(ts_ms)
        if self.terminals.is_active(event["terminal_id"], ts_ms):
            return COMPROMISED_TERMINAL
        if (
            self.customers.is_active(event["customer_id"], ts_ms)
            and rng.random() < self._config.customer_fraud_share
        ):
            factor = self._config.customer_amount_factor
            if self._drift_ms is not None and ts_ms >= self._drift_ms:
                factor = DRIFTED_AMOUNT_FACTOR
                Payments.move_to(event, rng.choice(self._payments.online))
            event["amount"] = round(event["amount"] * factor, 2)
            return COMPROMISED_CUSTOMER
        if rng.random() < self._large_share:
            threshold = self._config.large_amount_threshold
            event["amount"] = round(rng.uniform(threshold * 1.05, threshold * 4), 2)
            return LARGE_AMOUNT
        return None

    def _pick_terminal(self, rng: random.Random) -> str:
        customer = self._payments.customers[self._by_activity.pick(rng)]
        return rng.choice(customer.terminals).terminal_id

    def card_testing(self, rng: random.Random) -> Iterator[Timed]:
        """Endless card-testing bursts, in time order; every payment in them is fraud."""
        if self.bursts_per_day <= 0:
            return
        payments = self._payments
        t = self._config.start_ms
        while True:
            drifted = self._drift_ms is not None and t >= self._drift_ms
            t = (DAYTIME if drifted else NIGHT).next_time(rng, t, self.bursts_per_day)
            customer = rng.choice(payments.customers)
            for _ in range(rng.randint(*CARD_TEST_BURST)):
                t += rng.randint(5 * SECOND, 3 * MINUTE)
                amount = round(rng.uniform(0.5, 5.0), 2)
                event = payments.transaction(t, customer, rng.choice(payments.online), amount)
                event[_TRUTH] = CARD_TESTING
                yield t, event


def _busy_terminal_per_day(payments: Payments) -> float:
    """Expected payments a day at a terminal picked as :meth:`Fraud._pick_terminal` does."""
    usual: dict[str, float] = {}
    picked: dict[str, float] = {}
    total = payments.payments_per_day
    if total <= 0:
        return 1.0
    for c in payments.customers:
        share = c.payments_per_day / len(c.terminals)
        for t in c.terminals:
            usual[t.terminal_id] = usual.get(t.terminal_id, 0.0) + share
            picked[t.terminal_id] = picked.get(t.terminal_id, 0.0) + share / total
    away = AWAY_SHARE * total / len(payments.terminals)
    busy = sum(p * ((1 - AWAY_SHARE) * usual[t] + away) for t, p in picked.items())
    return max(busy, 1e-9)
