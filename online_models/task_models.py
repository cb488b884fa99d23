"""All of one task's models: score with every one, learn from training examples, evaluate prequentially.

The champion's score is published; the challengers (and the rule baseline,
and for fraud the anomaly detector ``hst``) are scored in shadow. Learning
comes only from :class:`~online_models.label_join.TrainingExample` s, each
with the scores the models gave when the event was scored: the metrics are
updated with *that* score, then every model learns (River's prequential
order, with the delay of the label).

The loop, labels delivered at once (so it is River's own predict-then-learn loop):

>>> models = TaskModels("lead", n_trees=2)
>>> for i in range(300):
...     x = {"pricing_views_7d": i % 4, "page_views_7d": i % 7, "device": "desktop" if i % 3 else "mobile"}
...     scores = models.score_one(x)
...     models.learn_one(x, x["pricing_views_7d"] >= 2, scores)
>>> models.champion, sorted(models.score_one({"pricing_views_7d": 3}))
('logreg', ['arf', 'hoeffding', 'logreg', 'rules'])
>>> [(row["model"], row["learned"]) for row in models.describe()][:2]
[('logreg', 300), ('arf', 300)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import base, metrics, stats, utils

from online_models import anomaly
from online_models.label_join import POLICIES, Features, TrainingExample
from online_models.registry import (
    ANOMALY_DETECTORS,
    CHAMPIONS,
    MODELS,
    ModelOptions,
    make_model,
    model_names,
)
from online_models.seen_examples import SeenExamples

#: The name under which the anomaly detector's score is reported (fraud only).
ANOMALY = "hst"
#: Examples the rolling metrics look back over, by default.
METRIC_WINDOW = 10_000
#: Example time over which learned example ids are remembered, by default: the task's label horizon
#: plus the join's default grace (a constant, not the worker's setting: every replica must agree).
DUPLICATE_WINDOW_MS = {task: policy.horizon_ms + policy.grace_ms for task, policy in POLICIES.items()}

#: What :meth:`TaskModels.apply_example` did with an example.
LEARNED, REPLAYED, DUPLICATE = "learned", "replayed", "duplicate"

#: Which of a task's models one process holds (see ``SCORESTREAM_CHALLENGERS``): every model
#: (challengers scored inline by each worker), the champion and the anomaly detector (a scoring
#: worker when challengers are separate), or every classifier scored at learning time
#: (``scorestream challengers``: the challengers, and a copy of the champion as their yardstick).
ALL, CHAMPION, CHALLENGERS = "all", "champion", "challengers"
HOLDS = (ALL, CHAMPION, CHALLENGERS)


def held_models(task: str, champion: str, holds: str) -> list[str]:
    """The registered classifiers a process holding ``holds`` of ``task`` learns, sorted.

    >>> held_models("lead", "logreg", CHAMPION), held_models("lead", "logreg", CHALLENGERS)
    (['logreg'], ['arf', 'hoeffding', 'logreg', 'rules'])
    """
    if holds not in HOLDS:
        msg = f"unknown holding {holds!r}: expected one of {HOLDS}"
        raise ValueError(msg)
    return [champion] if holds == CHAMPION else model_names(task)


def holds_detector(task: str, holds: str) -> bool:
    """Whether a process holding ``holds`` of ``task`` has its anomaly detector (scoring workers do).

    >>> holds_detector("fraud", CHAMPION), holds_detector("fraud", CHALLENGERS), holds_detector("lead", ALL)
    (True, False, False)
    """
    return task in ANOMALY_DETECTORS and holds != CHALLENGERS


@dataclass
class Evaluation:
    """Prequential metrics of one model over its last ``window`` examples (River's rolling metrics)."""

    window: int
    #: False for a score that is not a probability (the anomaly score): no log loss
    probabilistic: bool = True
    evaluated: int = 0
    roc_auc: metrics.RollingROCAUC = field(init=False)
    pr_auc: metrics.RollingPRAUC = field(init=False)
    log_loss: utils.Rolling = field(init=False)

    def __post_init__(self) -> None:
        self.roc_auc = metrics.RollingROCAUC(window_size=self.window)
        self.pr_auc = metrics.RollingPRAUC(window_size=self.window)
        self.log_loss = utils.Rolling(metrics.LogLoss, window_size=self.window)
        self.positive_rate = utils.Rolling(stats.Mean, window_size=self.window)

    def update(self, label: bool, score: float) -> None:
        self.evaluated += 1
        self.positive_rate.update(float(label))
        self.roc_auc.update(label, score)
        self.pr_auc.update(label, score)
        if self.probabilistic:
            self.log_loss.update(label, score)
        if self.evaluated % self.window == 0:
            # River's rolling AUCs buffer every update until read (river 0.26.1): read them once
            # a window, so that memory and snapshots stay bounded however long nobody looks
            self.roc_auc.get()
            self.pr_auc.get()

    def as_dict(self) -> dict[str, float | None]:
        """Rolling ROC AUC, PR AUC and log loss; None while there is nothing to measure.

        The ranking metrics need both classes in the window: with none of one class
        (a quiet spell of fraud, say) they are None rather than River's 0.
        """
        ranked = self.evaluated > 0 and 0.0 < self.positive_rate.get() < 1.0
        return {
            "roc_auc": self.roc_auc.get() if ranked else None,
            "pr_auc": self.pr_auc.get() if ranked else None,
            "log_loss": self.log_loss.get() if self.probabilistic and self.evaluated else None,
        }


class TaskModels:
    """Every registered model of a task, their metrics and what they have learned.

    ``position`` is the offset of the last ``training-examples`` record applied
    (-1: none); ``version`` is the snapshot version this state was restored
    from or last saved as (see :mod:`online_models.persistence`); ``seen`` the
    example ids learned lately, and ``duplicates`` how many copies of them were
    skipped (see :mod:`online_models.seen_examples`). All of it is in a snapshot.
    ``holds`` says which of the task's models these are (:data:`ALL`, :data:`CHAMPION`
    with the anomaly detector, or :data:`CHALLENGERS`: every classifier, scored at learning time).
    """

    def __init__(self, task: str, *, n_trees: int = 10, seed: int = 0, champion: str | None = None,
                 anomaly_threshold: float | None = None, metric_window: int = METRIC_WINDOW,
                 duplicate_window_ms: int | None = None, holds: str = ALL) -> None:
        if task not in CHAMPIONS:
            msg = f"unknown task {task!r}: expected one of {sorted(CHAMPIONS)}"
            raise ValueError(msg)
        self.task = task
        self.champion = CHAMPIONS[task] if champion is None else champion
        if (task, self.champion) not in MODELS:
            msg = f"champion {self.champion!r} is not a registered {task} model: {model_names(task)}"
            raise ValueError(msg)
        self.holds = holds
        options = ModelOptions(n_trees=n_trees, seed=seed)
        self.models: dict[str, base.Classifier] = {name: make_model(task, name, options)
                                                   for name in held_models(task, self.champion, holds)}
        self.detector: base.AnomalyDetector | None = None
        if holds_detector(task, holds):
            self.detector = ANOMALY_DETECTORS[task](seed=seed)
        self.anomaly_threshold = anomaly.check_threshold(
            anomaly.DEFAULT_THRESHOLD if anomaly_threshold is None else anomaly_threshold)
        self.evaluations = {name: Evaluation(metric_window) for name in self.models}
        if self.detector is not None:
            self.evaluations[ANOMALY] = Evaluation(metric_window, probabilistic=False)
        self.learned = dict.fromkeys(self.evaluations, 0)
        self.position = -1
        self.version = 0
        self.seen = SeenExamples(DUPLICATE_WINDOW_MS[task] if duplicate_window_ms is None
                                 else duplicate_window_ms)
        self.duplicates = 0
        #: examples learned of each class (False, True): how warm the models are
        self.learned_by_class = [0, 0]
        #: models evaluated on a score given when the label was learned (absent from the example's
        #: scores: challengers in ``scorestream challengers``, or learned by ``scorestream trainer``)
        self.scored_at_label: set[str] = set()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; a snapshot from before example ids (or classes) were counted starts with none."""
        self.__dict__.update(state)
        if "seen" not in state:
            self.seen = SeenExamples(DUPLICATE_WINDOW_MS[self.task])
            self.duplicates = 0
        if "learned_by_class" not in state:
            self.learned_by_class = [0, 0]
        if "holds" not in state:
            self.holds = ALL
        if "scored_at_label" not in state:
            self.scored_at_label = set()

    def keep_only(self, holds: str) -> bool:
        """Drop the models a process holding ``holds`` does not need; False if one it needs is missing.

        A worker that scored challengers inline and now leaves them to ``scorestream
        challengers`` keeps its snapshot's champion and detector.
        """
        wanted = held_models(self.task, self.champion, holds)
        detector = holds_detector(self.task, holds)
        if not set(wanted) <= set(self.models) or (detector and self.detector is None):
            return False
        for name in set(self.models) - set(wanted):
            del self.models[name], self.evaluations[name], self.learned[name]
        if not detector and self.detector is not None:
            self.detector = None
            del self.evaluations[ANOMALY], self.learned[ANOMALY]
        self.holds = holds
        return True

    def subset(self, holds: str) -> TaskModels:
        """A copy holding only what ``holds`` needs, sharing the model objects (nothing is copied
        but the dictionaries): what ``scorestream trainer`` pickles and publishes for the workers.

        >>> full = TaskModels("lead", n_trees=1)
        >>> part = full.subset(CHAMPION)
        >>> part.names, part.models["logreg"] is full.models["logreg"], len(full.models)
        (['logreg'], True, 4)
        """
        part = object.__new__(TaskModels)
        part.__dict__.update(self.__dict__)
        part.models, part.evaluations = dict(self.models), dict(self.evaluations)
        part.learned = dict(self.learned)
        if not part.keep_only(holds):
            msg = f"the {self.task} models held as {self.holds!r} lack what {holds!r} needs"
            raise ValueError(msg)
        return part

    def is_warm(self, per_class: int) -> bool:
        """Whether the models have learned at least ``per_class`` examples of each class.

        Labels come before the horizon's negatives (a chargeback in days, a negative after
        14), so early models have seen almost only positives and score everything high.

        >>> TaskModels("lead", n_trees=1).is_warm(1), TaskModels("lead", n_trees=1).is_warm(0)
        (False, True)
        """
        return min(self.learned_by_class) >= per_class

    @property
    def names(self) -> list[str]:
        """Every scorer held: the champion first, then the challengers, then the anomaly detector."""
        challengers = sorted(name for name in self.models if name != self.champion)
        champion = [self.champion] if self.champion in self.models else []
        return [*champion, *challengers, *([ANOMALY] if self.detector is not None else [])]

    def score_one(self, x: Features) -> dict[str, float]:
        """Every model's P(True) for ``x``, champion included; ``hst`` is an anomaly score in [0, 1]."""
        scores = {name: model.predict_proba_one(x).get(True, 0.0) for name, model in self.models.items()}
        if self.detector is not None:
            scores[ANOMALY] = self.detector.score_one(x)
        return scores

    def is_anomaly(self, scores: dict[str, float]) -> bool:
        """Whether the anomaly score in ``scores`` reaches the detector's threshold (never, without one)."""
        return (self.detector is not None and ANOMALY in scores
                and anomaly.is_anomaly(scores[ANOMALY], self.anomaly_threshold))

    def learn_one(self, x: Features, y: bool, scores: dict[str, float]) -> None:
        """Update each model's metrics with its score from ``scores`` (scoring time), then learn ``(x, y)``.

        A model missing from ``scores`` (one registered after the event was scored,
        say) is scored now, before it learns: test-then-train, as River's
        ``evaluate.progressive_val_score`` does, so every model is still judged on
        examples it had not learned. Models held for ``scorestream challengers`` are all
        scored so, the champion's copy too. The anomaly detector learns ``x`` without the label.
        """
        y = bool(y)
        if self.holds == CHALLENGERS:  # all judged alike, at learning time (see scored_at)
            scores = {}
        self.learned_by_class[y] += 1
        for name, model in self.models.items():
            score = scores.get(name)
            if score is None:
                score = model.predict_proba_one(x).get(True, 0.0)
                self.scored_at_label.add(name)
            self.evaluations[name].update(y, score)
            model.learn_one(x, y)
            self.learned[name] += 1
        if self.detector is not None:
            score = scores.get(ANOMALY)
            self.evaluations[ANOMALY].update(y, self.detector.score_one(x) if score is None else score)
            self.detector.learn_one(x)
            self.learned[ANOMALY] += 1

    def learn_example(self, example: TrainingExample, position: int | None = None) -> bool:
        """Learn a training example once; returns whether it was learned (see :meth:`apply_example`)."""
        return self.apply_example(example, position) == LEARNED

    def apply_example(self, example: TrainingExample, position: int | None = None) -> str:
        """Learn a training example once; says ``learned``, ``replayed`` or ``duplicate``.

        ``position`` is the example's offset in the single-partition ``training-examples``
        topic: one at or before the last applied is ``replayed`` (reading the topic again
        from an earlier offset changes nothing). An example whose id was learned lately,
        at another offset, is a ``duplicate`` (the join sent it twice): skipped and counted.
        """
        if example.task != self.task:
            msg = f"a {example.task} example ({example.example_id}) was given to the {self.task} models"
            raise ValueError(msg)
        if position is not None:
            if position <= self.position:
                return REPLAYED
            self.position = position
        if not self.seen.add(example.example_id, example.label_ts_ms):
            self.duplicates += 1
            return DUPLICATE
        self.learn_one(example.features, example.label, example.scores)
        return LEARNED

    @property
    def scored_at(self) -> str:
        """When the scores these models are evaluated on were given: when the ``event`` was scored
        (a worker's models), or when its ``label`` was learned (``scorestream challengers``: each
        model had then learned the examples that came between, so it judges with some hindsight).
        """
        return "label" if self.holds == CHALLENGERS else "event"

    def scored(self, name: str) -> str:
        """:attr:`scored_at`, for one model: a model the examples brought no score for (a challenger
        learned by ``scorestream trainer``) was scored when the label was learned."""
        return "label" if name in self.scored_at_label else self.scored_at

    def describe(self) -> list[dict[str, Any]]:
        """One row per model for ``scorestream models``: version, examples learned, rolling metrics."""
        rows = []
        for name in self.names:
            if name == ANOMALY:
                kind, full_name = "anomaly", f"{self.task}.{ANOMALY}"
            else:
                spec = MODELS[(self.task, name)]
                kind, full_name = ("classifier" if spec.learns else "rules"), spec.full_name
            evaluation = self.evaluations[name]
            rows.append({
                "task": self.task, "model": name, "full_name": full_name, "kind": kind,
                "champion": name == self.champion, "scored": self.scored(name), "version": self.version,
                "learned": self.learned[name], "evaluated": evaluation.evaluated,
                **evaluation.as_dict(),
            })
        return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """``describe()`` rows as a plain-text table (what ``scorestream models`` prints).

    >>> print(format_table(TaskModels("lead", n_trees=1).describe()))  # doctest: +NORMALIZE_WHITESPACE
    model           kind        champion  scored  version  learned  evaluated  roc_auc  pr_auc  log_loss
    lead.logreg     classifier  *         event         0        0          0        -       -         -
    lead.arf        classifier            event         0        0          0        -       -         -
    lead.hoeffding  classifier            event         0        0          0        -       -         -
    lead.rules      rules                 event         0        0          0        -       -         -
    """
    columns = ("model", "kind", "champion", "scored", "version", "learned", "evaluated", "roc_auc",
               "pr_auc", "log_loss")

    def cell(row: dict[str, Any], column: str) -> str:
        value = row["full_name"] if column == "model" else row[column]
        if column == "champion":
            return "*" if value else ""
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    table = [list(columns)] + [[cell(row, column) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    left = {0, 1, 2, 3}
    return "\n".join(
        "  ".join(text.ljust(width) if i in left else text.rjust(width)
                  for i, (text, width) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in table
    )
