"""TaskModels: exactly River's loop when labels come at once; delayed labels learned once, as scored."""

import math
import numbers
import pickle

import pytest
from river import anomaly, compose, forest, linear_model, metrics, optim, preprocessing, tree, utils

from online_models.label_join import (
    JoinPolicy,
    LabelJoin,
    TrainingExample,
    conversion,
    fraud_label,
    fraud_snapshot,
    lead_snapshot,
)
from online_models.registry import PRIORS
from online_models.rules import FraudRules, LeadRules
from online_models.task_models import ANOMALY, CHALLENGERS, CHAMPION, TaskModels, format_table
from online_models.testing import labelled_stream

T0 = 1_767_225_600_000


def river_loop(task, stream, n_trees):
    """River's own predict_proba_one-then-learn_one loop, with the models built as River's docs show."""
    prior = PRIORS[task]
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    models = {
        "logreg": (numeric + categorical) | linear_model.LogisticRegression(
            optimizer=optim.AdaGrad(0.05), intercept_init=math.log(prior / (1 - prior))),
        "hoeffding": tree.HoeffdingAdaptiveTreeClassifier(seed=0, max_share_to_split=1.0,
                                                           min_branch_fraction=1e-4),
        "arf": forest.ARFClassifier(n_models=n_trees, seed=0, lambda_value=1, leaf_prediction="mc",
                                    max_share_to_split=1.0, min_branch_fraction=1e-4),
        "rules": FraudRules() if task == "fraud" else LeadRules(),
    }
    detector = None
    if task == "fraud":
        detector = compose.SelectType(numbers.Number) | preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            seed=0)
    published = []
    for x, y in stream:
        scores = {name: model.predict_proba_one(x).get(True, 0.0) for name, model in models.items()}
        if detector is not None:
            scores[ANOMALY] = detector.score_one(x)
        published.append(scores)
        for model in models.values():
            model.learn_one(x, y)
        if detector is not None:
            detector.learn_one(x)
    return published, models


def engine_loop(task, stream, n_trees):
    """The engine's path with labels delivered at once, through the join and training-example bytes."""
    models = TaskModels(task, n_trees=n_trees)
    join = LabelJoin(task, {}, JoinPolicy(horizon_ms=0, grace_ms=0))
    topic: list[bytes] = []  # the single-partition training-examples topic
    published = []
    for i, (x, y) in enumerate(stream):
        ts = T0 + 1000 * i
        scores = models.score_one(x)
        published.append(scores)
        if task == "fraud":
            join.record(fraud_snapshot(f"x{i}", ts, x, scores))
            examples = join.apply_label(fraud_label(f"x{i}", ts, y)).examples
        else:
            join.record(lead_snapshot(f"v{i}", f"s{i}", f"w{i}", ts, x, scores))
            examples = join.apply_label(conversion(f"v{i}", ts)).examples if y else []
            examples += join.advance(ts + 1)  # horizon 0: not converted now is a negative now
        for example in examples:
            topic.append(example.to_bytes())
            assert models.learn_example(TrainingExample.from_bytes(topic[-1]), position=len(topic) - 1)
    return published, models


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_published_scores_are_exactly_rivers_own_loop(task):
    stream = list(labelled_stream(task, 1200, seed=5))
    ours, models = engine_loop(task, stream, n_trees=4)
    theirs, river_models = river_loop(task, stream, n_trees=4)
    assert [sorted(s) for s in ours] == [sorted(s) for s in theirs]
    for name in ours[0]:
        worst = max(abs(a[name] - b[name]) for a, b in zip(ours, theirs, strict=True))
        assert worst <= 1e-12, (task, name, worst)
        assert len({round(s[name], 6) for s in ours}) > 5, (task, name)  # the scores do move
    assert min(member.n_nodes for member in river_models["arf"]) > 1  # grown trees were compared
    assert river_models["hoeffding"].n_nodes > 1 and models.learned["logreg"] == len(stream)


def test_metrics_use_the_score_given_at_scoring_time_not_a_later_one():
    stream = list(labelled_stream("fraud", 300, seed=2))
    models = TaskModels("fraud", n_trees=1, metric_window=1000)
    at_scoring = [models.score_one(x) for x, _ in stream]  # all scored before any label comes
    for (x, y), scores in zip(stream, at_scoring, strict=True):
        models.learn_one(x, y, scores)
    expected_auc, expected_loss = metrics.RollingROCAUC(window_size=1000), utils.Rolling(
        metrics.LogLoss, window_size=1000)
    later_auc = metrics.RollingROCAUC(window_size=1000)
    for (x, y), scores in zip(stream, at_scoring, strict=True):
        expected_auc.update(y, scores["logreg"])
        expected_loss.update(y, scores["logreg"])
        later_auc.update(y, models.models["logreg"].predict_proba_one(x)[True])
    row = next(row for row in models.describe() if row["model"] == "logreg")
    assert row["roc_auc"] == expected_auc.get() and row["log_loss"] == expected_loss.get()
    assert row["roc_auc"] != later_auc.get()  # a score recomputed after learning would flatter it
    assert row["evaluated"] == row["learned"] == 300


class Spy:
    """Wraps a model and records what it learns."""

    def __init__(self, model, log, name):
        self.model, self.log, self.name = model, log, name

    def predict_proba_one(self, x):
        return self.model.predict_proba_one(x)

    def learn_one(self, x, y):
        self.log.append(("learn", self.name, dict(x), y))
        self.model.learn_one(x, y)


def test_delayed_labels_are_learned_once_on_the_features_that_were_scored():
    models = TaskModels("fraud", n_trees=2)
    log = []
    models.models = {name: Spy(model, log, name) for name, model in models.models.items()}
    join = LabelJoin("fraud", {}, JoinPolicy(horizon_ms=50_000, grace_ms=0))
    scored = {}
    for i, (x, y) in enumerate(labelled_stream("fraud", 400, seed=8)):
        ts = T0 + 1000 * i
        x = {**x, "n": i}  # which event the features belong to
        scores = models.score_one(x)
        scored[f"x{i}"] = (x, scores)
        join.record(fraud_snapshot(f"x{i}", ts, x, scores))
        examples = []
        if y and i % 3:  # two in three frauds are reported, 5 to 20 events later
            examples += join.apply_label(fraud_label(f"x{i}", ts + 5000 + 1000 * (i % 16), True)).examples
        for j in (i - 5, i - 20):  # ... delivered twice, out of order
            if j >= 0:
                examples += join.apply_label(fraud_label(f"x{j}", ts, True)).examples
        examples += join.advance(ts)
        for example in examples:
            log.append(("example", example.example_id))
            models.learn_example(example)
    for example in join.advance(T0 + 10**9):
        log.append(("example", example.example_id))
        models.learn_example(example)
    examples = [entry[1] for entry in log if entry[0] == "example"]
    assert sorted(examples) == sorted(scored) and len(set(examples)) == len(examples)
    learned_logreg = [entry[2] for entry in log if entry[0] == "learn" and entry[1] == "logreg"]
    assert learned_logreg == [scored[example_id][0] for example_id in examples]  # scoring-time features
    assert models.learned["hoeffding"] == models.evaluations["arf"].evaluated == 400


def test_replicas_fed_the_same_examples_are_identical_and_replays_are_skipped():
    stream = list(labelled_stream("lead", 400, seed=4))
    _, source = engine_loop("lead", stream, n_trees=2)
    topic = []
    scorer = TaskModels("lead", n_trees=2)
    for i, (x, y) in enumerate(stream):
        topic.append(TrainingExample("lead", f"e{i}", f"w{i}", T0 + i, y, T0 + i, "label", x,
                                     scorer.score_one(x)).to_bytes())
    a, b = TaskModels("lead", n_trees=2), TaskModels("lead", n_trees=2)
    for offset, raw in enumerate(topic):
        a.learn_example(TrainingExample.from_bytes(raw), offset)
    for offset, raw in list(enumerate(topic[:250])) + list(enumerate(topic)):  # a replay from 0
        b.learn_example(TrainingExample.from_bytes(raw), offset)
    assert a.learned == b.learned and a.position == b.position == len(topic) - 1
    probes = [x for x, _ in labelled_stream("lead", 50, seed=99)]
    assert [a.score_one(x) for x in probes] == [b.score_one(x) for x in probes]
    assert pickle.dumps(a.models["logreg"]) == pickle.dumps(b.models["logreg"])


def test_a_model_missing_from_the_scores_is_scored_before_it_learns():
    # challengers off the hot path: only the champion's score came with the example
    shadowless, full = TaskModels("lead", n_trees=1), TaskModels("lead", n_trees=1)
    for x, y in labelled_stream("lead", 300):
        full.learn_one(x, y, full.score_one(x))
        shadowless.learn_one(x, y, {"logreg": shadowless.score_one(x)["logreg"]})
    rows = {row["model"]: row for row in shadowless.describe()}
    assert rows["arf"]["evaluated"] == rows["arf"]["learned"] == 300
    # scored just before learning is what scoring at once would have given, and says so
    assert ([{**row, "scored": None} for row in shadowless.describe()]
        == [{**row, "scored": None} for row in full.describe()])
    assert {row["model"]: row["scored"] for row in shadowless.describe()} == {
        "logreg": "event", "arf": "label", "hoeffding": "label", "rules": "label"}


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_a_champion_worker_and_the_challengers_process_together_are_the_whole_task(task):
    # challengers separate: the worker scores (and sends) the champion's and detector's scores,
    # the challengers process scores every classifier at learning time; both learn every example
    full = TaskModels(task, n_trees=2)
    worker, challengers = TaskModels(task, n_trees=2, holds=CHAMPION), TaskModels(task, n_trees=2,
                                                                                  holds=CHALLENGERS)
    assert sorted(set(worker.names + challengers.names)) == sorted(full.names)
    assert ANOMALY not in challengers.names and challengers.names[0] == worker.champion
    for x, y in labelled_stream(task, 400, seed=3):
        full.learn_one(x, y, full.score_one(x))
        scores = worker.score_one(x)
        assert set(scores) == set(worker.names)
        worker.learn_one(x, y, scores)
        challengers.learn_one(x, y, {})  # examples carry the worker's scores: not used here
    rows = {row["model"]: row for row in full.describe()}
    assert {row["model"]: row for row in worker.describe()} == {n: rows[n] for n in worker.names}
    # labels at once: scored at learning time is what scoring at once would have given
    assert {row["model"]: row for row in challengers.describe()} == {
        name: {**rows[name], "scored": "label"} for name in challengers.names}
    assert challengers.scored_at == "label" and worker.scored_at == full.scored_at == "event"


def test_the_challengers_process_scores_every_model_itself_even_the_champion_s_copy():
    given, ignored = (TaskModels("lead", n_trees=1, holds=CHALLENGERS) for _ in range(2))
    for x, y in labelled_stream("lead", 200, seed=4):
        given.learn_one(x, y, dict.fromkeys(given.names, 0.5))  # the worker's scores at event time
        ignored.learn_one(x, y, {})
    assert given.describe() == ignored.describe()
    assert given.describe()[0]["model"] == "logreg" and given.describe()[0]["roc_auc"] != 0.5


def test_a_trainer_with_the_challengers_inline_says_they_were_scored_at_label_time():
    trainer, worker = TaskModels("fraud", n_trees=1), TaskModels("fraud", n_trees=1, holds=CHAMPION)
    for x, y in labelled_stream("fraud", 100, seed=5):
        trainer.learn_one(x, y, worker.score_one(x))  # the examples carry the workers' scores only
    scored = {row["model"]: row["scored"] for row in trainer.describe()}
    assert scored == {"arf": "event", "hst": "event", "hoeffding": "label", "logreg": "label",
                      "rules": "label"}


def test_describe_lists_every_model_champion_first():
    models = TaskModels("fraud", n_trees=1)
    rows = models.describe()
    assert [row["model"] for row in rows] == ["arf", "hoeffding", "logreg", "rules", "hst"]
    assert [row["champion"] for row in rows] == [True, False, False, False, False]
    assert {row["kind"] for row in rows} == {"classifier", "rules", "anomaly"}
    assert all(row["version"] == 0 and row["learned"] == 0 for row in rows)
    assert "fraud.hst" in format_table(rows) and "*" in format_table(rows)
    assert TaskModels("fraud", n_trees=1, champion="logreg").describe()[0]["model"] == "logreg"


def test_anomaly_flag_and_misuse():
    models = TaskModels("fraud", n_trees=1, anomaly_threshold=0.5)
    assert models.is_anomaly({ANOMALY: 0.5}) and not models.is_anomaly({ANOMALY: 0.4})
    assert not TaskModels("lead", n_trees=1).is_anomaly({ANOMALY: 1.0})
    with pytest.raises(ValueError, match="unknown task"):
        TaskModels("churn")
    with pytest.raises(ValueError, match="champion"):
        TaskModels("lead", champion="gbm")
    example = TrainingExample("lead", "v/s", "w", T0, True, T0, "label", {}, {})
    with pytest.raises(ValueError, match="lead example"):
        models.learn_example(example)


def test_ranking_metrics_are_none_while_the_window_holds_one_class():
    models = TaskModels("lead", n_trees=1, metric_window=50)
    stream = list(labelled_stream("lead", 200, seed=6))
    for x, y in stream:
        models.learn_one(x, y, models.score_one(x))
    assert models.describe()[0]["roc_auc"] is not None
    x, _ = stream[0]
    for _ in range(50):  # a quiet spell: only negatives fill the window
        models.learn_one(x, False, models.score_one(x))
    row = models.describe()[0]
    assert row["roc_auc"] is None and row["pr_auc"] is None and row["log_loss"] is not None


def test_metrics_stay_bounded_when_nobody_reads_them():
    models = TaskModels("lead", n_trees=1, metric_window=100)
    x, _ = next(labelled_stream("lead", 1))
    scores = models.score_one(x)
    sizes = []
    for i in range(3000):
        models.learn_one(x, i % 7 == 0, scores)
        if i in (999, 2999):
            sizes.append(len(pickle.dumps(models.evaluations)))
    assert sizes[1] < sizes[0] * 1.1  # no per-example growth past the window


MINUTE_MS = 60_000


def labelled_examples(task, n, seed):
    """``n`` examples of distinct ids, one a minute, scored by a separate scorer as the join sends them."""
    scorer = TaskModels(task, n_trees=2)
    return [TrainingExample(task, f"e{i}", f"w{i}", T0 + MINUTE_MS * i, y, T0 + MINUTE_MS * i, "label", x,
                            scorer.score_one(x))
            for i, (x, y) in enumerate(labelled_stream(task, n, seed))]


def with_copies(examples, every=50, run=5):
    """The topic after a crash every ``every`` examples: the join sends its last ``run`` examples again."""
    topic = []
    for i, example in enumerate(examples):
        topic.append(example)
        if i % every == every - 1:
            topic.extend(examples[i - run + 1:i + 1])
    return topic


def learned_from(models, topic):
    return [models.apply_example(example, position=offset) for offset, example in enumerate(topic)]


def same_models(a, b, task):
    """Same predictions from every model, same figures (pickles of trees differ byte-wise all the same)."""
    probes = [x for x, _ in labelled_stream(task, 50, seed=99)]
    same_scores = [a.score_one(x) for x in probes] == [b.score_one(x) for x in probes]
    return same_scores and a.describe() == b.describe()


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_a_copy_of_an_example_at_a_new_offset_is_not_learned_again(task):
    examples = labelled_examples(task, 400, seed=11)
    topic = with_copies(examples)
    once, twice = TaskModels(task, n_trees=2), TaskModels(task, n_trees=2)
    assert set(learned_from(once, examples)) == {"learned"}
    outcomes = learned_from(twice, topic)
    assert outcomes.count("learned") == 400 and outcomes.count("duplicate") == len(topic) - 400 == 40
    assert twice.duplicates == 40 and twice.position == len(topic) - 1
    assert twice.describe() == once.describe()  # examples learned and evaluated: copies not counted
    assert same_models(once, twice, task)
    assert pickle.dumps(once.models["logreg"]) == pickle.dumps(twice.models["logreg"])


def test_an_id_is_forgotten_once_example_time_moves_a_window_past_it():
    examples = labelled_examples("lead", 200, seed=12)  # one a minute
    models = TaskModels("lead", n_trees=1, duplicate_window_ms=30 * MINUTE_MS)
    learned_from(models, examples)
    assert len(models.seen) == 31  # the last 30 minutes of examples, and the newest
    assert not models.learn_example(examples[169], position=200)  # 30 minutes old: still a copy
    assert models.learn_example(examples[168], position=201)  # 31: forgotten, learned again
    assert models.learned["logreg"] == 201 and models.duplicates == 1
    assert TaskModels("fraud", n_trees=1).seen.window_ms == (14 * 24 + 1) * 60 * MINUTE_MS


def test_replicas_fed_the_same_copies_skip_the_same_and_stay_identical():
    examples = labelled_examples("fraud", 500, seed=13)
    topic = with_copies(examples, every=40, run=8)
    topic[450:450] = examples[100:110]  # copies so late that they are past the window: learned again
    a, b = (TaskModels("fraud", n_trees=2, duplicate_window_ms=60 * MINUTE_MS) for _ in range(2))
    outcomes = learned_from(a, topic)
    for offset, example in enumerate(topic[:300]):
        b.apply_example(example, position=offset)
    b = pickle.loads(pickle.dumps(b))  # a restart from a snapshot at offset 299...
    for offset, example in enumerate(topic):  # ... replaying the topic from its start
        b.apply_example(example, position=offset)
    assert outcomes.count("learned") == 510 and a.duplicates == b.duplicates == len(topic) - 510
    assert a.learned == b.learned and a.position == b.position
    assert same_models(a, b, "fraud")
    assert pickle.dumps(a.seen) == pickle.dumps(b.seen)
