"""The hot-path benchmark: ceiling, transport, peer, engine (1 and 2 workers, latency), components.

    python -m bench.hotpath                 # ≈ 8–10 min on a 2-core machine
    python -m bench.hotpath --reps 1        # a quick look
    python -m bench.hotpath --profile       # py-spy on one worker per contender, on a backlog

It needs the benchmark's own broker (never a developer's or the tests')::

    export SCORESTREAM_KAFKA_BOOTSTRAP=127.0.0.1:39092 SCORESTREAM_KAFKA_CONTROLLER_PORT=39093 \\
           SCORESTREAM_HOME=.scorestream/bench
    scorestream kafka start && scorestream topics create
    python -m bench.hotpath
    scorestream kafka stop

Every figure is the median of ``--reps`` repetitions with its min–max; repetitions of all
contenders are interleaved so that a neighbour's load hits them alike. It prints a table and the
ratios, and writes them with the machine, library versions and git commit to
``bench/results/hotpath.json``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import cores
from bench.ceiling import run_ceiling, run_components
from bench.common import (
    HOTPATH_SIMULATOR,
    REPO,
    bench_settings,
    inputs_only,
    load,
    make_events,
    recreate_topics,
    stop_cleanly_on_sigterm,
    summary,
)
from bench.engine import ENGINE_CMD, EngineRun, run_engine, run_floor, run_peer
from bench.river_loop import run_river_loop, truth
from bench.transport import run_transport
from stream import kafka_local, topics
from stream.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
KNOBS = (sys.executable, "-m", "bench.prototypes.engine_knobs", "worker")

#: name → (command, extra environment). "engine" is the worker as shipped (challengers in
#: ``scorestream challengers``, run beside it); "+lr-champions" is the issue's target configuration
#: (logistic regression publishes both tasks' scores); "+inline" every worker scoring and learning
#: every model; "+trainer" workers only scoring, ``scorestream trainer`` (run beside them) joining
#: labels and learning the champion and ``hst``, ``scorestream challengers`` the rest; the knobs
#: change one Faust or Python setting (``bench/prototypes/engine_knobs.py``).
#: The ceiling and the peer of a contender score the models its worker holds, as configured.
CONTENDERS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "engine": (ENGINE_CMD, {}),
    "engine+lr-champions": (ENGINE_CMD, {"SCORESTREAM_FRAUD_CHAMPION": "logreg"}),
    "engine+inline": (ENGINE_CMD, {"SCORESTREAM_CHALLENGERS": "inline"}),
    "engine+trainer": (ENGINE_CMD, {"SCORESTREAM_LEARNING": "trainer"}),
    "engine+trainer+lr-champions": (ENGINE_CMD, {"SCORESTREAM_LEARNING": "trainer",
                                                 "SCORESTREAM_FRAUD_CHAMPION": "logreg"}),
    # the same without ``scorestream challengers``: the challengers off (they only ever shadow)
    "engine+trainer+lr-champions+no-challengers": (ENGINE_CMD, {"SCORESTREAM_LEARNING": "trainer",
                                                                "SCORESTREAM_FRAUD_CHAMPION": "logreg",
                                                                "BENCH_NO_CHALLENGERS": "1"}),
    "engine+uvloop": (KNOBS, {"BENCH_LOOP": "uvloop"}),
    "engine+standby": (KNOBS, {"BENCH_STANDBY_REPLICAS": "1"}),
    "engine+poll100": (KNOBS, {"BENCH_MAX_POLL_RECORDS": "100"}),
    "engine+switch": (KNOBS, {"BENCH_SWITCH_INTERVAL": "0.0005"}),
}
DEFAULT_CONTENDERS = ("engine", "engine+lr-champions", "engine+inline", "engine+trainer",
                      "engine+trainer+lr-champions")
#: Seed of the benchmark's simulated stream.
SEED = 3
#: engine/river: with ARF as champion, within 15 % of River's own loop (``bench/river_loop.py``)
TARGETS = {"engine/ceiling": 0.5, "engine/peer": 1.0, "p99_ms": 25.0, "speedup_2w": 1.8, "engine/river": 0.85}


def machine() -> dict[str, object]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    commit_id = os.environ.get("BENCH_GIT_COMMIT") or commit.stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "stream", "features", "online_models"],
                           cwd=REPO, capture_output=True, text=True)
    return {
        "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "libraries": {n: version(n) for n in ("faust-streaming", "aiokafka", "river", "orjson",
                                              "quixstreams", "confluent-kafka", "uvloop",
                                              "prometheus-client", "mode-streaming")},
        "git_commit": commit_id,
        "engine_code_modified": bool(dirty.stdout.strip()),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000, help="backlog per run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--paced-seconds", type=float, default=4.0)
    parser.add_argument("--fixed-rate", type=float, default=2000.0,
                        help="also measure latency at this rate, the same for every contender (0: no)")
    parser.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                        help=f"comma-separated, from {', '.join(CONTENDERS)}")
    parser.add_argument("--no-scale", action="store_true", help="skip the 2-worker runs")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the pass-through latency at each contender's paced rate")
    parser.add_argument("--profile", action="store_true", help="py-spy each contender instead")
    parser.add_argument("--pin", action="store_true",
                        help="per-core figures: the ceiling, River's loop, the peer and the one worker each "
                             "on a core of its own, the broker, the driver, trainer and challengers on the "
                             "others (bench/cores.py)")
    parser.add_argument("--out", default=str(RESULTS / "hotpath.json"))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders: {unknown}")
    settings = bench_settings()
    partitions = settings.partitions
    started = time.monotonic()
    # the engine's backlog holds the labels too (within its 15-minute horizons); the rest read inputs
    backlog = make_events(args.events, seed=SEED, partitions=partitions, labels=True,
                          config=HOTPATH_SIMULATOR)
    inputs = inputs_only(backlog)
    labels = truth(inputs, SEED, HOTPATH_SIMULATOR)
    # the paced events continue the backlog's stream, labels included
    pool = make_events(args.events + 200_000, seed=SEED, partitions=partitions, labels=True,
                       config=HOTPATH_SIMULATOR)[len(backlog):]
    if args.profile:
        return profile(names, settings, backlog)

    info = machine()
    info["pinned"] = None
    if args.pin:
        cores.enable(kafka_local.status(settings).pid)
        info["pinned"] = {"measured": sorted(cores.MEASURED), "others": sorted(cores.others())}
    print(f"machine: {info['cores']} cores, Python {info['python']}, "
          + ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
          + f"; commit {info['git_commit'][:10]}"
          + (" (engine code modified in the work tree)" if info["engine_code_modified"] else "")
          + f"; load average {info['load_average'][0]:.2f}"
          + (f"; pinned: measured process on cores {info['pinned']['measured']}, broker, driver, trainer "
             f"and challengers on {info['pinned']['others']}" if info["pinned"] else ""), flush=True)
    mix = collections.Counter(e.topic for e in backlog)
    print(f"backlog {len(inputs)} input events and their labels ({dict(mix)}), batch {settings.batch_size}, "
          f"{partitions} partitions, {args.reps} repetitions", flush=True)

    raw: dict[str, list] = collections.defaultdict(list)
    for rep in range(args.reps):
        print(f"-- repetition {rep + 1}/{args.reps}", flush=True)
        asyncio.run(recreate_topics(settings, topics.INPUT_TOPICS))
        asyncio.run(load(settings, inputs))
        raw["transport"].append(asyncio.run(run_transport(settings, len(inputs))))
        _note("transport", raw["transport"][-1])
        for name in names:
            cmd, env = CONTENDERS[name]
            with cores.running_on(cores.measured()):
                raw[f"{name}/ceiling"].append(run_ceiling(inputs, bench_settings(env)))
            _note(f"{name}: ceiling", raw[f"{name}/ceiling"][-1])
            with cores.running_on(cores.measured()):
                raw[f"{name}/river"].append(run_river_loop(inputs, bench_settings(env), labels))
            _note(f"{name}: River's own loop", raw[f"{name}/river"][-1])
            # loaded for the transport; an engine run since has emptied the input topics
            raw[f"{name}/peer"].append(run_peer(settings, inputs, preloaded=name == names[0],
                                                extra_env=env).__dict__)
            _note(f"{name}: peer (Quix Streams)", raw[f"{name}/peer"][-1])
            run = run_engine(cmd, settings, backlog, workers=1, paced_pool=pool,
                             paced_seconds=args.paced_seconds, extra_env=env, tag=_tag(name),
                             fixed_rate=args.fixed_rate or None)
            raw[f"{name}/1w"].append(run.__dict__)
            _note(f"{name} 1 worker", run)
            if run.paced_rate and not args.no_floor:
                floor = run_floor(settings, pool, run.paced_rate, args.paced_seconds)
                raw[f"{name}/floor"].append(floor)
                print(f"   {'  floor: pass-through, same rate':<34} p50 {floor['p50']:.1f} "
                      f"p95 {floor['p95']:.1f} p99 {floor['p99']:.1f} ms", flush=True)
            if not args.no_scale:
                run2 = run_engine(cmd, settings, backlog, workers=2, extra_env=env, tag=_tag(name))
                raw[f"{name}/2w"].append(run2.__dict__)
                _note(f"{name} 2 workers", run2)
    for name in names:
        with cores.running_on(cores.measured()):
            raw[f"{name}/components"].append(run_components(inputs, bench_settings(CONTENDERS[name][1])))

    report = build_report(raw, names, not args.no_scale)
    report["machine"] = info
    report["config"] = {"events": len(inputs), "mix": dict(mix), "batch_size": settings.batch_size,
                        "partitions": partitions, "reps": args.reps, "paced_seconds": args.paced_seconds,
                        "contenders": {n: {"cmd": " ".join(Path(c).name if i == 0 else c
                                                           for i, c in enumerate(CONTENDERS[n][0])),
                                           "env": CONTENDERS[n][1]} for n in names}}
    report["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["seconds"] = round(time.monotonic() - started, 1)
    report["load_average_end"] = os.getloadavg()
    print_report(report, names)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"\nwritten to {out.relative_to(REPO) if out.is_relative_to(REPO) else out} "
          f"in {report['seconds']:.0f} s")
    return 0


def _tag(name: str) -> str:
    return name.replace("+", "-").replace("_", "-")


def _note(label: str, result: dict | EngineRun) -> None:
    data = result if isinstance(result, dict) else result.__dict__
    extra = f"  {data['cpu_us_per_event']:7.1f} µs CPU/event" if _number(data.get("cpu_us_per_event")) else ""
    for key, rate in (("latency_ms", "paced_rate"), ("latency_fixed_ms", "fixed_rate")):
        lat = data.get(key)
        if lat:
            extra += (f"; at {data[rate]:,.0f}/s p50 {lat['p50']:.1f} p95 {lat['p95']:.1f} "
                      f"p99 {lat['p99']:.1f} ms")
            if lat.get("p99_by_topic"):
                by_topic = lat["p99_by_topic"].items()
                extra += " (p99 " + ", ".join(f"{topic} {ms:.1f}" for topic, ms in by_topic)
                if _number(lat.get("in_worker_p99")):
                    extra += ("; in the worker, fetched → outputs and state acknowledged, "
                              f"{lat['in_worker_p99']:.1f}")
                extra += ")"
    if _number(data.get("scoring_only_per_s")):
        extra += (f"; scoring alone {data['scoring_only_per_s']:,.0f}/s, "
                  f"{data['examples']:,} examples learned")
    if data.get("waited_s") and _number(data.get("scoring_span_s")):
        extra += f"; of {data['scoring_span_s']:.1f} s worker 0 waited " + ", ".join(
            f"{seconds:.1f} s for {cause}" for cause, seconds in data["waited_s"].items())
    print(f"   {label:<34} {data['events_per_s']:>10,.0f} events/s{extra}", flush=True)


def build_report(raw: dict[str, list], names: list[str], scale: bool) -> dict[str, object]:
    measured = {key: runs for key, runs in raw.items() if not key.endswith(("/components", "/floor"))}
    rates = {key: summary([r["events_per_s"] for r in runs]) for key, runs in measured.items()}
    report: dict[str, object] = {"events_per_s": rates}
    cpu = {key: _summary([r["cpu_us_per_event"] for r in runs if _number(r.get("cpu_us_per_event"))])
           for key, runs in measured.items()}
    report["cpu_us_per_event"] = cpu
    contenders = {}
    for name in names:
        one = raw[f"{name}/1w"]
        paced = [r for r in one if r.get("latency_ms")]
        entry: dict[str, object] = {
            "latency_ms": {q: _summary([r["latency_ms"][q] for r in paced]) for q in ("p50", "p95", "p99")},
            "paced_rate": _summary([r["paced_rate"] for r in paced]),
            "latency_fixed_ms": {q: _summary([r["latency_fixed_ms"][q] for r in one
                                              if r.get("latency_fixed_ms")])
                                 for q in ("p50", "p95", "p99")},
            "fixed_rate": next((r["fixed_rate"] for r in one if r.get("fixed_rate")), None),
            "floor_latency_ms": {q: _summary([r[q] for r in raw.get(f"{name}/floor", [])])
                                 for q in ("p50", "p95", "p99")},
            "incomplete_runs": sum(not r.get("complete", True)
                                   for key in (f"{name}/1w", f"{name}/2w") for r in raw.get(key, [])),
            "challengers_lag_s": _summary([r["challengers_lag_s"] for r in one
                                           if _number(r.get("challengers_lag_s"))]),
            "challengers_cpu_us_per_event": _summary([r["challengers_cpu_us_per_event"] for r in one
                                                      if _number(r.get("challengers_cpu_us_per_event"))]),
            "trainer_lag_s": _summary([r["trainer_lag_s"] for r in one if _number(r.get("trainer_lag_s"))]),
            "trainer_cpu_us_per_event": _summary([r["trainer_cpu_us_per_event"] for r in one
                                                  if _number(r.get("trainer_cpu_us_per_event"))]),
            "components_us_per_event": raw[f"{name}/components"][0],
        }
        ratios = {}
        baselines = {"ceiling": f"{name}/ceiling", "transport": "transport", "peer": f"{name}/peer",
                     "river": f"{name}/river"}
        for peer, key in baselines.items():
            per_rep = [e["events_per_s"] / p["events_per_s"] for e, p in zip(one, raw[key], strict=False)]
            ratios[f"engine/{peer}"] = {**summary(per_rep),
                                        "of_medians": rates[f"{name}/1w"]["median"] / rates[key]["median"]}
        if scale:
            two = raw[f"{name}/2w"]
            per_rep = [b["events_per_s"] / a["events_per_s"] for a, b in zip(one, two, strict=False)]
            of_medians = rates[f"{name}/2w"]["median"] / rates[f"{name}/1w"]["median"]
            ratios["speedup_2w"] = {**summary(per_rep), "of_medians": of_medians}
        entry["ratios"] = ratios
        # the same comparisons in CPU per event (steadier when the machine is shared): the
        # contender's share of the ceiling's throughput it would reach on a core of its own
        entry["cpu_ratios"] = {
            f"engine/{peer}": cpu[key]["median"] / cpu[f"{name}/1w"]["median"]
            for peer, key in baselines.items()}
        if scale:
            # 2 workers' CPU per event over one's: 1.0 means no extra cost for coordination
            entry["cpu_ratios"]["cpu_2w/cpu_1w"] = cpu[f"{name}/2w"]["median"] / cpu[f"{name}/1w"]["median"]
        checks = {"engine/ceiling": ratios["engine/ceiling"]["of_medians"] >= TARGETS["engine/ceiling"],
                  "engine/peer": ratios["engine/peer"]["of_medians"] >= TARGETS["engine/peer"],
                  "p99_ms": entry["latency_ms"]["p99"]["median"] <= TARGETS["p99_ms"]}
        if Settings.from_env(CONTENDERS[name][1]).champion("fraud") == "arf":
            checks["engine/river"] = ratios["engine/river"]["of_medians"] >= TARGETS["engine/river"]
        if scale:
            checks["speedup_2w"] = ratios["speedup_2w"]["of_medians"] >= TARGETS["speedup_2w"]
        entry["meets_target"] = checks
        contenders[name] = entry
    report["contenders"] = contenders
    report["targets"] = TARGETS
    return report


def _number(value: object) -> bool:
    return isinstance(value, float | int) and value == value


def _summary(values: list[float]) -> dict[str, object]:
    nan = float("nan")
    return summary(values) if values else {"median": nan, "min": nan, "max": nan, "runs": []}


def _fmt(s: dict[str, float], unit: str = "", digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def print_report(report: dict, names: list[str]) -> None:
    rates = report["events_per_s"]
    cpu = report["cpu_us_per_event"]

    def row(what: str, key: str, note: str = "") -> None:
        c = cpu.get(key)
        cpu_cell = _fmt(c, digits=1) if c and c["runs"] else "-"
        print(f"| {what} | {_fmt(rates[key])} | {cpu_cell} | {note} |")

    print("\n| what | events/s: median (min–max) | CPU µs/event: median (min–max) | note |")
    print("|---|---|---|---|")
    row("transport: aiokafka getmany → send_batch", "transport", "nothing decoded")
    for name in names:
        entry = report["contenders"][name]
        lat, floor = entry["latency_ms"], entry["floor_latency_ms"]
        row(f"{name}: ceiling, pure batch core, no Kafka", f"{name}/ceiling",
            "one process, tight loop, the worker's models")
        row(f"{name}: peer, Quix Streams, same scoring", f"{name}/peer", "RocksDB state + changelog")
        row(f"{name}: River's own loop", f"{name}/river",
            "predict then learn every event, the worker's models, features precomputed")
        flag = f" ({entry['incomplete_runs']} run(s) incomplete)" if entry["incomplete_runs"] else ""
        row(f"{name}: 1 worker{flag}", f"{name}/1w",
            f"latency at {entry['paced_rate']['median']:,.0f}/s: p50 {_fmt(lat['p50'], digits=1)}, "
            f"p95 {_fmt(lat['p95'], digits=1)}, p99 {_fmt(lat['p99'], digits=1)} ms")
        fixed = entry["latency_fixed_ms"]
        if fixed["p50"]["runs"]:
            print(f"| {name}: 1 worker, fixed rate | | | latency at {entry['fixed_rate']:,.0f}/s: p50 "
                  f"{_fmt(fixed['p50'], digits=1)}, p95 {_fmt(fixed['p95'], digits=1)}, "
                  f"p99 {_fmt(fixed['p99'], digits=1)} ms |")
        if floor["p50"]["runs"]:
            print(f"| floor: aiokafka pass-through at the same rate | | | latency p50 "
                  f"{_fmt(floor['p50'], digits=1)}, p95 {_fmt(floor['p95'], digits=1)}, "
                  f"p99 {_fmt(floor['p99'], digits=1)} ms |")
        if f"{name}/2w" in rates:
            sp = entry["ratios"]["speedup_2w"]
            row(f"{name}: 2 workers", f"{name}/2w",
                f"speed-up {sp['of_medians']:.2f}× (per repetition {sp['min']:.2f}–{sp['max']:.2f}); "
                "CPU is both workers' per event")
        trainer = entry.get("trainer_lag_s")
        if trainer and trainer["runs"]:
            print(f"| {name}: `scorestream trainer` beside it | | "
                  f"{_fmt(entry['trainer_cpu_us_per_event'], digits=1)} | had learned every example "
                  f"{_fmt(trainer, ' s', digits=1)} after the last score (within the worker's events/s) |")
        shadow = entry["challengers_lag_s"]
        if shadow["runs"]:
            print(f"| {name}: `scorestream challengers` beside it | | "
                  f"{_fmt(entry['challengers_cpu_us_per_event'], digits=1)} | caught up "
                  f"{_fmt(shadow, ' s', digits=1)} after the worker had learned every example |")
    print("\n| contender | engine/ceiling | engine/transport | engine/peer | engine/river | 2 workers / 1 "
          "| p99 ms (half max; fixed rate) | targets met (events/s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        entry = report["contenders"][name]
        r, c = entry["ratios"], entry["cpu_ratios"]
        cells = [f"{r[k]['of_medians']:.3f} ({r[k]['min']:.3f}–{r[k]['max']:.3f}); CPU {c[k]:.3f}"
                 for k in ("engine/ceiling", "engine/transport", "engine/peer", "engine/river")]
        cells.append(f"{r['speedup_2w']['of_medians']:.2f}; CPU/event ×{c['cpu_2w/cpu_1w']:.2f}"
                     if "speedup_2w" in r else "-")
        cells.append(f"{entry['latency_ms']['p99']['median']:.1f}; "
                     f"{entry['latency_fixed_ms']['p99']['median']:.1f}")
        met = entry["meets_target"]
        cells.append(", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in met.items()))
        print(f"| {name} | " + " | ".join(cells) + " |")
    t = report["targets"]
    print(f"\nratios: events/s of medians (per-repetition min–max); 'CPU' = the other's CPU µs/event over "
          f"this one's.\ntargets: engine/ceiling ≥ {t['engine/ceiling']}, engine/peer ≥ {t['engine/peer']}, "
          f"p99 ≤ {t['p99_ms']} ms at half the measured maximum, 2 workers ≥ {t['speedup_2w']}× one, "
          f"with ARF as champion engine/river ≥ {t['engine/river']}")
    for name in names:
        comp = report["contenders"][name]["components_us_per_event"]
        print(f"\n{name}: per-component cost of the core, µs per event (both tasks, timing wrappers "
              "subtracted):")
        for part, us in comp.items():
            print(f"  {part:<22} {us:6.2f}")
        print(f"  {'sum':<22} {sum(v for v in comp.values() if v == v):6.2f}"
              f"  (the ceiling's CPU: {cpu[f'{name}/ceiling']['median']:.2f} µs/event, without metrics)")


# --- profiling ---------------------------------------------------------------------------------

def profile(names: list[str], settings: Settings, backlog: list) -> int:
    """One 1-worker backlog run per contender under ``py-spy record``; prints its top entries.

    Raw stacks go to the benchmark's home (``SCORESTREAM_HOME``), summaries to bench/results.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        cmd, env = CONTENDERS[name]
        raw_path = Path(settings.home) / f"profile-{_tag(name)}.raw"
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        run = run_engine(cmd, settings, backlog, workers=1, extra_env=env, tag=_tag(name),
                         profile=str(raw_path))
        text = (f"== {name}: {run.events_per_s:,.0f} events/s while profiled (py-spy at 200 Hz, "
                f"{run.cpu_us_per_event:.1f} µs CPU/event)\n{summarise_profile(raw_path)}\n")
        print("\n" + text)
        (RESULTS / f"profile-{_tag(name)}-summary.txt").write_text(text)
    return 0


#: Where a sample's time belongs: the first of these found walking from the leaf to the root.
CATEGORIES = (
    ("metrics (prometheus_client)", ("prometheus_client/", "_observe (stream/app.py", "_observe (")),
    ("core: decode, validate, features, model, encode", (
        "stream/pipeline.py", "features/", "river/", "stream/events.py", "online_models/")),
    ("produce path (Faust + aiokafka)", (
        "Producer.send (", "AIOKafkaProducer", "Sender.", "Sender._", "MessageAccumulator", "MessageBatch",
        "BatchBuilder", "Topic.publish_message", "Topic.send", "Topic._send", "_deliver (", "FutureMessage",
        "PendingMessage", "aiokafka/producer/", "faust/transport/producer", "BatchHandler.send",
        "_send (bench/", "SendProduceReqHandler")),
    ("consume path (Faust consumer, conductor, stream, agent)", (
        "faust/transport/consumer.py", "faust/transport/conductor.py", "faust/streams.py",
        "Consumer._to_message", "faust/events.py", "faust/channels.py", "faust/agents/", "App.create_event",
        "ConsumerMessage", "Service.wait_first", "aiokafka/consumer/", "take_events", "_stamp_arrival",
        "_drain_messages", "_submit (", "_per_message", "_on_flight_done", "Fetcher.")),
    ("kafka client I/O (aiokafka conn, sockets)",
     ("aiokafka/conn.py", "aiokafka/client.py", "selector_events.py")),
)


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, patterns in CATEGORIES:
            if any(p in frame for p in patterns):
                return name
    return "event loop, tasks, other"


def summarise_profile(path: Path, top: int = 20) -> str:
    """Time by category, then top functions by self and inclusive share of all busy samples."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    categories: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        categories[_category(frames)] += n
        self_time[_short(frames[-1])] += n
        for frame in set(map(_short, frames)):
            inclusive[frame] += n
    if not total:
        return "no samples"
    lines = [f"busy samples {total} (all threads; py-spy records no idle samples)", "by category:"]
    lines += [f"  {n / total:6.1%}  {c}" for c, n in categories.most_common()]
    lines.append("top by self time:")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in self_time.most_common(top)]
    lines.append("top by inclusive time (entry frames above the event loop left out):")
    boring = ("cli/base.py", "click/", "runpy", "App.main", "Worker.execute_from_commandline",
              "BaseEventLoop.run_", "<module>", "main (", "_worker (")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top + 30)
              if not any(b in f for b in boring)][:top + 10]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/module.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _ = where.rpartition(":")
    parts = path.split("/")
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1:]
            break
    else:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts)})"


if __name__ == "__main__":
    sys.exit(main())
