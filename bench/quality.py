"""Quality benchmark: online models with delayed labels vs the rule baseline vs weekly batch models.

Runs the engine's learning layer offline on a simulated stream, the way the
worker does: features from ``features.registry`` (state updated, then
computed), every model of the task scored (``TaskModels.score_one``), a
snapshot kept (``LabelJoin.record``), labels joined when they come, negatives
when the horizon passes, and every training example learned in the order it
was produced. Fraud labels come exactly ``--label-delay-days`` after the
transaction; conversions come when the simulator sends them (1-8 h after the
converting session) and a session is positive if its visitor converts within 7
days of its last event.

The fraud features are the customer's (``features.registry``) and the
terminal's (``features/terminal.py``: transaction counts and the share of
known frauds over 1, 7 and 30 days, with a label delay of 7 days), as the
worker computes them (``stream/terminal_view.py``): a label counts for a
transaction at ``t`` if its own time is at most ``t``.

The held-out evaluation week is the last full week whose labels are all known
by the end of the stream. On it, each model is judged on the score it gave at
scoring time: ROC AUC, average precision and precision@100 per day over
entities (cards for fraud, visitors for leads: each day, the 100 entities with
the highest score, the share with a positive that day; averaged over the
days). The batch models (scikit-learn logistic regression and random forest,
benchmark-only) are retrained every week on every training example whose label
was known at the start of that week: the same examples, with the same delay,
as the online models had.

On the final week and on the pooled weeks, the champion is compared with every
other model (the rule baseline and the batch models first) by a paired,
class-stratified cluster bootstrap over entities (``bench/paired_bootstrap.py``
says why): the difference of each metric with its 95 % interval, and a verdict
by a fixed rule: **beats** if the interval lies above 0, **matches**
if it contains 0 (no difference measurable at this sample size), **worse** if it
lies below 0.

    python -m bench.quality                 # 400 000 events, both tasks in parallel
    python -m bench.quality --events 100000 --weeks 2 --tasks fraud
    python -m bench.quality --events 200000 --seed 1 --candidates all --json fig.json
    python -m bench.quality --events 1000000 --scale 5   # the same 50 days, 5 000 cards
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.candidates import CANDIDATES
from bench.paired_bootstrap import METRICS, VERDICT_RULE, paired_comparisons
from features.registry import TASK_FEATURES
from features.terminal import TerminalHistory
from online_models.label_join import (
    DAY_MS,
    JoinPolicy,
    LabelJoin,
    TrainingExample,
    conversion,
    fraud_label,
    fraud_snapshot,
    lead_snapshot,
)
from online_models.persistence import dump, join_chunks, load, split_chunks
from online_models.task_models import ANOMALY, TaskModels, format_table
from simulator import SimulatorConfig, simulate_with_truth
from stream.events import parse_ts, transaction_from_dict, web_event_from_dict

WEEK_MS = 7 * DAY_MS
LEAD_HORIZON_MS = 7 * DAY_MS
#: Feature-state lateness allowance, as the worker's default (the simulated stream is in order).
LATENESS_MS = 3_600_000
BENCH_KEY = b"benchmark-only key, not a secret"
LABEL_TOPICS = ("fraud-labels", "conversions")
#: What issue #5 asks the champion to match or beat; the other models are compared after them.
REQUIRED_BASELINES = ("rules", "batch LR", "batch RF")
METRIC_TITLES = {"roc_auc": "ROC AUC", "ap": "AP", "p_at_100": "P@100/day"}


def labels_first_on_ties(stream: Iterable[tuple[dict, Any]]) -> Iterator[tuple[dict, Any]]:
    """The simulated stream in event-time order with labels before other events of the same time."""
    tied: list[tuple[dict, Any]] = []
    for pair in stream:
        if tied and pair[0]["ts"] != tied[0][0]["ts"]:  # fixed-width ISO text: equal text, equal time
            yield from sorted(tied, key=lambda item: item[0]["topic"] not in LABEL_TOPICS)
            tied = []
        tied.append(pair)
    yield from sorted(tied, key=lambda item: item[0]["topic"] not in LABEL_TOPICS)


def simulator_config(delay_days: float, scale: float = 1.0) -> SimulatorConfig:
    """The simulator's defaults, fraud labels ``delay_days`` late, ``scale`` times as many of everything.

    ``scale`` multiplies the visitors, card holders, terminals and events per day, so each card and
    visitor behaves as at scale 1 and the fraud rate is unchanged: only the population grows.

    >>> config = simulator_config(7.0, scale=5)
    >>> config.customers, config.terminals, config.input_events_per_day, config.fraud_rate
    (5000, 10000, 20000.0, 0.003)
    """
    base = SimulatorConfig()
    return replace(base, fraud_label_delay_days=(delay_days, delay_days),
                   input_events_per_day=base.input_events_per_day * scale,
                   visitors=round(base.visitors * scale), customers=round(base.customers * scale),
                   terminals=round(base.terminals * scale))


def run_online(task: str, events: int, seed: int, delay_days: float, n_trees: int,
               candidates: tuple[str, ...] = (), scale: float = 1.0) -> dict[str, Any]:
    """The online loop over the simulated stream; returns the examples and what was seen.

    ``candidates`` (names from ``bench.candidates``) are scored and learn next to the task's models.
    """
    config = simulator_config(delay_days, scale)
    horizon = int(delay_days * DAY_MS) if task == "fraud" else LEAD_HORIZON_MS
    models = TaskModels(task, n_trees=n_trees, seed=seed)
    shadows = {name: CANDIDATES[task][name](task, seed) for name in candidates}
    join = LabelJoin(task, {}, JoinPolicy(horizon_ms=horizon))
    features = TASK_FEATURES[task]
    input_topic = "transactions" if task == "fraud" else "web-events"
    label_topic = "fraud-labels" if task == "fraud" else "conversions"
    states: dict[str, Any] = {}
    terminals = TerminalHistory()
    entity_of: dict[str, str] = {}  # example id -> card (fraud) or visitor (lead)
    truth: dict[str, bool] = {}  # fraud: the simulator's ground truth per transaction
    examples: list[TrainingExample] = []
    anomaly_scores: list[float] = []
    started, last_ts, scored = time.perf_counter(), 0, 0

    def learn(new: list[TrainingExample]) -> None:
        for example in new:
            examples.append(example)
            models.learn_example(example, position=len(examples) - 1)
            for shadow in shadows.values():
                shadow.learn_one(example.features, example.label)

    for event, scenario in labels_first_on_ties(simulate_with_truth(events, seed, config)):
        topic = event["topic"]
        if topic == input_topic:
            if task == "fraud":
                item = transaction_from_dict(event)
                entity, snapshot_of = item.customer_id, fraud_snapshot
                truth[item.event_id] = scenario is not None
            else:
                item = web_event_from_dict(event)
                entity = item.visitor_id
            state = states.get(entity)
            if state is None:
                state = states[entity] = features.state_type()
            features.update(state, item, LATENESS_MS)
            x = features.compute(state, item)
            if task == "fraud":
                terminals.add_transaction(item.event_id, item.terminal_id, item.ts_ms)
                x.update(terminals.features(item.terminal_id, item.ts_ms))
            scores = models.score_one(x)
            for name, shadow in shadows.items():
                scores[name] = shadow.predict_proba_one(x).get(True, 0.0)
            scored += 1
            if task == "fraud":
                snapshot = snapshot_of(item.event_id, item.ts_ms, x, scores)
                anomaly_scores.append(scores[ANOMALY])
            else:
                snapshot = lead_snapshot(item.visitor_id, item.session_id, item.event_id, item.ts_ms, x,
                                         scores)
            entity_of[snapshot.example_id] = entity
            join.record(snapshot)
            last_ts = item.ts_ms
            learn(join.advance(item.ts_ms))
        elif topic == label_topic:
            ts = parse_ts(event["ts"])
            if task == "fraud" and event["is_fraud"]:
                terminals.add_fraud_label(event["event_id"], ts)
            label = (fraud_label(event["event_id"], ts, event["is_fraud"]) if task == "fraud"
                     else conversion(event["visitor_id"], ts))
            learn(join.apply_label(label).examples)
    online_seconds = time.perf_counter() - started
    described = models.describe()  # what ``scorestream models`` would show now
    learn(join.advance(last_ts + 10 * horizon))  # the rest: labels can no longer come
    return {"models": models, "names": [*models.names, *shadows], "examples": examples,
            "entity_of": entity_of, "truth": truth,
            "last_ts": last_ts, "scored": scored, "seconds": online_seconds, "counts": join.counts,
            "anomaly_scores": anomaly_scores, "horizon": horizon, "describe": described}


def precision_at_k_per_day(ts: np.ndarray, entity: np.ndarray, y: np.ndarray, score: np.ndarray,
                           k: int = 100) -> float:
    """Mean over days of the share of positive entities among the day's ``k`` highest-scored ones."""
    days = ts // DAY_MS
    values = []
    for day in np.unique(days):
        best: dict[str, tuple[float, bool]] = {}
        for i in np.flatnonzero(days == day):
            s, positive = best.get(entity[i], (-1.0, False))
            best[entity[i]] = (max(s, score[i]), positive or bool(y[i]))
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:k]
        values.append(sum(positive for _, (_, positive) in ranked) / k)
    return float(np.mean(values))


def batch_models(seed: int) -> dict[str, Any]:
    return {
        "batch LR": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "batch RF": RandomForestClassifier(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed),
    }


def metric_rows(index: np.ndarray, scores: dict[str, np.ndarray], event_ts: np.ndarray, entity: np.ndarray,
                y: np.ndarray) -> list[dict[str, Any]]:
    """ROC AUC, AP and P@100/day of each model's scores on the examples ``index``."""
    return [{"model": name, "roc_auc": roc_auc_score(y[index], s), "ap": average_precision_score(y[index], s),
             "p_at_100": precision_at_k_per_day(event_ts[index], entity[index], y[index], s)}
            for name, s in scores.items()]


def compare_champion(champion: str, index: np.ndarray, scores: dict[str, np.ndarray], event_ts: np.ndarray,
                     entity: np.ndarray, y: np.ndarray, rows: list[dict[str, Any]], resamples: int,
                     seed: int) -> dict[str, Any]:
    """The champion against every other model on the examples ``index``: paired cluster bootstrap.

    Checks that the bootstrap's metrics on the sample itself are the ones in ``rows``.
    """
    began = time.perf_counter()
    ordered = {name: scores[name] for name in (champion, *REQUIRED_BASELINES, *scores) if name in scores}
    found = paired_comparisons(ordered, champion, y[index], entity[index], event_ts[index] // DAY_MS,
                               resamples, seed)
    for row in rows:
        for metric in METRICS:
            if not np.isclose(found.observed[row["model"]][metric], row[metric], rtol=0, atol=1e-9):
                raise AssertionError(f"bootstrap {metric} of {row['model']} on the sample: "
                                     f"{found.observed[row['model']][metric]} != {row[metric]}")
    return {"champion": champion, "resamples": resamples, "seed": seed, "rule": VERDICT_RULE,
            "entities": found.entities, "positive_entities": found.positive_entities,
            "undefined_resamples": found.undefined,
            "rows": [asdict(comparison) for comparison in found.comparisons],
            "seconds": time.perf_counter() - began}


def evaluate(task: str, run: dict[str, Any], weeks: int, seed: int, resamples: int = 2000,
             bootstrap_seed: int = 0) -> dict[str, Any]:
    """Metrics per model on each of the last ``weeks`` complete weeks (and pooled), batch retrained weekly.

    On the final week and the pooled weeks, the champion is also compared with every
    other model by a paired cluster bootstrap (``bench.paired_bootstrap``).
    """
    champion = run["models"].champion
    examples: list[TrainingExample] = run["examples"]
    event_ts = np.array([e.event_ts_ms for e in examples])
    label_ts = np.array([e.label_ts_ms for e in examples])
    y = np.array([e.label for e in examples])
    entity = np.array([run["entity_of"][e.example_id] for e in examples])
    # the last week whose examples all have their label by the end of the stream, at day boundaries
    end = (run["last_ts"] - run["horizon"]) // DAY_MS * DAY_MS
    vectorizer = DictVectorizer(sparse=False)
    vectorizer.fit([e.features for e in examples])
    results, pooled_index, pooled_scores = [], [], defaultdict(list)
    for w in range(weeks, 0, -1):
        start_ms, end_ms = end - w * WEEK_MS, end - (w - 1) * WEEK_MS
        test = np.flatnonzero((event_ts >= start_ms) & (event_ts < end_ms))
        train = np.flatnonzero(label_ts <= start_ms)  # known when the week starts: the same delay
        if len(test) == 0 or len(np.unique(y[train])) < 2:  # a batch model needs both labels
            raise SystemExit(f"{task}: too few events for {weeks} held-out week(s) after labelled "
                             f"history with both outcomes; raise --events or lower --weeks")
        scores: dict[str, np.ndarray] = {
            name: np.array([examples[i].scores.get(name, 0.0) for i in test]) for name in run["names"]
        }
        x_train = vectorizer.transform([examples[i].features for i in train])
        x_test = vectorizer.transform([examples[i].features for i in test])
        fit_seconds = {}
        for name, model in batch_models(seed).items():
            began = time.perf_counter()
            model.fit(x_train, y[train])
            fit_seconds[name] = time.perf_counter() - began
            scores[name] = model.predict_proba(x_test)[:, 1]
        pooled_index.append(test)
        for name, values in scores.items():
            pooled_scores[name].append(values)
        best = precision_at_k_per_day(event_ts[test], entity[test], y[test], y[test].astype(float))
        rows = metric_rows(test, scores, event_ts, entity, y)
        results.append({"title": f"held-out week {day(start_ms)} .. {day(end_ms)}", "n": len(test),
                        "positives": int(y[test].sum()), "best_p_at_100": best, "rows": rows,
                        "note": f"batch trained on {len(train)} examples ({int(y[train].sum())} positive), "
                                + ", ".join(f"{name} fit {sec:.0f} s" for name, sec in fit_seconds.items())})
        if w == 1:  # the final week
            results[-1]["comparisons"] = compare_champion(champion, test, scores, event_ts, entity, y, rows,
                                                          resamples, bootstrap_seed)
    if weeks > 1:
        index = np.concatenate(pooled_index)
        scores = {name: np.concatenate(values) for name, values in pooled_scores.items()}
        best = precision_at_k_per_day(event_ts[index], entity[index], y[index], y[index].astype(float))
        rows = metric_rows(index, scores, event_ts, entity, y)
        results.append({"title": f"the {weeks} held-out weeks pooled", "n": len(index),
                        "positives": int(y[index].sum()), "best_p_at_100": best, "rows": rows,
                        "note": "each week scored by the batch models trained at its start",
                        "comparisons": compare_champion(champion, index, scores, event_ts, entity, y, rows,
                                                        resamples, bootstrap_seed)})
    return {"weeks": results}


def day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date().isoformat()


def snapshot_figures(models: TaskModels) -> dict[str, float]:
    began = time.perf_counter()
    blob = dump(models, BENCH_KEY, version=1)
    dumped = time.perf_counter() - began
    chunks = split_chunks(blob)
    began = time.perf_counter()
    load(join_chunks(chunks), BENCH_KEY)
    loaded = time.perf_counter() - began
    return {"mb": len(blob) / 1e6, "chunks": len(chunks), "dump_s": dumped, "load_s": loaded}


def run_task(task: str, events: int, seed: int, delay_days: float, n_trees: int, weeks: int,
             resamples: int, bootstrap_seed: int, candidates: tuple[str, ...] = (),
             scale: float = 1.0) -> dict[str, Any]:
    run = run_online(task, events, seed, delay_days, n_trees, candidates, scale)
    out = evaluate(task, run, weeks, seed, resamples, bootstrap_seed)
    examples = run["examples"]
    out.update(task=task, scored=run["scored"], examples=len(examples), seconds=run["seconds"],
               positives=sum(e.label for e in examples), counts=dict(run["counts"]),
               causes=dict(Counter((e.cause, e.label) for e in examples)),
               champion=run["models"].champion, snapshot=snapshot_figures(run["models"]),
               describe=run["describe"])
    if task == "fraud":
        known = [e for e in examples if e.label_ts_ms <= run["last_ts"]]  # not the final flush
        out["label_disagreements"] = (sum(run["truth"][e.example_id] != e.label for e in known), len(known))
        hst = np.array(run["anomaly_scores"])
        out["hst_quantiles"] = {q: float(np.quantile(hst, q)) for q in (0.5, 0.9, 0.99, 0.995, 0.999)}
        threshold = run["models"].anomaly_threshold
        out["hst_alerts"] = (threshold, float(np.mean(hst >= threshold)))
    return out


def print_report(result: dict[str, Any]) -> None:
    task = result["task"]
    print(f"\n=== {task}: {result['scored']} events scored, {result['examples']} training examples "
          f"({result['positives']} positive), online loop {result['seconds']:.0f} s")
    print(f"label join: {dict(sorted(result['counts'].items()))}")
    print(f"examples by (cause, label): {result['causes']}")
    if "label_disagreements" in result:
        wrong, known = result["label_disagreements"]
        print(f"labels learned in the stream that disagree with the simulator's truth: {wrong} of {known}")
        quantiles = ", ".join(f"q{q}={v:.4f}" for q, v in result["hst_quantiles"].items())
        threshold, rate = result["hst_alerts"]
        print(f"anomaly (hst) score quantiles: {quantiles}; at threshold {threshold}: {rate:.2%} alerts")
    snap = result["snapshot"]
    print(f"signed snapshot of all {task} models: {snap['mb']:.1f} MB, {snap['chunks']} chunks of <= 900 kB, "
          f"dump {snap['dump_s']:.1f} s, verify+load {snap['load_s']:.1f} s")
    entities = "cards" if task == "fraud" else "visitors"
    for week in result["weeks"]:
        print(f"\n{task}, {week['title']}: {week['n']} examples, {week['positives']} positive; "
              f"{week['note']}")
        print(f"{'model':<14}{'ROC AUC':>9}{'AP':>9}{'P@100/day':>11}   ({entities})")
        for row in week["rows"]:
            mark = " *" if row["model"] == result["champion"] else ""
            print(f"{row['model'] + mark:<14}{row['roc_auc']:>9.4f}{row['ap']:>9.4f}{row['p_at_100']:>11.4f}")
        print(f"{'(best possible)':<32}{week['best_p_at_100']:>11.4f}")
        if "comparisons" in week:
            print_comparisons(week["comparisons"], entities)
    print(f"\nscorestream models ({task}, at the end of the stream; metrics over the last 10 000 examples):")
    print(format_table(result["describe"]))


def print_comparisons(comparisons: dict[str, Any], entities: str) -> None:
    """The verdict table: champion minus each model, per metric, with its paired bootstrap interval."""
    undefined = (f", {comparisons['undefined_resamples']} without a positive or a negative left out of "
                 "ROC AUC and AP" if comparisons["undefined_resamples"] else "")
    print(f"{comparisons['champion']} minus each model: difference [95 % CI], paired bootstrap over the "
          f"{comparisons['entities']} {entities} ({comparisons['positive_entities']} with a positive; "
          f"{comparisons['resamples']} resamples, seed {comparisons['seed']}{undefined}; "
          f"{comparisons['seconds']:.0f} s)")
    print(f"  {comparisons['rule']}")
    cells: dict[str, list[str]] = defaultdict(list)
    for row in comparisons["rows"]:
        cells[row["baseline"]].append(f"{row['difference']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}] "
                                      f"{row['verdict']:<7}")
    width = len(next(iter(cells.values()))[0]) if cells else 0
    print(f"{'vs':<11}" + "  ".join(f"{METRIC_TITLES[metric]:<{width}}" for metric in METRICS).rstrip())
    for baseline, texts in cells.items():
        print(f"{baseline:<11}" + "  ".join(texts).rstrip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-delay-days", type=float, default=7.0)
    parser.add_argument("--trees", type=int, default=10, help="trees of the online ARF")
    parser.add_argument("--weeks", type=int, default=3, help="held-out weeks (the final one last) and pooled")
    parser.add_argument("--tasks", default="fraud,lead")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--candidates", default="",
                        help="comma-separated bench.candidates to score in shadow too ('all': every one)")
    parser.add_argument("--resamples", type=int, default=2000,
                        help="paired bootstrap resamples of the champion's comparisons")
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="times as many visitors, cards, terminals and events per day as the "
                             "simulator's defaults (5: about the Fraud Detection Handbook's 5 000 cards "
                             "and 10 000 transactions a day); give --events times as many for the same days")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",")
    wanted = args.candidates.split(",") if args.candidates else []
    began, commit = time.perf_counter(), commit_id()  # what is measured: the code as the run starts
    jobs = (args.events, args.seed, args.label_delay_days, args.trees, args.weeks, args.resamples,
            args.bootstrap_seed)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {task: pool.submit(run_task, task, *jobs, tuple(
            name for name in CANDIDATES[task] if "all" in wanted or name in wanted), args.scale)
            for task in tasks}
        results = {task: future.result() for task, future in futures.items()}
    command = " ".join(["python -m bench.quality", *(argv if argv is not None else sys.argv[1:])])
    print(f"commit {commit}: {command}")
    config = simulator_config(args.label_delay_days, args.scale)
    print(f"{args.events} simulated events ({config.input_events_per_day:g} a day; {config.customers} cards, "
          f"{config.terminals} terminals, {config.visitors} concurrent visitors), seed {args.seed}, "
          f"fraud labels {args.label_delay_days:g} days late, ARF of {args.trees} trees; "
          "'*' marks the champion")
    for task in tasks:
        print_report(results[task])
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    if args.json:
        figures = {task: {key: results[task][key] for key in FIGURES} for task in tasks}
        with open(args.json, "w") as out:
            json.dump({"commit": commit, "command": command, "args": vars(args), "tasks": figures},
                      out, indent=1)


#: What ``--json`` keeps of each task's result.
FIGURES = ("scored", "examples", "positives", "seconds", "champion", "counts", "weeks")


def commit_id() -> str:
    """The checked-out commit, ``+dirty`` when tracked code it measures has uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "bench", "features",
                            "online_models"],
                           cwd=repo, capture_output=True, text=True)
    return (head.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
