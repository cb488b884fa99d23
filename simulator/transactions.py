"""Customers' legitimate card payments, following their personal habits.

Each customer pays ``payments_per_day`` times a day on average, in the payments
rhythm (few at night), mostly at their usual terminals and now and then
anywhere (travel, a new shop). Amounts are normal around the customer's mean,
scaled by the merchant category, and never above the large-amount threshold:
above it, every payment is fraud (scenario "large amount").
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from simulator.cards import Customer, Terminal, build_customers, build_terminals
from simulator.clock import format_ts
from simulator.config import SimulatorConfig
from simulator.ids import IdMaker
from simulator.merge import Timed
from simulator.rhythm import PAYMENTS
from simulator.topics import TRANSACTIONS

#: Share of a customer's payments at a terminal that is not one of their usual ones.
AWAY_SHARE = 0.05


class Payments:
    """The terminals, the customers and their legitimate payments."""

    def __init__(self, config: SimulatorConfig, rng: random.Random) -> None:
        per_day = config.input_events_per_day * (1.0 - config.web_share)
        self.start_ms = config.start_ms
        self.threshold = config.large_amount_threshold
        self.terminals = build_terminals(rng, config.terminals)
        self.customers = build_customers(rng, config.customers, self.terminals, per_day / config.customers)
        self.online = [t for t in self.terminals if not t.card_present] or self.terminals
        self.new_id = IdMaker("x")

    @property
    def payments_per_day(self) -> float:
        """Expected legitimate payments per day, over all customers."""
        return sum(c.payments_per_day for c in self.customers)

    def customer_stream(self, rng: random.Random, customer: Customer) -> Iterator[Timed]:
        """Endless payments of one customer, in time order."""
        if customer.payments_per_day <= 0:
            return
        t = self.start_ms
        while True:
            t = PAYMENTS.next_time(rng, t, customer.payments_per_day)
            if rng.random() < AWAY_SHARE:
                terminal = rng.choice(self.terminals)
            else:
                terminal = rng.choice(customer.terminals)
            yield t, self.transaction(t, customer, terminal, self.legit_amount(rng, customer, terminal))

    def legit_amount(self, rng: random.Random, customer: Customer, terminal: Terminal) -> float:
        """A habitual amount: normal around the customer's mean, in (0, threshold]."""
        for _ in range(5):
            mean = customer.mean_amount * terminal.amount_factor
            amount = round(rng.gauss(mean, customer.std_amount * terminal.amount_factor), 2)
            if 0.01 <= amount <= self.threshold:
                return amount
        return round(rng.uniform(self.threshold / 2, self.threshold), 2)

    def transaction(self, t: int, customer: Customer, terminal: Terminal, amount: float) -> dict:
        """The ``transactions`` event of ``customer`` paying ``amount`` at ``terminal``."""
        return {
            "topic": TRANSACTIONS,
            "event_id": self.new_id(),
            "ts": format_ts(t),
            "customer_id": customer.customer_id,
            "terminal_id": terminal.terminal_id,
            "amount": amount,
            "currency": terminal.currency,
            "card_present": terminal.card_present,
            "merchant_category": terminal.category,
            "lat": terminal.lat,
            "lon": terminal.lon,
        }

    @staticmethod
    def move_to(event: dict, terminal: Terminal) -> None:
        """Rewrite a transaction as made at ``terminal`` instead."""
        event["terminal_id"] = terminal.terminal_id
        event["currency"] = terminal.currency
        event["card_present"] = terminal.card_present
        event["merchant_category"] = terminal.category
        event["lat"] = terminal.lat
        event["lon"] = terminal.lon
