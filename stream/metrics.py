"""Every Prometheus metric of the worker, declared in one place.

A fresh :class:`~prometheus_client.CollectorRegistry` per app keeps tests from
colliding ("Duplicated timeseries").

>>> from prometheus_client import CollectorRegistry
>>> metrics = Metrics.create(CollectorRegistry())
>>> metrics.events_consumed.labels(topic="transactions").inc()
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000)


class Metrics(NamedTuple):
    events_consumed: Counter
    outputs_produced: Counter
    invalid_events: Counter
    fraud_alerts: Counter
    late_events: Counter
    replayed_events: Counter
    expired_keys: Counter
    event_to_score_latency: Histogram
    score: Histogram
    batch_size: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        return cls(
            events_consumed=Counter(
                "scorestream_events_consumed", "Input records consumed.", ["topic"],
                registry=registry),
            outputs_produced=Counter(
                "scorestream_outputs_produced", "Records produced and acknowledged by Kafka.",
                ["topic"], registry=registry),
            invalid_events=Counter(
                "scorestream_invalid_events", "Input records sent to the dead-letter topic.",
                ["topic", "reason"], registry=registry),
            fraud_alerts=Counter(
                "scorestream_fraud_alerts", "Transactions whose score reached the alert threshold.",
                registry=registry),
            late_events=Counter(
                "scorestream_late_events", "Events later than the allowed lateness behind their"
                " entity's newest event (applied all the same).", ["topic"], registry=registry),
            replayed_events=Counter(
                "scorestream_replayed_events", "Events already in their entity's state (replayed"
                " after a crash): scored again, not re-applied.", ["topic"], registry=registry),
            expired_keys=Counter(
                "scorestream_expired_keys", "Keys whose state was dropped after idling past every"
                " window plus the allowed lateness.", ["entity"], registry=registry),
            event_to_score_latency=Histogram(
                "scorestream_event_to_score_latency_seconds",
                "From the worker receiving an event to its score being acknowledged by Kafka.",
                ["topic"], buckets=LATENCY_BUCKETS, registry=registry),
            score=Histogram(
                "scorestream_score", "Published champion scores.", ["task"],
                buckets=SCORE_BUCKETS, registry=registry),
            batch_size=Histogram(
                "scorestream_batch_size", "Records per scored batch.", ["topic"],
                buckets=BATCH_BUCKETS, registry=registry),
        )
