"""``scorestream challengers``: the challengers learned and evaluated off the hot path.

With ``SCORESTREAM_CHALLENGERS=separate`` (the default) a scoring worker holds each
task's champion and anomaly detector only. The challengers (and the rule baseline)
live in this one process instead, with a copy of the champion as their yardstick:
it reads the single-partition ``training-examples`` topic in full, in order, as
every worker does, and for each example scores every classifier on the example's
features *then* lets it learn them (test-then-train, River's
``progressive_val_score``). So every model is evaluated on examples it had not
learned, all on the same terms, and learns exactly what the worker's champion
learns, in the same order; but their cost is paid once, here, rather than on
every event by every worker.

What is given up: the challengers' scores at scoring time (the ``challengers``
field of score messages is empty). A model scored at learning time has learned the
labels that came meanwhile, so its rolling metrics are those of a model judging with
some hindsight: ``scorestream models`` shows each row's ``scored`` (``event`` for a
worker's live champion, ``label`` here), and ``bench.quality`` scores every model at
scoring time to choose champions.

It is a Faust app of its own (its own id, web server and ``/metrics``), with no
input topic: nothing to rebalance. Its snapshots are ``<task>.challengers.snapshot`` (and
``<task>.challengers`` in the snapshot topic).
"""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from online_models.task_models import CHALLENGERS
from stream import snapshot_topic
from stream.app import add_metrics_page, quiet_root_logger
from stream.learning_agents import add_snapshots, add_trainer
from stream.metrics import Metrics
from stream.pipeline import TASKS
from stream.settings import Settings


def create_challengers_app(settings: Settings, registry: CollectorRegistry | None = None,
                           log_level: str = "warn") -> faust.App:
    """A Faust app that learns every task's classifiers from ``training-examples``, test-then-train."""
    datadir = settings.home / "challengers"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.app_id}-challengers",
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(datadir),
        store="memory://",
        web_port=settings.challengers_web_port,
        web_host="0.0.0.0",
        web_in_thread=False,
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics.create(registry)
    models, publisher = snapshot_topic.load_models(settings, TASKS, CHALLENGERS)
    add_trainer(app, settings, metrics, models)
    add_snapshots(app, settings, metrics, models, publisher)
    add_metrics_page(app, registry)
    quiet_root_logger(app, log_level)
    return app
