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
TRAINING_EXAMPLES = "training-examples"

INPUT_TOPICS = (WEB_EVENTS, TRANSACTIONS)
LABEL_TOPICS = (CONVERSIONS, FRAUD_LABELS)
OUTPUT_TOPICS = (LEAD_SCORES, TRANSACTION_SCORES, FRAUD_ALERTS, ANOMALY_ALERTS, DEAD_LETTER)
#: Every worker reads all of it in the same order, so it has a single partition.
INTERNAL_TOPICS = (TRAINING_EXAMPLES,)
ALL_TOPICS = INPUT_TOPICS + LABEL_TOPICS + OUTPUT_TOPICS + INTERNAL_TOPICS
#: Topics whose partition count is fixed, whatever SCORESTREAM_PARTITIONS says.
FIXED_PARTITIONS = {TRAINING_EXAMPLES: 1}

#: The field of each keyed topic's events that is its Kafka message key.
KEY_FIELD = {
    WEB_EVENTS: "visitor_id",
    TRANSACTIONS: "customer_id",
    CONVERSIONS: "visitor_id",
    FRAUD_LABELS: "event_id",
}


#: Tables of the label join: the workers' (``SCORESTREAM_LEARNING=workers``) or the trainer's.
JOIN_TABLES = ("fraud-label-join", "lead-label-join", "fraud-pending-labels", "lead-pending-labels")
#: Faust tables of the worker; each has a compacted changelog topic ``<app id>-<table>-changelog``.
TABLES = ("customer-state", "visitor-state", *JOIN_TABLES)


def trainer_app_id(app_id: str) -> str:
    """The Faust app id (consumer group, changelog prefix) of ``scorestream trainer``.

    >>> trainer_app_id("scorestream")
    'scorestream-trainer'
    """
    return f"{app_id}-trainer"


def join_topic(app_id: str, task: str) -> str:
    """The internal topic where a task's snapshots and labels meet.

    >>> join_topic("scorestream", "fraud")
    'scorestream-fraud-label-join'
    """
    return f"{app_id}-{task}-label-join"


def app_topics(app_id: str) -> tuple[str, ...]:
    """Internal topics of one app id: where each task's snapshots meet their labels.

    >>> app_topics("scorestream")
    ('scorestream-fraud-label-join', 'scorestream-lead-label-join')
    """
    return tuple(join_topic(app_id, task) for task in ("fraud", "lead"))


def snapshot_topic(app_id: str) -> str:
    """The compacted topic every process of the app publishes its model snapshots to
    (:mod:`stream.snapshot_records`); one partition, read in full at start.

    >>> snapshot_topic("scorestream")
    'scorestream-model-snapshots'
    """
    return f"{app_id}-model-snapshots"


#: Configuration of the snapshot topic: compacted (a snapshot replaces the previous one of its
#: name), in segments of 64 MiB: Kafka compacts only closed segments, and a trained forest's
#: snapshot is about 25 MB a minute per process.
SNAPSHOT_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": str(64 << 20)}


def changelog_topics(app_id: str) -> tuple[str, ...]:
    """The tables' changelog topics, created up front: Faust ignores a topic that is missing
    when it starts, and a table whose changelog it ignores never finishes recovering.

    >>> changelog_topics("s")[0]
    's-customer-state-changelog'
    """
    trainer = trainer_app_id(app_id)
    return (tuple(f"{app_id}-{table}-changelog" for table in TABLES)
            + tuple(f"{trainer}-{table}-changelog" for table in JOIN_TABLES))
