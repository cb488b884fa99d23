"""The simulation: every entity's stream merged into one seeded, event-time-ordered stream.

>>> events = list(simulate(5, seed=1))
>>> len(events), sorted({e["topic"] for e in events}) <= ["transactions", "web-events"]
(5, True)
>>> events == list(simulate(5, seed=1))
True
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice

from simulator.config import SimulatorConfig
from simulator.lateness import Item, hold_back
from simulator.merge import EventQueue
from simulator.scenarios import Fraud
from simulator.topics import INPUT_TOPICS, TRANSACTIONS
from simulator.transactions import Payments
from simulator.web import Website


def simulate(events: int | None, seed: int = 0, config: SimulatorConfig | None = None) -> Iterator[dict]:
    """Lazily yield ``events`` events (None: endless) over all topics, each with ``topic``.

    Events come in non-decreasing ``ts`` order, except the share
    ``config.out_of_order_fraction`` of input events emitted late. The same
    ``seed`` and ``config`` always give the same events.
    """
    return (event for event, _ in simulate_with_truth(events, seed, config))


def simulate_with_truth(
    events: int | None, seed: int = 0, config: SimulatorConfig | None = None
) -> Iterator[tuple[dict, str | None]]:
    """Like :func:`simulate`, paired with the fraud scenario of each fraudulent transaction.

    The scenario (a name from ``simulator.scenarios.SCENARIOS``) is None for
    every other event. For tests and evaluation only: consumers learn fraud
    from ``fraud-labels``, days later.
    """
    if events is not None and events < 0:
        msg = f"events must be None or >= 0, got {events}"
        raise ValueError(msg)
    config = SimulatorConfig() if config is None else config
    return ((event, scenario) for _, event, scenario in islice(_stream(config, seed), events))


def _stream(config: SimulatorConfig, seed: int) -> Iterator[Item]:
    master = random.Random(seed)
    world, web, payments_rng, fraud_rng, testing, late = (
        random.Random(master.getrandbits(64)) for _ in range(6)
    )
    ordered = _ordered(config, world, web, payments_rng, fraud_rng, testing)
    lateness_ms = int(config.max_lateness_s * 1000)
    return hold_back(ordered, late, config.out_of_order_fraction, lateness_ms, INPUT_TOPICS)


def _ordered(
    config: SimulatorConfig,
    world: random.Random,
    web: random.Random,
    payments_rng: random.Random,
    fraud_rng: random.Random,
    testing: random.Random,
) -> Iterator[Item]:
    queue = EventQueue()
    site = Website(config, queue)
    payments = Payments(config, world)
    fraud = Fraud(config, payments, queue, fraud_rng)
    for _ in range(config.visitors):
        queue.add_stream(site.slot(web))
    for customer in payments.customers:
        queue.add_stream(payments.customer_stream(payments_rng, customer))
    queue.add_stream(fraud.card_testing(testing))
    for ts_ms, event in queue.drain():
        scenario = fraud.judge(event, ts_ms) if event["topic"] == TRANSACTIONS else None
        yield ts_ms, event, scenario
