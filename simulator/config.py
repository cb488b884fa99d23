"""The simulator's knobs, in one frozen dataclass with documented defaults.

Defaults give about 4 000 input events per simulated day, so a few thousand
events span about a day and 100 000 events about three and a half weeks.

>>> cfg = SimulatorConfig()
>>> cfg.web_share, cfg.fraud_rate, cfg.out_of_order_fraction
(0.5, 0.003, 0.0)
>>> SimulatorConfig(fraud_rate=2.0)
Traceback (most recent call last):
...
ValueError: fraud_rate must be in [0.0, 0.2], got 2.0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from simulator.clock import DAY, HOUR, to_ms


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate; same config and seed always give the same stream."""

    #: Event time of the start of the stream (timezone-aware).
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    #: Web plus transaction events per simulated day, on average (labels come on top).
    input_events_per_day: float = 4000.0
    #: Share of input events that are web events; the rest are transactions.
    web_share: float = 0.5
    #: Concurrent website visitors; a visitor who leaves is replaced by a new one.
    visitors: int = 1000
    #: Card holders, each with their own spending habits.
    customers: int = 1000
    #: Payment terminals (merchants), each with a location and category.
    terminals: int = 2000
    #: Target share of transactions that are fraudulent, over all scenarios.
    fraud_rate: float = 0.003
    #: Shares of the fraud rate from each scenario: large amount, compromised
    #: terminal, compromised customer, card testing (normalised to sum 1).
    fraud_mix: tuple[float, float, float, float] = (0.15, 0.35, 0.35, 0.15)
    #: Scenario "large amount": every transaction above this amount is fraud.
    large_amount_threshold: float = 220.0
    #: Scenario "compromised terminal": days its transactions stay fraudulent.
    terminal_compromise_days: float = 28.0
    #: Scenario "compromised customer": days a stolen card is used.
    customer_compromise_days: float = 14.0
    #: Share of a compromised customer's transactions that are fraudulent.
    customer_fraud_share: float = 1 / 3
    #: Factor on a compromised customer's fraudulent amounts (before drift).
    customer_amount_factor: float = 5.0
    #: Fraud labels arrive uniformly this many days after the transaction.
    fraud_label_delay_days: tuple[float, float] = (1.0, 14.0)
    #: Share of legitimate transactions that also get a label (``is_fraud`` false).
    legit_label_rate: float = 0.01
    #: Conversions arrive uniformly this many hours after the converting session.
    conversion_delay_hours: tuple[float, float] = (1.0, 8.0)
    #: Share of input events emitted late, i.e. after events with later ``ts``.
    out_of_order_fraction: float = 0.0
    #: The most an out-of-order event lags behind the largest ``ts`` already emitted.
    max_lateness_s: float = 3600.0
    #: Event time after which behaviour changes (concept drift); None = never.
    drift_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_aware(self.start, "start")
        if self.drift_at is not None:
            _check_aware(self.drift_at, "drift_at")
        _check_range("web_share", self.web_share, 0.0, 1.0)
        _check_range("fraud_rate", self.fraud_rate, 0.0, 0.2)
        _check_range("legit_label_rate", self.legit_label_rate, 0.0, 1.0)
        _check_range("customer_fraud_share", self.customer_fraud_share, 0.01, 1.0)
        _check_range("out_of_order_fraction", self.out_of_order_fraction, 0.0, 1.0)
        _check_range("max_lateness_s", self.max_lateness_s, 0.0, 7 * 86400.0)
        for name in ("input_events_per_day", "large_amount_threshold", "customer_amount_factor"):
            _check_range(name, getattr(self, name), 1e-9, float("inf"))
        for name in ("visitors", "customers", "terminals"):
            _check_range(name, getattr(self, name), 1, 10_000_000)
        for name in ("terminal_compromise_days", "customer_compromise_days"):
            _check_range(name, getattr(self, name), 0.01, 3650.0)
        if len(self.fraud_mix) != 4 or min(self.fraud_mix) < 0 or sum(self.fraud_mix) <= 0:
            msg = f"fraud_mix must be four non-negative weights, got {self.fraud_mix}"
            raise ValueError(msg)
        _check_span("fraud_label_delay_days", self.fraud_label_delay_days)
        _check_span("conversion_delay_hours", self.conversion_delay_hours)

    @property
    def start_ms(self) -> int:
        """``start`` in epoch milliseconds."""
        return to_ms(self.start)

    @property
    def drift_ms(self) -> int | None:
        """``drift_at`` in epoch milliseconds, or None."""
        return None if self.drift_at is None else to_ms(self.drift_at)

    @property
    def fraud_label_delay_ms(self) -> tuple[int, int]:
        low, high = self.fraud_label_delay_days
        return int(low * DAY), int(high * DAY)

    @property
    def conversion_delay_ms(self) -> tuple[int, int]:
        low, high = self.conversion_delay_hours
        return int(low * HOUR), int(high * HOUR)

    def scenario_rate(self, index: int) -> float:
        """The share of transactions the ``index``-th fraud scenario should make fraudulent."""
        return self.fraud_rate * self.fraud_mix[index] / sum(self.fraud_mix)


def _check_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be timezone-aware, got {value!r}"
        raise ValueError(msg)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        msg = f"{name} must be in [{low}, {high}], got {value}"
        raise ValueError(msg)


def _check_span(name: str, span: tuple[float, float]) -> None:
    if len(span) != 2 or not 0 <= span[0] <= span[1]:
        msg = f"{name} must be (low, high) with 0 <= low <= high, got {span}"
        raise ValueError(msg)
