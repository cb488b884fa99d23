"""Real worker processes on the benchmark broker: throughput on a backlog, paced latency, scale.

A *contender* is a command line that starts a worker reading the settings environment, e.g.
``python -m stream.cli worker`` (the engine as shipped) or ``python -m bench.prototypes.engine_knobs``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from bench import cores
from bench.common import (
    REPO,
    SCORE_TOPICS,
    WORKER_INPUTS,
    Event,
    delete_prefixed,
    end_offsets,
    group_stable,
    load,
    pct,
    read_since,
    recreate_topics,
    wait_for_count,
)
from stream import admin, topics
from stream.batching import WAIT_CAUSES
from stream.settings import Settings

ENGINE_CMD = (sys.executable, "-m", "stream.cli", "worker")
#: ``scorestream challengers``, run beside the workers when the challengers are separate.
CHALLENGERS_CMD = (sys.executable, "-m", "stream.cli", "challengers")
#: ``scorestream trainer``, run beside the workers with ``SCORESTREAM_LEARNING=trainer``.
TRAINER_CMD = (sys.executable, "-m", "stream.cli", "trainer")
#: Label horizons of 15 minutes of event time: every scored event (every session, for leads)
#: becomes a training example within the backlog, learned by every model, as at steady state
#: (with the default 7 and 14 days, a backlog of a few simulated days would learn almost nothing).
STEADY_STATE_ENV = {"SCORESTREAM_FRAUD_HORIZON_DAYS": "0.0104", "SCORESTREAM_LEAD_HORIZON_DAYS": "0.0104"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes a worker process read these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_")}
    for name in ("kafka_bootstrap", "home", "kafka_cache", "partitions", "app_id", "web_port",
                 "fraud_alert_threshold", "batch_size"):
        env["SCORESTREAM_" + name.upper()] = str(getattr(settings, name))
    env.update(extra or {})
    return env


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class WorkerProcess:
    def __init__(self, cmd: tuple[str, ...], settings: Settings, name: str,
                 extra_env: dict[str, str] | None = None, on_cores: frozenset[int] | None = None) -> None:
        self.settings = settings
        self.log_path = Path(settings.home) / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT,
                                            env=settings_env(settings, extra_env), cwd=REPO,
                                            start_new_session=True, preexec_fn=cores.pinner(on_cores))

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def wait_ready(self, timeout: float = 90) -> None:
        url = f"http://127.0.0.1:{self.settings.web_port}/metrics"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"worker not serving /metrics after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def metrics_text(self) -> str:
        """This process's /metrics page."""
        url = f"http://127.0.0.1:{self.settings.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def metric_sums(self, *prefixes: str) -> dict[str, float]:
        """For each prefix, the sum of this process's /metrics samples whose name{labels} starts with it."""
        lines = self.metrics_text().splitlines()
        return {prefix: sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))
                for prefix in prefixes}

    def examples_applied(self) -> float:
        """Training examples this worker's trainer applied (its /metrics), both tasks: learned, or
        skipped as a second copy of an example id (with 15-minute horizons a long session can
        give its id twice)."""
        return sum(self.metric_sums("scorestream_examples_learned_total{",
                                    "scorestream_duplicate_examples_total{").values())

    def latency_buckets(self) -> dict[float, float]:
        """The worker's own event→score latency histogram (fetched → acknowledged), all topics:
        upper bound in seconds → cumulative count."""
        buckets: dict[float, float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            if family.name == "scorestream_event_to_score_latency_seconds":
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        bound = float(sample.labels["le"])
                        buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return buckets

    def waited(self) -> dict[str, float]:
        """Seconds the worker's fetch loop has waited so far, by cause (its /metrics)."""
        sums = self.metric_sums(*WAIT_SAMPLES.values())
        return {cause: sums[prefix] for cause, prefix in WAIT_SAMPLES.items()}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.alive():
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def dump_stacks(proc: WorkerProcess, times: int = 3) -> str:
    """Every thread's stack of a worker that did not finish, ``times`` over a second apart, next to
    its log (py-spy, a benchmark-only tool): what a stalled worker was doing when it was given up."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists() or not proc.alive():
        return "no stacks: py-spy missing or the worker exited"
    out = proc.log_path.with_name(proc.log_path.stem + "-stacks.txt")
    with open(out, "w") as dump:
        dump.write(f"--- this run's topics and their partitions: {asyncio.run(_run_topics(proc.settings))}\n")
        for i in range(times):
            dump.write(f"--- dump {i + 1}/{times}, worker CPU so far {proc.cpu_seconds():.1f} s\n")
            dump.flush()
            subprocess.run([str(py_spy), "dump", "--locals", "--pid", str(proc.pid)], stdout=dump,
                           stderr=subprocess.STDOUT, timeout=60, check=False)
            time.sleep(1.0)
    # where its CPU goes: a busy loop shows up here, not in the instant dumps above
    samples = out.with_name(proc.log_path.stem + "-cpu-samples.txt")
    subprocess.run([str(py_spy), "record", "--pid", str(proc.pid), "--duration", "3", "--rate", "200",
                    "--format", "raw", "--output", str(samples), "--nonblocking"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=False)
    return f"its stacks in {out.name}, 3 s of CPU samples in {samples.name}"


async def _run_topics(settings: Settings) -> dict[str, int]:
    """The topics named after this run's app id, with their partition counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(settings.app_id)]
        described = await admin.describe_topics(names) if names else []
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


#: The worker's waits while it scores the backlog: its fetch loop's (for records, for
#: acknowledgements of a full window of batches in flight, for too many transactions waiting to be
#: prepared), and the transaction batches' own waits for the terminal view, which run side by side
#: with the loop and with each other.
WAIT_SAMPLES = {
    **{cause: f'scorestream_batch_loop_wait_seconds_total{{on="{cause}"}}' for cause in WAIT_CAUSES},
    "the terminal view (transaction batches, side by side)": "scorestream_terminal_wait_seconds_sum",
}


@dataclass
class EngineRun:
    events_per_s: float
    scored: int
    expected: int
    latency_ms: dict[str, float] | None = None
    paced_rate: float | None = None
    #: False when the backlog was not fully scored before the deadline (the rate is then from
    #: the scores that did arrive, and the run is flagged in the report)
    complete: bool = True
    #: CPU of the worker process(es) from loading the backlog to its last score, per event: far
    #: steadier than events/s when other jobs share the machine
    cpu_us_per_event: float = float("nan")
    #: latency at a fixed rate, the same for every contender (``fixed_rate``)
    latency_fixed_ms: dict[str, float] | None = None
    fixed_rate: float | None = None
    #: scores per second from the first to the last score alone, learning left behind
    #: (``events_per_s`` runs until every worker has also learned every training example)
    scoring_only_per_s: float = float("nan")
    #: training examples the backlog produced (each learned by every worker)
    examples: int = 0
    #: with the challengers separate: seconds after the workers had learned every example until
    #: ``scorestream challengers`` had too (its lag; it never holds a score back), and its CPU
    #: per input event
    challengers_lag_s: float = float("nan")
    challengers_cpu_us_per_event: float = float("nan")
    #: with ``SCORESTREAM_LEARNING=trainer``: seconds after the last score until ``scorestream
    #: trainer`` had learned every example (``events_per_s`` waits for it: the workers score with
    #: what it learns), and its CPU per input event
    trainer_lag_s: float = float("nan")
    trainer_cpu_us_per_event: float = float("nan")
    #: worker 0's waits (``WAIT_SAMPLES``) from loading the backlog to its last score, in seconds,
    #: and that span's length: what the rest of its core's time went to
    waited_s: dict[str, float] | None = None
    scoring_span_s: float = float("nan")


def _run_settings(base: Settings, tag: str) -> Settings:
    app_id = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    return replace(base, app_id=app_id, home=Path(base.home) / "runs" / app_id, web_port=free_port())


def rate_from_timestamps(records: list[tuple[str, int, bytes]]) -> float:
    """Scores per second between the first and the last score record's Kafka timestamp."""
    stamps = [ts for _, ts, _ in records]
    span = (max(stamps) - min(stamps)) / 1000
    return (len(stamps) - 1) / span if span > 0 else float("nan")


async def _examples_in_topic(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topics.TRAINING_EXAMPLES, 0)  # a single partition
        return (await consumer.end_offsets([partition]))[partition]
    finally:
        await consumer.stop()


def wait_for_learning(settings: Settings, procs: list[WorkerProcess], timeout: float,
                      quiet_s: float = 3.0) -> tuple[float, int]:
    """Wait until every worker applied every example in ``training-examples``; (when, how many).

    Scores can run ahead of the label join and of learning; a rate a worker can *sustain*
    must include both. Done is when every worker had applied every example there was, and
    no new example came for ``quiet_s`` after that (the join may pause between batches).
    """
    deadline = time.monotonic() + timeout
    examples, caught_up_at = -1, None
    while time.monotonic() < deadline:
        now_examples = asyncio.run(_examples_in_topic(settings))
        if now_examples != examples:
            examples, caught_up_at = now_examples, None
        if caught_up_at is None and all(p.examples_applied() >= examples for p in procs):
            caught_up_at = (time.monotonic(), time.time() * 1000)
        if caught_up_at is not None and time.monotonic() - caught_up_at[0] >= quiet_s:
            return caught_up_at[1], examples
        time.sleep(0.05)
    print(f"   (learning did not catch up within {timeout:.0f} s)", flush=True)
    return time.time() * 1000, examples


def run_engine(cmd: tuple[str, ...], base: Settings, backlog: list[Event], workers: int = 1,
               paced_pool: list[Event] | None = None, paced_seconds: float = 6.0,
               extra_env: dict[str, str] | None = None, tag: str = "engine",
               profile: str | None = None, fixed_rate: float | None = None) -> EngineRun:
    """Start workers on empty input topics, load the backlog, time it from the score records.

    With ``paced_pool`` (one worker), afterwards send events at half the measured rate for
    ``paced_seconds`` with a wall-clock timestamp per event, and report event→score latency.
    Pinned (``bench.cores``), one worker runs on a core of its own, the trainer and challengers
    beside the broker; two workers, and everything else, on every core.
    """
    run = functools.partial(_run_engine, cmd, base, backlog, workers, paced_pool, paced_seconds, extra_env,
                            tag, profile, fixed_rate)
    if workers > 1:
        with cores.shared():
            return run(worker_cores=None, beside_cores=None)
    return run(worker_cores=cores.measured(), beside_cores=cores.rest())


def _run_engine(cmd: tuple[str, ...], base: Settings, backlog: list[Event], workers: int,
                paced_pool: list[Event] | None, paced_seconds: float, extra_env: dict[str, str] | None,
                tag: str, profile: str | None, fixed_rate: float | None, *,
                worker_cores: frozenset[int] | None, beside_cores: frozenset[int] | None) -> EngineRun:
    settings = _run_settings(base, tag)
    asyncio.run(recreate_topics(settings, WORKER_INPUTS))
    procs: list[WorkerProcess] = []
    shadow: WorkerProcess | None = None
    trainer: WorkerProcess | None = None
    spy: subprocess.Popen | None = None
    env = {**STEADY_STATE_ENV, **(extra_env or {})}
    try:
        for i in range(workers):
            each = settings if i == 0 else replace(settings, web_port=free_port())
            procs.append(WorkerProcess(cmd, each, f"worker{i}", env, worker_cores))
        configured = Settings.from_env(env)
        if configured.challengers_process and not env.get("BENCH_NO_CHALLENGERS"):
            port = free_port()
            shadow = WorkerProcess(CHALLENGERS_CMD, replace(settings, web_port=port), "challengers",
                                   {**env, "SCORESTREAM_CHALLENGERS_WEB_PORT": str(port)}, beside_cores)
        if configured.learning == "trainer":
            asyncio.run(admin.create_topics(settings, names=(topics.snapshot_topic(settings.app_id),)))
            port = free_port()
            trainer = WorkerProcess(TRAINER_CMD, replace(settings, web_port=port), "trainer",
                                    {**env, "SCORESTREAM_TRAINER_WEB_PORT": str(port)}, beside_cores)
        for proc in procs + [p for p in (shadow, trainer) if p]:
            proc.wait_ready()
        if not asyncio.run(group_stable(settings, settings.app_id, workers)):
            raise RuntimeError(f"consumer group not stable with {workers} member(s):\n{procs[0].log()}")
        if trainer and not asyncio.run(group_stable(settings, topics.trainer_app_id(settings.app_id), 1)):
            raise RuntimeError(f"the trainer's consumer group is not stable:\n{trainer.log()}")
        time.sleep(1.0)  # table recovery of the (empty) changelogs ends after the group is stable
        base_offsets = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        if profile:
            py_spy = str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([py_spy, "record", "-p", str(procs[0].pid), "-o", profile,
                                    "-f", "raw", "-r", "200", "-d", "600", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        cpu_before = sum(p.cpu_seconds() for p in procs)
        shadow_cpu_before = shadow.cpu_seconds() if shadow else 0.0
        trainer_cpu_before = trainer.cpu_seconds() if trainer else 0.0
        waited_before = procs[0].waited()
        loaded_at = time.monotonic()
        asyncio.run(load(settings, backlog))
        expected = sum(e.topic in topics.INPUT_TOPICS for e in backlog)  # labels are not scored
        seen = asyncio.run(wait_for_count(settings, SCORE_TOPICS, base_offsets, expected,
                                          timeout=max(45, expected / 500),
                                          alive=lambda: all(p.alive() for p in procs)))
        scored_at_ms = time.time() * 1000
        span_s = time.monotonic() - loaded_at
        waited = {cause: seconds - waited_before[cause] for cause, seconds in procs[0].waited().items()}
        learners = [trainer] if trainer else procs  # who learns what the workers score with
        learned_at_ms, examples = wait_for_learning(settings, learners, timeout=max(60, expected / 200))
        cpu = sum(p.cpu_seconds() for p in procs) - cpu_before
        lag = float("nan")
        if shadow is not None:
            shadow_done_ms, _ = wait_for_learning(settings, [shadow], timeout=max(60, expected / 100))
            lag = max(0.0, (shadow_done_ms - learned_at_ms) / 1000)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            spy = None
        after = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        records = asyncio.run(read_since(settings, base_offsets, after))
        if not records:
            raise RuntimeError(f"no scores at all:\n{procs[0].log()}")
        first_ms = min(ts for _, ts, _ in records)
        sustained = (len(records) - 1) / max(1e-3, (max(learned_at_ms, scored_at_ms) - first_ms) / 1000)
        run = EngineRun(sustained, len(records), expected, complete=seen >= expected,
                        cpu_us_per_event=cpu / max(1, seen) * 1e6,
                        scoring_only_per_s=rate_from_timestamps(records), examples=examples,
                        challengers_lag_s=lag,
                        challengers_cpu_us_per_event=(shadow.cpu_seconds() - shadow_cpu_before)
                        / max(1, seen) * 1e6 if shadow else float("nan"),
                        trainer_lag_s=max(0.0, (learned_at_ms - scored_at_ms) / 1000) if trainer
                        else float("nan"),
                        trainer_cpu_us_per_event=(trainer.cpu_seconds() - trainer_cpu_before)
                        / max(1, seen) * 1e6 if trainer else float("nan"),
                        waited_s=waited, scoring_span_s=span_s)
        if not run.complete:
            print(f"   (incomplete: {seen}/{expected} scores before the deadline; logs in "
                  f"{procs[0].log_path.parent}; {dump_stacks(procs[0])})", flush=True)
        if paced_pool and run.complete:
            run.paced_rate = run.events_per_s / 2
            in_worker = procs[0].latency_buckets()
            run.latency_ms = asyncio.run(_paced_latency(settings, paced_pool, run.paced_rate,
                                                        paced_seconds, after))
            run.latency_ms["in_worker_p99"] = bucket_quantile(in_worker, procs[0].latency_buckets(), 0.99)
            if fixed_rate:
                rest = paced_pool[run.latency_ms["events"]:]
                now = asyncio.run(end_offsets(settings, SCORE_TOPICS))
                run.fixed_rate = fixed_rate
                in_worker = procs[0].latency_buckets()
                run.latency_fixed_ms = asyncio.run(_paced_latency(settings, rest, fixed_rate,
                                                                  paced_seconds, now))
                run.latency_fixed_ms["in_worker_p99"] = bucket_quantile(
                    in_worker, procs[0].latency_buckets(), 0.99)
        return run
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        for proc in procs + [p for p in (shadow, trainer) if p]:
            proc.stop()
        asyncio.run(delete_prefixed(settings, settings.app_id))


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The ``q`` quantile, in ms, of what a cumulative histogram counted between two scrapes,
    interpolated within its bucket as Prometheus' ``histogram_quantile`` does (nan if nothing).

    >>> bucket_quantile({0.01: 0, 0.025: 0, float("inf"): 0}, {0.01: 90, 0.025: 100, float("inf"): 100}, 0.95)
    17.5
    """
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower * 1000
            return (lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)) * 1000
        lower, below = bound, count
    return float("nan")


async def _paced_latency(settings: Settings, pool: list[Event], rate: float, seconds: float,
                         base_offsets: dict) -> dict[str, float]:
    """Send events at ``rate`` with wall-clock timestamps; latency = score timestamp − send time.

    The pool's labels go too, at their place in the stream (they are not scored): a transaction's
    terminal features wait for the labels of its time, which a stream without labels never shows.
    """
    count = min(len(pool), int(rate * seconds))
    events = pool[:count]
    scored = sum(e.topic in topics.INPUT_TOPICS for e in events)
    sent_ms: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0, acks=1)
    await producer.start()
    try:
        futures = []
        start = time.monotonic()
        for index, e in enumerate(events):
            ahead = start + index / rate - time.monotonic()
            if ahead > 0.0005:
                await asyncio.sleep(ahead)
            now = time.time()
            sent_ms[e.event_id] = now * 1000
            futures.append(await producer.send(e.topic, e.value, key=e.key, partition=e.partition,
                                               timestamp_ms=int(now * 1000)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    seen = await wait_for_count(settings, SCORE_TOPICS, base_offsets, scored, timeout=60)
    upto = await end_offsets(settings, SCORE_TOPICS)
    records = await read_since(settings, base_offsets, upto)
    latencies = []
    by_topic: dict[str, list[float]] = {}
    for topic, ts, value in records:
        sent = sent_ms.get(orjson.loads(value)["event_id"])
        if sent is not None:
            latencies.append(ts - sent)
            by_topic.setdefault(topic, []).append(ts - sent)
    return {"p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95), "p99": pct(latencies, 0.99),
            "max": max(latencies) if latencies else float("nan"), "events": count, "scored": seen,
            "matched": len(latencies),
            # where the tail is: web events (lead scores) or transactions (which wait for the view)
            "p99_by_topic": {topic: pct(values, 0.99) for topic, values in sorted(by_topic.items())}}


PEER_CMD = (sys.executable, "-m", "bench.peer_quix")


def run_peer(base: Settings, backlog: list[Event], preloaded: bool = False,
             extra_env: dict[str, str] | None = None) -> EngineRun:
    """Quix Streams on the pre-loaded backlog, timed from its score records' timestamps.

    ``extra_env`` is the contender's configuration: the peer scores the models its worker would.
    """
    settings = _run_settings(base, "quix")
    group = settings.app_id
    if not preloaded:
        asyncio.run(recreate_topics(settings, topics.INPUT_TOPICS))
        asyncio.run(load(settings, backlog))
    base_offsets = asyncio.run(end_offsets(settings, SCORE_TOPICS))
    state_dir = Path(settings.home) / "state"
    log_path = Path(settings.home) / "quix.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([*PEER_CMD, "--group", group, "--state-dir", str(state_dir)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env=settings_env(settings, extra_env), start_new_session=True,
                                   preexec_fn=cores.pinner(cores.measured()))
    try:
        expected = len(backlog)
        # CPU is counted from its first score on (not its start-up), per event scored since
        first = asyncio.run(wait_for_count(settings, SCORE_TOPICS, base_offsets, 1, timeout=90,
                                           alive=lambda: process.poll() is None))
        cpu_first = process_cpu_seconds(process.pid)
        seen = asyncio.run(wait_for_count(settings, SCORE_TOPICS, base_offsets, expected,
                                          timeout=max(90, expected / 500),
                                          alive=lambda: process.poll() is None))
        cpu = process_cpu_seconds(process.pid) - cpu_first
        after = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        records = asyncio.run(read_since(settings, base_offsets, after))
        if seen < expected:
            raise RuntimeError(f"quix scored {seen}/{expected}:\n{log_path.read_text()[-3000:]}")
        return EngineRun(rate_from_timestamps(records), len(records), expected,
                         cpu_us_per_event=cpu / max(1, seen - first) * 1e6)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        asyncio.run(delete_prefixed(settings, f"changelog__{group}"))


def run_floor(base: Settings, pool: list[Event], rate: float, seconds: float) -> dict[str, float]:
    """Event→output latency of the raw aiokafka pass-through at ``rate``: this machine's floor now."""
    settings = _run_settings(base, "floor")
    process = subprocess.Popen([sys.executable, "-m", "bench.transport"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, cwd=REPO, env=settings_env(settings),
                               start_new_session=True, text=True, preexec_fn=cores.pinner(cores.measured()))
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the pass-through did not start")
        base_offsets = asyncio.run(end_offsets(settings, SCORE_TOPICS))
        return asyncio.run(_paced_latency(settings, pool, rate, seconds, base_offsets))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
