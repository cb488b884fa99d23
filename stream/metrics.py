"""Every Prometheus metric of the worker, declared in one place.

A fresh :class:`~prometheus_client.CollectorRegistry` per app keeps tests from
colliding ("Duplicated timeseries").

>>> from prometheus_client import CollectorRegistry
>>> metrics = Metrics.create(CollectorRegistry())
>>> metrics.events_consumed.labels(topic="transactions").inc()
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000)


class Metrics(NamedTuple):
    events_consumed: Counter
    outputs_produced: Counter
    invalid_events: Counter
    fraud_alerts: Counter
    fraud_alerts_withheld: Counter
    late_events: Counter
    replayed_events: Counter
    expired_keys: Counter
    state_resets: Counter
    anomaly_alerts: Counter
    training_examples: Counter
    label_join: Gauge
    examples_learned: Counter
    duplicate_examples: Counter
    model_roc_auc: Gauge
    event_to_score_latency: Histogram
    score: Histogram
    batch_size: Histogram
    terminal_wait: Histogram
    terminal_quiet_releases: Counter
    late_labels: Counter
    terminal_transactions: Gauge
    snapshot_publish: Histogram
    snapshot_publish_failures: Counter
    model_swaps: Counter
    model_training_position: Gauge
    gc_frozen_objects: Gauge
    batch_loop_wait: Counter

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
            fraud_alerts_withheld=Counter(
                "scorestream_fraud_alerts_withheld", "Scores at or above the alert threshold while"
                " the models had not yet learned SCORESTREAM_FRAUD_ALERT_WARMUP examples of each"
                " class (no alert sent).", registry=registry),
            late_events=Counter(
                "scorestream_late_events", "Events later than the allowed lateness behind their"
                " entity's newest event (applied all the same).", ["topic"], registry=registry),
            replayed_events=Counter(
                "scorestream_replayed_events", "Events already in their entity's state (replayed"
                " after a crash): scored again, not re-applied.", ["topic"], registry=registry),
            expired_keys=Counter(
                "scorestream_expired_keys", "Keys whose state was dropped after idling past every"
                " window plus the allowed lateness.", ["entity"], registry=registry),
            state_resets=Counter(
                "scorestream_state_resets", "Stored entity states that could not be read (an older"
                " format, or damaged) and started afresh.", ["topic"], registry=registry),
            anomaly_alerts=Counter(
                "scorestream_anomaly_alerts", "Events whose anomaly score reached its threshold.",
                ["task"], registry=registry),
            training_examples=Counter(
                "scorestream_training_examples", "Training examples the label join produced, by why"
                " they got their label (a label message, or the horizon passing).", ["task", "cause"],
                registry=registry),
            label_join=Gauge(
                "scorestream_label_join_outcomes", "What the label join did since this worker started:"
                " snapshot.stored, label.joined, label.unknown, horizon.negative…",
                ["task", "outcome"], registry=registry),
            examples_learned=Counter(
                "scorestream_examples_learned", "Training examples this worker's models learned.",
                ["task"], registry=registry),
            duplicate_examples=Counter(
                "scorestream_duplicate_examples", "Training examples skipped because their example id"
                " was learned already (the label join sent them twice, after a crash).", ["task"],
                registry=registry),
            model_roc_auc=Gauge(
                "scorestream_model_roc_auc", "Rolling prequential ROC AUC of each model (scores given"
                " before the model learned the example).", ["task", "model"], registry=registry),
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
            terminal_wait=Histogram(
                "scorestream_terminal_wait_seconds", "Time a batch of transactions waited for the"
                " terminal view to read every transaction and fraud label up to its time (batches"
                " wait side by side: the sum can exceed the time passed).",
                buckets=LATENCY_BUCKETS, registry=registry),
            terminal_quiet_releases=Counter(
                "scorestream_terminal_quiet_releases", "Batches of transactions scored past the"
                " newest fraud label of a label partition read to its end (caught up, and quiet for"
                " SCORESTREAM_TERMINAL_LABEL_WAIT_S).", registry=registry),
            late_labels=Counter(
                "scorestream_late_labels", "Fraud labels read after transactions at or after their"
                " time were scored (they count from then on).", registry=registry),
            terminal_transactions=Gauge(
                "scorestream_terminal_transactions", "Transactions the terminal view holds.",
                registry=registry),
            snapshot_publish=Histogram(
                "scorestream_model_snapshot_publish_seconds", "Time to publish a saved model snapshot"
                " to the snapshot topic (read, verify, send every chunk, then its manifest).",
                ["snapshot"], buckets=LATENCY_BUCKETS, registry=registry),
            snapshot_publish_failures=Counter(
                "scorestream_model_snapshot_publish_failures", "Model snapshots saved locally but not"
                " published to the snapshot topic (a new machine would restore an older one).",
                ["snapshot"], registry=registry),
            model_swaps=Counter(
                "scorestream_model_swaps", "Models published by scorestream trainer that this worker"
                " swapped in (SCORESTREAM_LEARNING=trainer).", ["task"], registry=registry),
            model_training_position=Gauge(
                "scorestream_model_training_position", "Offset in training-examples of the last example"
                " the models this process scores with have learned.", ["task"], registry=registry),
            gc_frozen_objects=Gauge(
                "scorestream_gc_frozen_objects", "Objects the worker froze out of the cycle"
                " collector's reach (SCORESTREAM_GC_FREEZE_INTERVAL_S): about the live heap; steady growth"
                " would mean cycles among them leak.",
                registry=registry),
            batch_loop_wait=Counter(
                "scorestream_batch_loop_wait_seconds", "Time the fetch loop waited: for records"
                " (on=records: idle, or fetches slower than scoring) or for Kafka to acknowledge a"
                " full window of batches in flight (on=acknowledgements: produce back-pressure) or for"
                " a topic's batches to be prepared (on=preparation: too many transactions waiting for"
                " the terminal view).",
                ["on"], registry=registry),
        )
