"""The learning loop's batch handlers, free of Faust: labels in → label join → training examples.

1. Scoring (``stream.pipeline``) sends a *snapshot* of every scored event (its
   features and every model's score) to the task's join topic, keyed by the join key.
2. :func:`route_labels` validates ``fraud-labels`` / ``conversions`` records and
   sends them to the same join topic, keyed the same way, so a label meets its
   snapshots in one partition whatever partitioner the label's producer used.
3. :class:`JoinHandler` runs the point-in-time join (``online_models.label_join``)
   over a changelog-backed store and yields training examples for the
   single-partition ``training-examples`` topic.
4. Every worker reads ``training-examples`` in full, in order, and learns each
   example once, by offset and by example id (:func:`learn_records`): replicas
   stay identical.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field, replace

import orjson

from online_models.label_join import (
    POLICIES,
    JoinPolicy,
    Label,
    LabelJoin,
    Snapshot,
    TrainingExample,
    conversion,
    fraud_label,
)
from online_models.task_models import LEARNED, REPLAYED, TaskModels
from stream import topics
from stream.events import InvalidEvent, decode_object, parse_ts
from stream.pipeline import InputRecord, OutputRecord, dead_letter_record

#: The label topic of each task.
LABEL_TOPICS = {"fraud": topics.FRAUD_LABELS, "lead": topics.CONVERSIONS}


join_topic = topics.join_topic


def _text(obj: dict, field_name: str) -> str:
    value = obj.get(field_name)
    if not isinstance(value, str) or not value:
        reason = "missing_field" if value in (None, "") else "wrong_type"
        raise InvalidEvent(reason, f"{field_name!r} must be a non-empty string")
    return value


def _flag(obj: dict, field_name: str) -> bool:
    value = obj.get(field_name)
    if not isinstance(value, bool):
        reason = "missing_field" if value is None else "wrong_type"
        raise InvalidEvent(reason, f"{field_name!r} must be a boolean")
    return value


def parse_label(task: str, raw: bytes) -> Label | None:
    """A validated label; ``None`` for a conversion message that says ``converted: false``.

    >>> parse_label("fraud", b'{"event_id": "t1", "ts": 1767225600000, "is_fraud": true}')
    Label(key='t1', ts_ms=1767225600000, value=True, example_id='t1')
    """
    obj = decode_object(raw)
    if obj.get("ts") is None:
        raise InvalidEvent("missing_field", "'ts' is required")
    ts_ms = parse_ts(obj["ts"])
    if task == "fraud":
        return fraud_label(_text(obj, "event_id"), ts_ms, _flag(obj, "is_fraud"))
    visitor = _text(obj, "visitor_id")
    return conversion(visitor, ts_ms) if _flag(obj, "converted") else None


@dataclass
class RouteResult:
    outputs: list[OutputRecord] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    ignored: int = 0


def route_labels(task: str, records: Sequence[InputRecord], to_topic: str) -> RouteResult:
    """Label records to the join topic (keyed by the join key); invalid ones to the dead letters."""
    result = RouteResult()
    for record in records:
        try:
            if record.value is None:
                raise InvalidEvent("missing_value", "the record has no value (tombstone)")
            label = parse_label(task, record.value)
        except InvalidEvent as error:
            result.invalid.append(error.reason)
            result.outputs.append(dead_letter_record(LABEL_TOPICS[task], record, error))
            continue
        if label is None:
            result.ignored += 1
            continue
        body = orjson.dumps({"label": label})  # orjson writes dataclasses
        result.outputs.append(OutputRecord(to_topic, label.key.encode(), body))
    return result


class ChangelogStore(MutableMapping[bytes, bytes]):
    """The join's store over a table's local data, remembering each change and its partition.

    The Faust glue writes the remembered changes to the table's changelog, each to
    the partition of the join-topic record that caused it.
    """

    def __init__(self, data: MutableMapping[bytes, bytes]) -> None:
        self.data = data
        self.partition = 0
        self.changes: dict[bytes, tuple[int, bytes | None]] = {}

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.changes[key] = (self.partition, value)

    def __delitem__(self, key: bytes) -> None:
        if key in self.data:
            del self.data[key]
            self.changes[key] = (self.partition, None)

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self.data.keys()))

    def __len__(self) -> int:
        return len(self.data)

    def take_changes(self) -> dict[bytes, tuple[int, bytes | None]]:
        changes, self.changes = self.changes, {}
        return changes


def join_sources(task: str, partitions: int) -> int:
    """How many input partitions send snapshots to one join partition.

    A lead's snapshot is keyed by visitor, as its web event is: each join partition
    hears from its own input partition only. A transaction's is keyed by event id,
    its input by customer: every input partition feeds every join partition.

    >>> join_sources("lead", 4), join_sources("fraud", 4)
    (1, 4)
    """
    return 1 if task == "lead" else partitions


def pending_key(label: Label) -> bytes:
    """Where a label waits: ordered by its time, so the due ones come first.

    >>> pending_key(Label("v1", 42, True))
    b'00000000000000000042/v1/'
    """
    return f"{label.ts_ms:020d}/{label.key}/{label.example_id or ''}".encode()


def join_policy(task: str, grace_s: float, horizon_days: float | None = None) -> JoinPolicy:
    """The task's join policy with the configured grace (``SCORESTREAM_LABEL_GRACE_S``) and
    horizon (``SCORESTREAM_FRAUD_HORIZON_DAYS``, ``SCORESTREAM_LEAD_HORIZON_DAYS``; default:
    the registry's).

    >>> join_policy("fraud", 0).grace_ms, join_policy("lead", 3600).grace_ms
    (0, 3600000)
    >>> join_policy("lead", 0, horizon_days=1).horizon_ms
    86400000
    """
    policy = replace(POLICIES[task], grace_ms=round(grace_s * 1000))
    if horizon_days is not None:
        policy = replace(policy, horizon_ms=round(horizon_days * 86_400_000))
    return policy


class JoinHandler:
    """One task's label join over a batch of join-topic records (snapshots and labels).

    A label and its snapshots share a key, hence a join partition. Each join
    partition keeps an event-time clock: the newest snapshot received from each
    partition of the scored input topic (``sources`` of them), and the slowest of
    those. A label waits (in ``pending``, changelog-backed) until that clock passes
    the label's time plus the join's grace; it is then applied, in time order. So a
    label meets every snapshot scored at or before it, whichever topic the broker
    delivered first and however far one input partition runs ahead of another: the
    result depends on event times only. Horizons expire on the slowest clock.
    Learning waits that much event time (an hour by default), and waits while an
    input partition has sent nothing to the join partition yet. A label naming one
    snapshot (a fraud label) that is due before its snapshot came waits on for it,
    up to the end of its horizon: a snapshot can trail later ones of its partition
    by more than the grace (equal timestamps with no grace, or a stage before the
    scorer that merges partitions).
    """

    def __init__(self, task: str, store: ChangelogStore, pending: ChangelogStore,
                 policy: JoinPolicy | None = None, sources: int = 1) -> None:
        self.task = task
        self.store = store
        self.pending = pending
        self.join = LabelJoin(task, store, policy)
        self.sources = sources
        #: join partition → input partition → newest snapshot time (rebuilt as records come
        #: after a restart)
        self.newest: dict[int, dict[int, int]] = {}

    def clock(self, partition: int) -> int:
        """The event time every input partition's snapshots reached in a join partition (0 before)."""
        newest = self.newest.get(partition, {})
        if len(newest) < self.sources:
            return 0
        return min(newest.values())

    def handle(self, records: Sequence[InputRecord]) -> list[TrainingExample]:
        """Apply the batch in order; return the examples it completed (labels, then horizons)."""
        for record in records:
            self.store.partition = self.pending.partition = record.partition
            message = orjson.loads(record.value) if record.value else {}
            if "snapshot" in message:
                snapshot = Snapshot(**message["snapshot"])
                self.join.record(snapshot)
                newest = self.newest.setdefault(record.partition, {})
                source = message.get("source", 0)
                newest[source] = max(newest.get(source, 0), snapshot.ts_ms)
            elif "label" in message:
                label = Label(**message["label"])
                self.pending[pending_key(label)] = orjson.dumps([record.partition, label])
        examples = self._apply_due_labels()
        if self.newest:
            examples.extend(self.join.advance(min(self.clock(p) for p in self.newest)))
        return examples

    def _apply_due_labels(self) -> list[TrainingExample]:
        grace = self.join.policy.grace_ms
        examples = []
        for key in sorted(self.pending):
            partition, fields = orjson.loads(self.pending[key])
            label = Label(**fields)
            clock = self.clock(partition)
            if label.ts_ms > clock - grace:
                continue  # its partition has not reached it yet
            if not self.join.knows(label) and clock <= self.join.policy.due_ms(label.ts_ms):
                continue  # its one snapshot may still come: a stage before this one reorders
            self.store.partition = self.pending.partition = partition
            examples.extend(self.join.apply_label(label).examples)
            del self.pending[key]
        return examples


def example_records(examples: list[TrainingExample]) -> list[OutputRecord]:
    """Training examples for the single-partition ``training-examples`` topic."""
    return [OutputRecord(topics.TRAINING_EXAMPLES, e.key, e.to_bytes()) for e in examples]


@dataclass
class Learning:
    """What :func:`learn_records` did, per task: examples learned, and copies skipped by example id."""

    learned: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)


def learn_records(models: dict[str, TaskModels], records: Sequence[tuple[int, bytes]]) -> Learning:
    """Apply ``(offset, value)`` records of ``training-examples`` once each; count what was learned.

    An example is learned once per id: a second copy (the join sent it again after a crash)
    is skipped and counted in ``duplicates``; a record at or before a task's position
    (the topic read again after a restart) is skipped uncounted.
    """
    result = Learning()
    for offset, value in records:
        example = TrainingExample.from_bytes(value)
        task_models = models.get(example.task)
        if task_models is None:
            continue
        outcome = task_models.apply_example(example, position=offset)
        if outcome != REPLAYED:
            counts = result.learned if outcome == LEARNED else result.duplicates
            counts[example.task] = counts.get(example.task, 0) + 1
    return result
