"""One settings object, read from ``SCORESTREAM_*`` environment variables.

Every knob of Scorestream lives here, with its default, so there is one place to
read how the engine is configured and no second way to configure it.

>>> s = Settings.from_env({"SCORESTREAM_PARTITIONS": "2"})
>>> s.partitions, s.kafka_bootstrap
(2, '127.0.0.1:9092')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

PREFIX = "SCORESTREAM_"
#: Variables with the prefix that are not settings but are read elsewhere (the test suite's broker).
OTHER_VARIABLES = frozenset({"SCORESTREAM_TEST_BOOTSTRAP"})

log = logging.getLogger(__name__)

#: Values of ``SCORESTREAM_CHALLENGERS``.
CHALLENGER_MODES = ("separate", "inline")
#: Values of ``SCORESTREAM_LEARNING``.
LEARNING_MODES = ("workers", "trainer")


@dataclass(frozen=True)
class Settings:
    """Engine configuration; each field is ``SCORESTREAM_<FIELD NAME IN CAPITALS>``."""

    #: Kafka bootstrap servers the worker, producer and topic admin connect to.
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: Apache Kafka release the local broker runs (jars from Maven Central).
    kafka_version: str = "3.9.1"
    #: Port of the local broker's KRaft controller listener.
    kafka_controller_port: int = 9093
    #: Heap of the local broker's JVM, in MiB.
    kafka_heap_mb: int = 512
    #: Folder for local state: broker data and logs, worker data.
    home: Path = Path(".scorestream")
    #: Folder where downloaded Kafka jars are cached (shared by every ``home``).
    kafka_cache: Path = Path(".scorestream/cache")
    #: Partitions of every topic created by ``scorestream topics create``.
    partitions: int = 4
    #: Time retention of the topics ``topics create`` makes; -1 keeps records whatever their
    #: timestamp. Records carry their *event* time, so a time limit would delete a replay of
    #: last month's events at once.
    topic_retention_ms: int = -1
    #: Size retention per partition of those topics, in bytes (bounds the disk instead).
    topic_retention_bytes: int = 1_073_741_824
    #: Faust application id (consumer group and changelog topic prefix).
    app_id: str = "scorestream"
    #: Port of the worker's web server (``/metrics`` lives there).
    web_port: int = 6066
    #: Seconds without a heartbeat before Kafka gives a silent (crashed) worker's partitions
    #: to the others; lower recovers sooner, higher tolerates longer pauses.
    session_timeout_s: float = 30.0
    #: Transactions whose fraud score is at least this go to ``fraud-alerts``.
    fraud_alert_threshold: float = 0.5
    #: Fraud alerts start once the models learned this many examples of each class: fraud labels
    #: come days before the horizon's negatives, so early models flag nearly everything. Scores
    #: are published all along; withheld alerts are counted.
    fraud_alert_warmup: int = 100
    #: How far, in seconds of event time, an event may trail its entity's newest event and
    #: still be placed exactly in its windows (state keeps this much beyond the longest window).
    allowed_lateness_s: float = 3600.0
    #: Label delay ``d`` of the terminal risk features, in days: a transaction at ``t`` sees its
    #: terminal's transactions in ``(t - d - w, t - d]`` (the time it takes to learn of a fraud).
    terminal_delay_days: float = 7.0
    #: Seconds of wall-clock time a ``fraud-labels`` partition read to its end must stay quiet
    #: before transactions past its newest label are scored without waiting for it (as Kafka
    #: Streams' ``max.task.idle.ms``, 0 there too). With 0 a transaction waits only for one fetch
    #: to confirm every label the broker has is read; a label reaching Kafka after transactions of
    #: its time is late for them. N > 0 tolerates labels N s behind, at up to N s of latency after
    #: each label (``stream/terminal_view.py``).
    terminal_label_wait_s: float = 0.0
    #: Seconds of wall-clock time between two sweeps that drop idle keys' state.
    state_expiry_interval_s: float = 300.0
    #: Where the challengers live: ``separate`` — each worker scores and learns (or, with a
    #: trainer, is sent) the champion and the anomaly detector only, and one ``scorestream
    #: challengers`` process learns every classifier (the challengers, and the champion's copy as
    #: their yardstick) from ``training-examples``, scoring each test-then-train, off the hot path;
    #: ``inline`` — whoever learns the champion learns them all too (with workers learning, every
    #: worker scores every model on each event, shadow scores in each score message).
    challengers: str = "separate"
    #: Who learns the models the workers score with: ``workers`` — every worker joins labels and
    #: learns them itself, from ``training-examples`` in full (replicas identical; scores exactly
    #: River's); ``trainer`` — one ``scorestream trainer`` process joins the labels, learns them
    #: (and the challengers, if inline) and publishes each task's champion and anomaly detector
    #: every ``SCORESTREAM_MODEL_PUBLISH_INTERVAL_S``; workers only score, with the newest models
    #: published (up to a publication interval behind the trainer).
    learning: str = "workers"
    #: With ``SCORESTREAM_LEARNING=trainer``: seconds between two publications of the models
    #: the workers score with (the staleness of their scores' models, besides Kafka's delay).
    #: Each swap holds a worker's loop 100-150 ms (mostly a full garbage collection): every 5 s,
    #: 20 of 42 two-second windows at 2 000 events/s had a p99 over 150 ms; every 30 s, 6. Labels
    #: come days after their events, so half a minute of staleness costs the scores nothing.
    model_publish_interval_s: float = 30.0
    #: The fraud model whose score is published (empty: the registry's choice, ``arf``).
    fraud_champion: str = ""
    #: The lead model whose score is published (empty: the registry's choice, ``logreg``).
    lead_champion: str = ""
    #: Port of the ``scorestream challengers`` process's web server (its ``/metrics``).
    challengers_web_port: int = 6067
    #: Port of the ``scorestream trainer`` process's web server (its ``/metrics``).
    trainer_web_port: int = 6068
    #: Niceness ``scorestream trainer`` and ``scorestream challengers`` add to their own CPU
    #: priority: they never hold a score back, so on a machine they share with workers the
    #: workers' scoring goes first (0 leaves it; a process of its own is unaffected either way).
    learner_nice: int = 10
    #: Seconds between two ``gc.freeze()`` in a worker: objects alive then are never walked by
    #: the cycle collector again (still freed by reference counting), so its full passes, which
    #: hold the loop, stay short: at 2 000 events/s ~100 ms every ~5 s without, ~11 ms with
    #: (``stream/gc_freeze.py``). 0: never.
    gc_freeze_interval_s: float = 10.0
    #: Trees of the adaptive random forest (a trained forest of 10 pickles to about 15 MB).
    arf_trees: int = 10
    #: Key (text) that signs model snapshots; empty: a random key kept in ``<home>/model.key``.
    model_key: str = ""
    #: Seconds of event time a label waits, past its own time, before it is joined: labels up
    #: to this much behind the scored events still meet every snapshot they concern. 0 joins a
    #: label as soon as its event is scored (right only if labels never trail their events).
    label_grace_s: float = 3600.0
    #: Days of event time a fraud label is waited for; a transaction without one by then
    #: becomes a negative training example.
    fraud_horizon_days: float = 14.0
    #: Days of event time a visitor's conversion is waited for after a session; a session
    #: without one by then becomes a negative training example.
    lead_horizon_days: float = 7.0
    #: Seconds between two model snapshots (one is also taken at shutdown).
    model_snapshot_interval_s: float = 60.0
    #: Largest batch of events the worker scores at once.
    batch_size: int = 500

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        known = {PREFIX + field.name.upper() for field in fields(cls)} | OTHER_VARIABLES
        unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in known)
        if unknown:  # a typo, or a setting that no longer exists: say so rather than ignore it
            log.warning("ignoring unknown settings: %s", ", ".join(unknown))
        values = {}
        for field in fields(cls):
            raw = environ.get(PREFIX + field.name.upper())
            if raw is None:
                continue
            kind = type(field.default)
            try:
                values[field.name] = kind(raw)
            except ValueError as exc:
                msg = f"{PREFIX}{field.name.upper()}={raw!r} is not a valid {kind.__name__}"
                raise ValueError(msg) from exc
        return cls(**values)

    def __post_init__(self) -> None:
        if self.challengers not in CHALLENGER_MODES:
            msg = (f"{PREFIX}CHALLENGERS={self.challengers!r}: expected one of "
                   f"{', '.join(CHALLENGER_MODES)}")
            raise ValueError(msg)
        if self.learning not in LEARNING_MODES:
            msg = f"{PREFIX}LEARNING={self.learning!r}: expected one of {', '.join(LEARNING_MODES)}"
            raise ValueError(msg)

    def champion(self, task: str) -> str:
        """The configured champion of a task, else the registry's (``online_models.registry.CHAMPIONS``)."""
        from online_models.registry import CHAMPIONS  # River loads only for those who need a model

        chosen = self.fraud_champion if task == "fraud" else self.lead_champion
        return chosen or CHAMPIONS[task]

    @property
    def learner_holds(self) -> str:
        """Which models the process that learns the champion holds (the workers, or
        ``scorestream trainer``; ``online_models.task_models.HOLDS``): the challengers too, inline."""
        return "champion" if self.challengers == "separate" else "all"

    @property
    def worker_holds(self) -> str:
        """Which models a scoring worker holds: those it learns, or the champion only with a trainer."""
        return "champion" if self.learning == "trainer" else self.learner_holds

    @property
    def challengers_process(self) -> bool:
        """Whether ``scorestream challengers`` learns the challengers (``SCORESTREAM_CHALLENGERS``)."""
        return self.challengers == "separate"

    def horizon_days(self, task: str) -> float:
        """The label horizon of a task (``fraud`` or ``lead``), in days of event time."""
        return self.fraud_horizon_days if task == "fraud" else self.lead_horizon_days

    @property
    def kafka_host(self) -> str:
        return self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[0]

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])

    @property
    def kafka_dir(self) -> Path:
        """Where the broker's jars are cached (kept across ``kafka stop``)."""
        return self.kafka_cache / f"kafka-{self.kafka_version}"

    @property
    def broker_dir(self) -> Path:
        """The local broker's data, logs and PID file."""
        return self.home / "broker"

    @property
    def worker_dir(self) -> Path:
        """Faust's data directory for the worker (table stores, offsets)."""
        return self.home / "worker"


def document() -> str:
    """A table of every setting, its variable and default (for the README and ``--help``)."""
    lines = ["| variable | default |", "|---|---|"]
    for field in fields(Settings):
        lines.append(f"| `{PREFIX}{field.name.upper()}` | `{field.default}` |")
    return "\n".join(lines)
