"""Point-in-time label join: what the models saw when they scored, joined to labels that come later.

When an event is scored, a :class:`Snapshot` keeps its feature vector and every
model's score. A label joins to the snapshot(s) it concerns and yields
:class:`TrainingExample` s carrying *those* features and scores, never features
recomputed later. The examples go to the single-partition ``training-examples``
topic; every worker learns from that topic, in its order (see ``docs/models.md``).

Keys and labels per task:

- ``fraud``: one snapshot per transaction, stored under its ``event_id``. A
  ``fraud-labels`` message (``event_id``, ``is_fraud``) joins to it.
- ``lead``: one snapshot per session, stored under the visitor: the scores at
  the session's *last* event (each new event of an open session replaces the
  snapshot, if not older). A ``conversions`` message for the visitor at time
  ``c`` labels positive every open session of the visitor whose last event is
  at ``t <= c <= t + horizon``; sessions after ``c`` are left open.

Snapshots still open when the event-time watermark passes ``t + horizon +
grace`` become **negative** examples (no fraud reported / no conversion within
the horizon), dated ``t + horizon``. A label later than ``t + horizon`` is
late and ignored. Labelled and expired entries are remembered as small
markers for ``keep_closed_ms`` more, so that a second label is ignored and
counted, and a session is never reopened. So each snapshot yields exactly one
example, decided by event times only.

The join is store-agnostic: it keeps bytes under bytes keys in any
``MutableMapping`` (a dict in tests, a Faust table in the worker) and keeps
an in-memory index of deadlines, rebuilt from the store by :meth:`LabelJoin.rebuild`.

>>> join = LabelJoin("fraud", {})
>>> join.record(fraud_snapshot("x1", 1_000, {"amount": 250.0}, {"logreg": 0.2}))
'stored'
>>> joined = join.apply_label(fraud_label("x1", 5_000, True))
>>> joined.outcome, [(e.example_id, e.label, e.features, e.scores) for e in joined.examples]
('joined', [('x1', True, {'amount': 250.0}, {'logreg': 0.2})])
>>> join.apply_label(fraud_label("x1", 6_000, True)).outcome  # learned exactly once
'duplicate'
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

Feature = float | int | str
Features = dict[str, Feature]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

#: Why an example got its label: a label message, or the horizon passing without one.
CAUSE_LABEL = "label"
CAUSE_HORIZON = "horizon"

_OPEN, _LABELLED, _EXPIRED = "open", "labelled", "expired"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the models saw and said when an event was scored."""

    #: where it is stored: the transaction's ``event_id`` (fraud), the ``visitor_id`` (lead)
    key: str
    #: what is labelled: the transaction's ``event_id`` (fraud), ``visitor_id/session_id`` (lead)
    example_id: str
    #: the scored event
    event_id: str
    #: its event time, epoch milliseconds
    ts_ms: int
    features: Features
    #: every model's score at scoring time, by model name
    scores: dict[str, float]


def fraud_snapshot(event_id: str, ts_ms: int, features: Features, scores: dict[str, float]) -> Snapshot:
    """The snapshot of a scored transaction, labelled later by its ``event_id``."""
    return Snapshot(event_id, event_id, event_id, ts_ms, features, scores)


def lead_snapshot(visitor_id: str, session_id: str, event_id: str, ts_ms: int, features: Features,
                  scores: dict[str, float]) -> Snapshot:
    """The snapshot of a scored web event, kept as its session's latest."""
    return Snapshot(visitor_id, f"{visitor_id}/{session_id}", event_id, ts_ms, features, scores)


@dataclass(frozen=True, slots=True)
class Label:
    """A label message: for one example (``example_id``), or for every open example of ``key``."""

    key: str
    ts_ms: int
    value: bool
    example_id: str | None = None


def fraud_label(event_id: str, ts_ms: int, is_fraud: bool) -> Label:
    """A ``fraud-labels`` message: the verdict on one transaction."""
    return Label(event_id, ts_ms, bool(is_fraud), event_id)


def conversion(visitor_id: str, ts_ms: int) -> Label:
    """A ``conversions`` message: the visitor converted at ``ts_ms``."""
    return Label(visitor_id, ts_ms, True)


@dataclass(frozen=True, slots=True)
class TrainingExample:
    """A labelled snapshot: the features and scores of scoring time, and the label."""

    task: str
    example_id: str
    event_id: str
    event_ts_ms: int
    label: bool
    #: when the label became known: the label's time, or ``event_ts_ms + horizon``
    label_ts_ms: int
    #: ``"label"`` or ``"horizon"``
    cause: str
    features: Features
    scores: dict[str, float]

    @property
    def key(self) -> bytes:
        """A record key for the ``training-examples`` topic."""
        return self.example_id.encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_bytes(cls, raw: bytes) -> TrainingExample:
        """A training example from its bytes; ``ValueError`` naming what is wrong otherwise."""
        try:
            fields = orjson.loads(raw)
            example = cls(**fields)
        except (orjson.JSONDecodeError, TypeError) as error:
            msg = f"not a training example: {error}"
            raise ValueError(msg) from None
        if not isinstance(example.features, dict) or not isinstance(example.scores, dict):
            msg = f"not a training example: features and scores must be objects ({example.example_id!r})"
            raise ValueError(msg)
        return example


@dataclass(frozen=True)
class JoinPolicy:
    """How long labels are waited for, in event time."""

    #: a label later than ``event ts + horizon`` is late; without one the example is negative
    horizon_ms: int
    #: how far the watermark may run ahead of the label topics before a snapshot expires
    grace_ms: int = HOUR_MS
    #: how long labelled/expired markers are kept after expiry (None: one horizon)
    keep_closed_ms: int | None = None

    def __post_init__(self) -> None:
        if self.horizon_ms < 0 or self.grace_ms < 0 or (self.keep_closed_ms or 0) < 0:
            msg = f"join policy durations must be >= 0, got {self}"
            raise ValueError(msg)

    def due_ms(self, ts_ms: int) -> int:
        """An open snapshot of time ``ts_ms`` expires once the watermark is past this."""
        return ts_ms + self.horizon_ms + self.grace_ms

    def drop_ms(self, ts_ms: int) -> int:
        """A closed marker of time ``ts_ms`` is forgotten once the watermark is past this."""
        keep = self.horizon_ms if self.keep_closed_ms is None else self.keep_closed_ms
        return self.due_ms(ts_ms) + keep


#: Default policies: fraud labels come up to 14 days late; leads convert within 7 days or never.
POLICIES = {"fraud": JoinPolicy(horizon_ms=14 * DAY_MS), "lead": JoinPolicy(horizon_ms=7 * DAY_MS)}


class Joined(NamedTuple):
    """What a label did: the examples it produced and ``joined``, ``duplicate``, ``late`` or ``unknown``."""

    examples: list[TrainingExample]
    outcome: str


Entries = dict[str, dict[str, Any]]


def _decode(raw: bytes | None) -> Entries:
    return {} if raw is None else orjson.loads(raw)


def _check_finite(snapshot: Snapshot) -> None:
    for kind, values in (("feature", snapshot.features), ("score", snapshot.scores)):
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                msg = f"snapshot of {snapshot.example_id}: {kind} {name!r} is {value}, not storable"
                raise ValueError(msg)


def _next_deadline(entries: Entries, policy: JoinPolicy) -> int | None:
    deadlines = [policy.due_ms(e["ts"]) if e["state"] == _OPEN else policy.drop_ms(e["ts"])
                 for e in entries.values()]
    return min(deadlines, default=None)


class LabelJoin:
    """The label join of one task over a key → bytes store; deterministic for a given call sequence."""

    def __init__(self, task: str, store: MutableMapping[bytes, bytes],
                 policy: JoinPolicy | None = None) -> None:
        self.task = task
        self.store = store
        self.policy = POLICIES[task] if policy is None else policy
        #: the largest watermark seen (epoch ms), None before the first
        self.watermark_ms: int | None = None
        #: what happened, by outcome: ``snapshot.stored``, ``label.duplicate``, ``horizon.negative``…
        self.counts: Counter[str] = Counter()
        self._heap: list[tuple[int, bytes]] = []
        self._scheduled: dict[bytes, int] = {}
        self.rebuild()

    def rebuild(self) -> None:
        """Re-index every deadline from the store (after a restart or a rebalance)."""
        self._heap, self._scheduled = [], {}
        for key, raw in self.store.items():
            deadline = _next_deadline(_decode(raw), self.policy)
            if deadline is not None:
                self._schedule(key, deadline)

    def _schedule(self, key: bytes, deadline: int) -> None:
        current = self._scheduled.get(key)
        if current is None or deadline < current:
            self._scheduled[key] = deadline
            heapq.heappush(self._heap, (deadline, key))

    def _write(self, key: bytes, entries: Entries) -> None:
        if entries:
            self.store[key] = orjson.dumps(entries)
        elif key in self.store:
            del self.store[key]

    def record(self, snapshot: Snapshot) -> str:
        """Keep a scored event's snapshot; says ``stored``, ``replaced``, ``stale`` or ``closed``.

        ``stale``: the open snapshot is newer (a late event of the session);
        ``closed``: the example was already labelled or expired. Both leave it unchanged.
        """
        _check_finite(snapshot)
        key = snapshot.key.encode()
        entries = _decode(self.store.get(key))
        entry = entries.get(snapshot.example_id)
        if entry is None:
            outcome = "stored"
        elif entry["state"] != _OPEN:
            outcome = "closed"
        elif snapshot.ts_ms < entry["ts"]:
            outcome = "stale"
        else:
            outcome = "replaced"
        if outcome in ("stored", "replaced"):
            entries[snapshot.example_id] = {
                "state": _OPEN, "ts": snapshot.ts_ms, "event_id": snapshot.event_id,
                "features": snapshot.features, "scores": snapshot.scores,
            }
            self._write(key, entries)
            self._schedule(key, self.policy.due_ms(snapshot.ts_ms))
        self.counts[f"snapshot.{outcome}"] += 1
        return outcome

    def _example(self, example_id: str, entry: dict[str, Any], label: bool, label_ts_ms: int,
                 cause: str) -> TrainingExample:
        return TrainingExample(self.task, example_id, entry["event_id"], entry["ts"], label, label_ts_ms,
                               cause, entry["features"], entry["scores"])

    def _close(self, entries: Entries, example_id: str, state: str) -> None:
        entries[example_id] = {"state": state, "ts": entries[example_id]["ts"]}

    def knows(self, label: Label) -> bool:
        """Whether the snapshot a label names (``example_id``) is held; True for a label naming none."""
        if label.example_id is None:
            return True
        return label.example_id in _decode(self.store.get(label.key.encode()))

    def apply_label(self, label: Label) -> Joined:
        """Join a label to its open snapshot(s); each snapshot is labelled at most once.

        Outcomes: ``joined`` (examples produced); ``duplicate`` (already labelled);
        ``late`` (expired already, or the label is past the horizon); ``unknown``
        (no snapshot it applies to: never scored here, forgotten, or a conversion
        with no session in the ``horizon`` before it).
        """
        key = label.key.encode()
        entries = _decode(self.store.get(key))
        horizon = self.policy.horizon_ms
        if label.example_id is not None:  # the given example, whatever the label's time relative to it
            entry = entries.get(label.example_id)
            matches = [] if entry is None else [(label.example_id, entry)]
        else:  # every example of the key scored at or before the label, within the horizon
            matches = sorted(((example_id, entry) for example_id, entry in entries.items()
                              if entry["ts"] <= label.ts_ms <= entry["ts"] + horizon),
                             key=lambda item: (item[1]["ts"], item[0]))
        states = {entry["state"] for _, entry in matches}
        examples = []
        for example_id, entry in matches:
            if entry["state"] == _OPEN and label.ts_ms <= entry["ts"] + horizon:
                examples.append(self._example(example_id, entry, label.value, label.ts_ms, CAUSE_LABEL))
                self._close(entries, example_id, _LABELLED)
        if examples:
            self._write(key, entries)
            outcome = "joined"
        elif _LABELLED in states:
            outcome = "duplicate"
        elif matches:
            outcome = "late"
        else:
            outcome = "unknown"
        self.counts[f"label.{outcome}"] += 1
        return Joined(examples, outcome)

    def advance(self, watermark_ms: int) -> list[TrainingExample]:
        """Move event time on: snapshots past their horizon become negative examples.

        The examples come in order of their ``label_ts_ms`` (the end of their horizon), then
        ``example_id``, whatever the history of the index (so also after a restart). The
        watermark never goes back: a smaller one is treated as the largest seen so far.
        """
        if self.watermark_ms is not None:
            watermark_ms = max(watermark_ms, self.watermark_ms)
        self.watermark_ms = watermark_ms
        examples: list[TrainingExample] = []
        while self._heap and self._heap[0][0] < watermark_ms:
            deadline, key = heapq.heappop(self._heap)
            if self._scheduled.get(key) != deadline:
                continue  # superseded by an earlier deadline for the same key
            del self._scheduled[key]
            entries = _decode(self.store.get(key))
            examples.extend(self._expire(key, entries, watermark_ms))
        examples.sort(key=lambda example: (example.label_ts_ms, example.example_id))
        return examples

    def _expire(self, key: bytes, entries: Entries, watermark_ms: int) -> list[TrainingExample]:
        examples = []
        for example_id, entry in sorted(entries.items(), key=lambda item: (item[1]["ts"], item[0])):
            if entry["state"] == _OPEN and self.policy.due_ms(entry["ts"]) < watermark_ms:
                label_ts = entry["ts"] + self.policy.horizon_ms
                examples.append(self._example(example_id, entry, False, label_ts, CAUSE_HORIZON))
                self._close(entries, example_id, _EXPIRED)
                self.counts["horizon.negative"] += 1
            elif entry["state"] != _OPEN and self.policy.drop_ms(entry["ts"]) < watermark_ms:
                del entries[example_id]
        self._write(key, entries)
        deadline = _next_deadline(entries, self.policy)
        if deadline is not None:
            self._schedule(key, deadline)
        return examples

    def open_snapshots(self) -> int:
        """How many snapshots are waiting for their label (a scan of the store: for tests and gauges)."""
        return sum(entry["state"] == _OPEN for raw in self.store.values()
                   for entry in _decode(raw).values())
