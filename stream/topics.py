"""Every Kafka topic Scorestream reads or writes, and their creation.

Topic names are part of the contract with other clients, so they are fixed here
rather than configured.
"""

from __future__ import annotations

WEB_EVENTS = "web-events"
TRANSACTIONS = "transactions"
CONVERSIONS = "conversions"
FRAUD_LABELS = "fraud-labels"
LEAD_SCORES = "lead-scores"
TRANSACTION_SCORES = "transaction-scores"
FRAUD_ALERTS = "fraud-alerts"
ANOMALY_ALERTS = "anomaly-alerts"
DEAD_LETTER = "dead-letter"

INPUT_TOPICS = (WEB_EVENTS, TRANSACTIONS)
LABEL_TOPICS = (CONVERSIONS, FRAUD_LABELS)
OUTPUT_TOPICS = (LEAD_SCORES, TRANSACTION_SCORES, FRAUD_ALERTS, ANOMALY_ALERTS, DEAD_LETTER)
ALL_TOPICS = INPUT_TOPICS + LABEL_TOPICS + OUTPUT_TOPICS

#: The field of each keyed topic's events that is its Kafka message key.
KEY_FIELD = {
    WEB_EVENTS: "visitor_id",
    TRANSACTIONS: "customer_id",
    CONVERSIONS: "visitor_id",
    FRAUD_LABELS: "event_id",
}
