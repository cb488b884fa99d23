"""The pure batch core: records in → validation → features → champion's score → records out.

It knows nothing of Faust or Kafka clients: the worker hands it a batch of raw
records and a way to read each entity's state, and gets back the records to
produce and the state to write. That keeps the hot path measurable and testable
without a broker, and lets the way records reach it change without touching it.

>>> scorer = BatchScorer(TASKS["fraud"], fraud_alert_threshold=0.5)
>>> raw = (b'{"event_id": "t1", "ts": 1767225600000, "customer_id": "c1",'
...        b' "terminal_id": "k1", "amount": 25.0}')
>>> result = scorer.score_batch([InputRecord(raw, b"c1", 0, 0)], load_state=lambda key: None)
>>> [out.topic for out in result.outputs], sorted(result.state_writes)
(['transaction-scores'], [b'c1'])
>>> result = scorer.score_batch([InputRecord(b"{oops", None, 0, 1)], load_state=lambda key: None)
>>> [out.topic for out in result.outputs], result.invalid
(['dead-letter'], ['malformed_json'])
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from features.registry import TASK_FEATURES, FeatureSet
from online_models.label_join import Features, Snapshot, fraud_snapshot, lead_snapshot
from online_models.task_models import ANOMALY, TaskModels
from stream import topics
from stream.events import InvalidEvent, parse_transaction, parse_web_event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record, as the core needs it."""

    value: bytes | None
    key: bytes | None
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass
class BatchResult:
    """What scoring a batch produced: records to send, state to write, and counts for metrics."""

    outputs: list[OutputRecord] = field(default_factory=list)
    #: entity key → (partition of the record that last touched it, serialised state)
    state_writes: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    #: one dead-letter reason per invalid record
    invalid: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    alerts: int = 0
    #: scores at or above the alert threshold not alerted: the models were still warming up
    alerts_withheld: int = 0
    anomalies: int = 0
    #: records later than the allowed lateness behind their entity's newest event
    late: int = 0
    #: records already applied to their entity's state before (replayed after a crash)
    replayed: int = 0
    #: stored states that could not be read (an older format) and started afresh
    state_resets: int = 0


#: Version of the stored state's layout; a change of layout bumps it.
STATE_FORMAT = 2


class EntityState:
    """An entity's feature state plus the input position last applied to it.

    The position makes replays idempotent: after a crash, records whose scores were
    sent but whose offsets were not yet committed come again; their effect is already
    in the state recovered from the changelog, so they are scored but not re-applied.
    """

    __slots__ = ("features", "partition", "offset")

    def __init__(self, features: Any, partition: int = -1, offset: int = -1) -> None:
        self.features = features
        self.partition = partition
        self.offset = offset

    def already_applied(self, record: InputRecord) -> bool:
        return record.partition == self.partition and record.offset <= self.offset

    def to_bytes(self) -> bytes:
        # orjson returns its whole output buffer (about 4 KiB) however short the JSON;
        # a copy keeps only the bytes, which matters for 10⁶ keys held in memory
        body = [STATE_FORMAT, self.partition, self.offset, self.features.to_list()]
        return memoryview(orjson.dumps(body)).tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes, state_type: type) -> EntityState:
        """Decode a stored state; :class:`StateFormatError` if it is not one this version wrote."""
        try:
            version, partition, offset, data = orjson.loads(raw)
            if version != STATE_FORMAT:
                msg = f"state format {version}, expected {STATE_FORMAT}"
                raise ValueError(msg)
            return cls(state_type.from_list(data), partition, offset)
        except (ValueError, TypeError) as error:
            raise StateFormatError(str(error)) from None


class StateFormatError(ValueError):
    """A stored state this version cannot read (an older format, or damaged bytes)."""


@dataclass(frozen=True)
class ScoringTask:
    """How one input topic is scored: its parser, its entity key, its features and outputs."""

    name: str
    input_topic: str
    parse: Callable[[bytes], Any]
    entity_field: str
    passthrough: tuple[str, ...]
    features: FeatureSet
    score_topic: str
    #: what the label join keeps of a scored event (its features and every model's score)
    snapshot: Callable[[Any, Features, dict[str, float]], Snapshot]
    alert_topic: str | None = None
    #: whether its events also get the terminal risk features (``stream/terminal_view.py``)
    terminal_features: bool = False


def _fraud_snapshot(tx: Any, features: Features, scores: dict[str, float]) -> Snapshot:
    return fraud_snapshot(tx.event_id, tx.ts_ms, features, scores)


def _lead_snapshot(event: Any, features: Features, scores: dict[str, float]) -> Snapshot:
    return lead_snapshot(event.visitor_id, event.session_id, event.event_id, event.ts_ms, features, scores)


TASKS = {
    "fraud": ScoringTask(
        name="fraud",
        input_topic=topics.TRANSACTIONS,
        parse=parse_transaction,
        entity_field="customer_id",
        passthrough=("customer_id", "terminal_id"),
        features=TASK_FEATURES["fraud"],
        score_topic=topics.TRANSACTION_SCORES,
        snapshot=_fraud_snapshot,
        alert_topic=topics.FRAUD_ALERTS,
        terminal_features=True,
    ),
    "lead": ScoringTask(
        name="lead",
        input_topic=topics.WEB_EVENTS,
        parse=parse_web_event,
        entity_field="visitor_id",
        passthrough=("visitor_id", "session_id"),
        features=TASK_FEATURES["lead"],
        score_topic=topics.LEAD_SCORES,
        snapshot=_lead_snapshot,
    ),
}


def iso_ts(ts_ms: int) -> str:
    """Event time as ISO-8601 UTC with milliseconds.

    >>> iso_ts(1767225600123)
    '2026-01-01T00:00:00.123Z'
    """
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter_record(source_topic: str, record: InputRecord, error: InvalidEvent) -> OutputRecord:
    """A dead-letter record that keeps the original bytes and says why they were refused."""
    body: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": record.partition,
        "offset": record.offset,
        "reason": error.reason,
        "detail": error.detail,
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
    }
    try:
        body["value"] = record.value.decode("utf-8") if record.value is not None else None
    except UnicodeDecodeError:
        body["value_base64"] = base64.b64encode(record.value).decode("ascii")
    return OutputRecord(topics.DEAD_LETTER, record.key, orjson.dumps(body))


class BatchScorer:
    """Scores batches of one task's records: the champion's score is published, challengers shadow it.

    Every model ``models`` holds is scored (with challengers separate, the champion and
    the anomaly detector only: see ``SCORESTREAM_CHALLENGERS``). With ``join_topic`` set,
    every scored event also yields a snapshot record (its features and those scores,
    and the input partition it came from) for the label join, keyed by the join key.
    """

    def __init__(self, task: ScoringTask, fraud_alert_threshold: float = 0.5,
                 lateness_ms: int = 3_600_000, models: TaskModels | None = None,
                 join_topic: str | None = None,
                 context: Callable[[Any, int], Features] | None = None,
                 alert_warmup: int = 0) -> None:
        self.task = task
        #: features from outside the entity's state (the fraud task's terminal view):
        #: ``context(event, input partition)`` → more feature values
        self.context = context
        self.lateness_ms = lateness_ms
        #: the newest event time seen: the clock that expires idle keys
        self.newest_ts = 0
        self.models = models if models is not None else TaskModels(task.name)
        self.join_topic = join_topic
        self.alert_threshold = fraud_alert_threshold
        #: alerts only once the models learned this many examples of each class
        self.alert_warmup = alert_warmup

    @property
    def model_name(self) -> str:
        return f"{self.task.name}.{self.models.champion}"

    def parse_batch(self, records: Sequence[InputRecord]) -> list[Any]:
        """Each record's event, or the :class:`InvalidEvent` that says why it is not one."""
        events: list[Any] = []
        for record in records:
            try:
                if record.value is None:
                    raise InvalidEvent("missing_value", "the record has no value (tombstone)")
                events.append(self.task.parse(record.value))
            except InvalidEvent as error:
                events.append(error)
        return events

    def score_batch(
        self, records: Sequence[InputRecord], load_state: Callable[[bytes], bytes | None],
        events: list[Any] | None = None,
    ) -> BatchResult:
        """Score every record in order; invalid ones become dead letters, never exceptions.

        ``events`` is :meth:`parse_batch`'s answer for ``records``, if already known.
        """
        result = BatchResult()
        states: dict[bytes, EntityState] = {}
        for record, event in zip(records, events or self.parse_batch(records), strict=True):
            if isinstance(event, InvalidEvent):
                result.invalid.append(event.reason)
                result.outputs.append(dead_letter_record(self.task.input_topic, record, event))
                continue
            entity = getattr(event, self.task.entity_field).encode()
            state = states.get(entity)
            if state is None:
                state = self._load(entity, load_state, result)
                states[entity] = state
            try:
                self._apply(record, event, state, result)
                self._score_one(event, state.features, result, record.partition)
            except Exception as error:  # a bug or an input nobody foresaw: never stop the worker
                log.exception("scoring %s offset %d failed", self.task.input_topic, record.offset)
                failure = InvalidEvent("processing_error", f"{type(error).__name__}: {error}"[:300])
                result.invalid.append(failure.reason)
                result.outputs.append(dead_letter_record(self.task.input_topic, record, failure))
        result.state_writes = {key: (s.partition, s.to_bytes()) for key, s in states.items()}
        return result

    def expired(self, items: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, int]]:
        """Keys (with their partition) idle for longer than any window can see, plus lateness.

        Idle is measured in event time against the newest event this scorer has seen,
        so a replay of old events expires nothing it still needs.
        """
        horizon = self.task.features.longest_window_ms + self.lateness_ms
        cutoff = self.newest_ts - horizon
        doomed = []
        for key, raw in items:
            try:
                state = EntityState.from_bytes(raw, self.task.features.state_type)
            except StateFormatError:
                continue  # replaced when its entity is next seen
            if state.features.newest_ts <= cutoff:
                doomed.append((key, state.partition))
        return doomed

    def _load(self, entity: bytes, load_state: Callable[[bytes], bytes | None],
              result: BatchResult) -> EntityState:
        """The entity's state; a state that cannot be read starts afresh (and is counted)."""
        raw = load_state(entity)
        state_type = self.task.features.state_type
        if raw is None:
            return EntityState(state_type())
        try:
            return EntityState.from_bytes(raw, state_type)
        except StateFormatError:
            result.state_resets += 1
            return EntityState(state_type())

    def _apply(self, record: InputRecord, event: Any, state: EntityState, result: BatchResult) -> None:
        """Add the event to its entity's state, once, and note whether it came late."""
        if state.already_applied(record):
            result.replayed += 1
            return
        if event.ts_ms < state.features.newest_ts - self.lateness_ms:
            result.late += 1  # applied all the same: see README "Lateness"
        self.task.features.update(state.features, event, self.lateness_ms)
        state.partition, state.offset = record.partition, record.offset
        self.newest_ts = max(self.newest_ts, event.ts_ms)

    def _score_one(self, event: Any, state: Any, result: BatchResult, partition: int) -> None:
        values = self.task.features.compute(state, event)
        if self.context is not None:
            values.update(self.context(event, partition))
        scores = self.models.score_one(values)
        score = scores[self.models.champion]
        body = {"event_id": event.event_id, "ts": iso_ts(event.ts_ms)}
        for name in self.task.passthrough:
            body[name] = getattr(event, name)
        shadow = {name: s for name, s in scores.items() if name != self.models.champion}
        # which training examples the models had learned: makes the learning order observable
        body.update(score=score, model=self.model_name, challengers=shadow, features=values,
                    training_position=self.models.position)
        key = getattr(event, self.task.entity_field).encode()
        result.outputs.append(OutputRecord(self.task.score_topic, key, orjson.dumps(body)))
        result.scores.append(score)
        if self.task.alert_topic is not None and score >= self.alert_threshold:
            if not self.models.is_warm(self.alert_warmup):
                result.alerts_withheld += 1
            else:
                alert = {**body, "threshold": self.alert_threshold}
                result.outputs.append(OutputRecord(self.task.alert_topic, key, orjson.dumps(alert)))
                result.alerts += 1
        if self.models.is_anomaly(scores):
            alert = {**body, "anomaly_score": scores[ANOMALY],
                     "threshold": self.models.anomaly_threshold}
            result.outputs.append(OutputRecord(topics.ANOMALY_ALERTS, key, orjson.dumps(alert)))
            result.anomalies += 1
        if self.join_topic is not None:
            snapshot = self.task.snapshot(event, values, scores)
            # orjson writes the dataclass itself, without asdict's deep copy of the features
            message = {"snapshot": snapshot, "source": partition}  # the join's clocks need the source
            result.outputs.append(OutputRecord(self.join_topic, snapshot.key.encode(), orjson.dumps(message)))
