"""Do a contender's guarantees hold? Crash recovery, at-least-once, state moving on rebalance.

    python -m bench.guarantees --contenders engine,engine+standby

Each check runs real worker processes on the benchmark broker and compares what they produced with
a reference: the pure core run in-process over the same events in the order the broker holds them
(features depend only on each entity's event order, so the reference is exact for them).

1. ``recovery``: a worker scores backlog A, commits, is killed with SIGKILL; a new worker (same app
   id) must recover the tables from their changelogs: every score of backlog B must carry exactly
   the reference features (a lost state would restart the windows at zero).
2. ``at_least_once``: a worker is killed with SIGKILL in the middle of a backlog; a new worker
   finishes it: every event must have at least one score (duplicates allowed and counted).
3. ``rebalance``: a worker scores backlog A and commits; a second worker joins (partitions and their
   state move to it); backlog B is then scored by both: every score of B must carry the reference
   features, and both workers must have produced some.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson

from bench.common import (
    SCORE_TOPICS,
    WORKER_INPUTS,
    Event,
    bench_settings,
    delete_prefixed,
    end_offsets,
    group_stable,
    load,
    make_events,
    make_scorer,
    read_since,
    recreate_topics,
    stop_cleanly_on_sigterm,
    wait_for_count,
    wait_quiet,
)
from bench.engine import WorkerProcess, _run_settings, free_port
from bench.hotpath import CONTENDERS, RESULTS
from stream import topics
from stream.pipeline import TASKS, InputRecord
from stream.settings import Settings

COMMIT_WAIT_S = 5.0  # > Faust's default commit interval (2.8 s)


def reference(events: list[Event], settings: Settings) -> dict[str, dict]:
    """event_id → features, from the pure core over ``events`` in order."""
    scorers = {t.input_topic: make_scorer(t, settings) for t in TASKS.values()}
    stores: dict[str, dict[bytes, bytes]] = collections.defaultdict(dict)
    offsets: collections.Counter = collections.Counter()
    out = {}
    for e in events:
        record = InputRecord(e.value, e.key, e.partition, offsets[(e.topic, e.partition)])
        offsets[(e.topic, e.partition)] += 1
        store = stores[e.topic]
        result = scorers[e.topic].score_batch([record], store.get)
        for key, (_, value) in result.state_writes.items():
            store[key] = value
        for o in result.outputs:
            if o.topic in SCORE_TOPICS:
                body = orjson.loads(o.value)
                out[body["event_id"]] = body["features"]
    return out


def broker_order(settings: Settings, events: list[Event]) -> list[Event]:
    """``events`` in the order the broker holds them (per partition, by offset)."""
    by_id = {e.event_id: e for e in events}
    names = topics.INPUT_TOPICS
    upto = asyncio.run(end_offsets(settings, names))
    records = asyncio.run(read_since(settings, {tp: 0 for tp in upto}, upto))
    ordered = [by_id[orjson.loads(value)["event_id"]] for _, _, value in records]
    return ordered


def _scores(settings: Settings, base: dict) -> list[dict]:
    upto = asyncio.run(end_offsets(settings, SCORE_TOPICS))
    return [orjson.loads(v) for _, _, v in asyncio.run(read_since(settings, base, upto))]


def _compare(scores: list[dict], wanted: dict[str, dict], ids: set[str]) -> dict[str, object]:
    """Judge each event's *first* score (output order); replays may carry later features."""
    got = collections.defaultdict(list)
    for body in scores:
        if body["event_id"] in ids:
            got[body["event_id"]].append(body["features"])
    missing = ids - set(got)
    wrong = [e for e, feats in got.items() if feats[0] != wanted[e]]
    dupes = sum(len(v) - 1 for v in got.values())
    replays_differ = sum(any(f != wanted[e] for f in feats[1:]) for e, feats in got.items())
    example = None
    if wrong:
        e = wrong[0]
        example = {"event_id": e, "got": got[e][0], "reference": wanted[e]}
    return {"events": len(ids), "missing": len(missing), "wrong_features": len(wrong),
            "duplicates": dupes, "duplicates_with_other_features": replays_differ,
            "example": example}


def _start(cmd: tuple[str, ...], settings: Settings, name: str, env: dict[str, str]) -> WorkerProcess:
    worker = WorkerProcess(cmd, settings, name, env)
    worker.wait_ready()
    return worker


def check_recovery(cmd: tuple, env: dict, base: Settings, a: list[Event], b: list[Event]) -> dict:
    settings = _run_settings(base, "recovery")
    asyncio.run(recreate_topics(settings, WORKER_INPUTS))
    try:
        first = _start(cmd, settings, "first", env)
        asyncio.run(group_stable(settings, settings.app_id, 1))
        start = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        asyncio.run(load(settings, a))
        asyncio.run(wait_for_count(settings, SCORE_TOPICS, start, len(a), timeout=120))
        time.sleep(COMMIT_WAIT_S)
        first.stop(signal.SIGKILL)
        mid = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        second = _start(cmd, replace(settings, web_port=free_port()), "second", env)
        asyncio.run(group_stable(settings, settings.app_id, 1))
        asyncio.run(load(settings, b))
        asyncio.run(wait_quiet(settings, SCORE_TOPICS, mid, len(b), timeout=120))
        second.stop()
        wanted = reference(broker_order(settings, a + b), settings)
        return _compare(_scores(settings, mid), wanted, {e.event_id for e in b})
    finally:
        asyncio.run(delete_prefixed(settings, settings.app_id))


def check_at_least_once(cmd: tuple, env: dict, base: Settings, events: list[Event]) -> dict:
    settings = _run_settings(base, "alo")
    asyncio.run(recreate_topics(settings, WORKER_INPUTS))
    try:
        first = _start(cmd, settings, "first", env)
        asyncio.run(group_stable(settings, settings.app_id, 1))
        start = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        asyncio.run(load(settings, events))
        seen_at_kill = asyncio.run(wait_for_count(settings, SCORE_TOPICS, start, len(events) // 3,
                                                  timeout=120))
        first.stop(signal.SIGKILL)
        second = _start(cmd, replace(settings, web_port=free_port()), "second", env)
        asyncio.run(wait_quiet(settings, SCORE_TOPICS, start, len(events), timeout=180))
        second.stop()
        scores = _scores(settings, start)
        ids = {e.event_id for e in events}
        got = collections.Counter(s["event_id"] for s in scores)
        return {"events": len(ids), "scored_before_kill": seen_at_kill,
                "missing": len(ids - set(got)), "duplicates": sum(n - 1 for n in got.values())}
    finally:
        asyncio.run(delete_prefixed(settings, settings.app_id))


def check_rebalance(cmd: tuple, env: dict, base: Settings, a: list[Event], b: list[Event]) -> dict:
    settings = _run_settings(base, "rebalance")
    asyncio.run(recreate_topics(settings, WORKER_INPUTS))
    workers = []
    try:
        workers.append(_start(cmd, settings, "first", env))
        asyncio.run(group_stable(settings, settings.app_id, 1))
        start = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        asyncio.run(load(settings, a))
        asyncio.run(wait_for_count(settings, SCORE_TOPICS, start, len(a), timeout=120))
        time.sleep(COMMIT_WAIT_S)
        mid = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        workers.append(_start(cmd, replace(settings, web_port=free_port()), "second", env))
        stable = asyncio.run(group_stable(settings, settings.app_id, 2, timeout=90))
        time.sleep(3)  # standby → active recovery on the new member
        asyncio.run(load(settings, b))
        asyncio.run(wait_quiet(settings, SCORE_TOPICS, mid, len(b), timeout=120))
        produced = [_produced(w) for w in workers]
        for w in workers:
            w.stop()
        wanted = reference(broker_order(settings, a + b), settings)
        result = _compare(_scores(settings, mid), wanted, {e.event_id for e in b})
        result.update(group_stable_with_two=stable, outputs_per_worker=produced)
        return result
    finally:
        for w in workers:
            w.stop()
        asyncio.run(delete_prefixed(settings, settings.app_id))


def _produced(worker: WorkerProcess) -> float:
    import urllib.request

    url = f"http://127.0.0.1:{worker.settings.web_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return float("nan")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("scorestream_outputs_produced_total{"))


def main(argv: list[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.guarantees", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contenders", default="engine")
    parser.add_argument("--events", type=int, default=12_000, help="per backlog (A and B)")
    parser.add_argument("--checks", default="recovery,at_least_once,rebalance")
    parser.add_argument("--out", default=str(RESULTS / "guarantees.json"))
    args = parser.parse_args(argv)
    base = bench_settings()
    events = make_events(2 * args.events, seed=5, partitions=base.partitions)
    a, b = events[:args.events], events[args.events:]
    report = {}
    for name in [n.strip() for n in args.contenders.split(",") if n.strip()]:
        cmd, env = CONTENDERS[name]
        checks = {
            "recovery": lambda cmd=cmd, env=env: check_recovery(cmd, env, base, a, b),
            "at_least_once": lambda cmd=cmd, env=env: check_at_least_once(cmd, env, base, events),
            "rebalance": lambda cmd=cmd, env=env: check_rebalance(cmd, env, base, a, b),
        }
        report[name] = {check: checks[check]() for check in args.checks.split(",")}
        print(name, json.dumps(report[name], indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
