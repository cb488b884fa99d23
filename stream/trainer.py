"""``SCORESTREAM_LEARNING=trainer``: one process learns, the workers only score.

With ``workers`` learning (the default) every worker routes labels, keeps the label
join and learns every training example itself: about 40 % of a worker's CPU per
event (``bench/README.md``), paid again by every replica. With ``trainer`` the
``scorestream trainer`` process does all of it once:

* it routes ``fraud-labels`` and ``conversions`` and keeps the label join (its own
  consumer group ``<app id>-trainer`` and changelog-backed tables), reading the join
  records the workers produce for each event scored, with its features and scores;
* it learns every training example into the champion and anomaly detector (and, with
  ``SCORESTREAM_CHALLENGERS=inline``, the challengers and rule baseline; separate, they
  are ``scorestream challengers``' as ever), as a worker would
  (:mod:`stream.learning_agents`), and snapshots them (``<task>.snapshot``) for its
  own restarts;
* every ``SCORESTREAM_MODEL_PUBLISH_INTERVAL_S`` in which it learned something, it
  publishes each task's champion and anomaly detector, signed, as ``<task>.scoring``
  to the snapshot topic.

A worker reads the newest ``<task>.scoring`` at start, then follows the topic and
swaps in each newer one between two batches (:mod:`stream.model_follower`). What is
given up: a worker's scores come from models up to a publication interval behind the trainer's
(each score names the last training example its models learned:
``training_position``), instead of exactly the models River's own loop would have
then. Labels arrive days after their events, so the score of any event is made
without its own label either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import faust
from prometheus_client import CollectorRegistry

from online_models import persistence
from online_models.task_models import CHAMPION, TaskModels
from stream import model_store, snapshot_topic, topics
from stream.app import add_metrics_page, batch_app, quiet_root_logger
from stream.learning_agents import add_learning
from stream.metrics import Metrics
from stream.pipeline import TASKS
from stream.settings import Settings
from stream.snapshot_topic import SnapshotPublisher

log = logging.getLogger(__name__)


def create_trainer_app(settings: Settings, registry: CollectorRegistry | None = None,
                       log_level: str = "warn") -> faust.App:
    """A Faust app that joins labels, learns every model and publishes what the workers score with."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics.create(registry)
    app = batch_app(settings, topics.trainer_app_id(settings.app_id), trainer_dir(settings),
                    settings.trainer_web_port, metrics)
    models, publisher = snapshot_topic.load_models(settings, TASKS, settings.learner_holds)
    add_learning(app, settings, metrics, models, publisher)
    add_publishing(app, settings, metrics, models, snapshot_topic.trainer_publisher(settings, TASKS))
    add_metrics_page(app, registry)
    quiet_root_logger(app, log_level)
    return app


def trainer_dir(settings: Settings) -> Path:
    """Faust's data directory for the trainer."""
    return settings.home / "trainer"


def add_publishing(app: faust.App, settings: Settings, metrics: Metrics, models: Mapping[str, TaskModels],
                   publisher: SnapshotPublisher) -> None:
    """Publish each task's champion and anomaly detector whenever they learned something new.

    Pickling runs on the event loop: a logistic regression and its detector take a few
    milliseconds; a forest champion of 10 trees hundreds (the trainer's join waits meanwhile,
    the workers do not).
    """
    published: dict[str, int] = {}

    @app.timer(interval=settings.model_publish_interval_s)
    async def publish_scoring_models() -> None:
        for task, task_models in models.items():
            position = task_models.position
            if published.get(task) == position:
                continue
            name = model_store.published_name(task)
            started = time.monotonic()
            blob = persistence.dump(task_models.subset(CHAMPION), model_store.signing_key(settings),
                                    task_models.version)
            try:
                await publisher.publish_blob(name, blob)
            except Exception as error:  # Kafka away, a timeout: the next round tries again
                metrics.snapshot_publish_failures.labels(snapshot=name).inc()
                log.error("could not publish the %s models to %s: %r", task, publisher.topic, error)
                continue
            published[task] = position
            metrics.snapshot_publish.labels(snapshot=name).observe(time.monotonic() - started)
            metrics.model_training_position.labels(task=task).set(position)

    @app.on_before_shutdown.connect
    async def stop_publishing(sender: object, **kwargs: object) -> None:
        await publisher.stop()
