"""``scorestream demo``: the whole engine on one machine, with live scores in the terminal.

It starts the local broker, creates the topics, runs a worker (and, with the
challengers separate, ``scorestream challengers``) in child processes, streams
simulated events into Kafka, and prints what comes out of the score and alert
topics once a second, until interrupted (or ``--duration`` passes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer

from stream import admin, kafka_local, topics
from stream.producer import produce_events
from stream.settings import Settings

WATCHED = (topics.LEAD_SCORES, topics.TRANSACTION_SCORES, topics.FRAUD_ALERTS, topics.DEAD_LETTER)


def start_worker(settings: Settings, command: str = "worker") -> subprocess.Popen:
    """Run ``scorestream worker`` (or ``challengers``, ``trainer``) as a child, its output in the home."""
    log_path = settings.home / f"{command}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SCORESTREAM_HOME": str(settings.home)}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "stream.cli", command], stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_metrics(settings: Settings, worker: subprocess.Popen, timeout: float = 60,
                     port: int | None = None) -> str:
    """Wait until the worker (or the process on ``port``) serves ``/metrics``; return its URL."""
    url = f"http://127.0.0.1:{settings.web_port if port is None else port}/metrics"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            msg = f"{worker.args[-1]} exited with {worker.returncode}; see the log in {settings.home}"
            raise RuntimeError(msg)
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return url
        time.sleep(0.5)
    msg = f"the worker did not serve {url} within {timeout} s"
    raise TimeoutError(msg)


def describe(topic: str, body: dict) -> str:
    """One short line for an output record."""
    if topic == topics.DEAD_LETTER:
        return f"dead letter ({body.get('reason')}): {body.get('detail')}"
    who = body.get("visitor_id") or body.get("customer_id")
    return f"{topic}: {who} score={body.get('score', 0):.3f} ({body.get('model')})"


async def watch_outputs(settings: Settings, stop: asyncio.Event, every: float = 1.0) -> None:
    """Print, once a second, the counts per output topic and the top score of each."""
    consumer = AIOKafkaConsumer(*WATCHED, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    counts: Counter[str] = Counter()
    try:
        while not stop.is_set():
            top: dict[str, dict] = {}
            until = time.monotonic() + every
            while time.monotonic() < until and not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    counts[tp.topic] += len(records)
                    for record in records:
                        body = orjson.loads(record.value)
                        if body.get("score", 0) >= top.get(tp.topic, {}).get("score", -1):
                            top[tp.topic] = body
            summary = "  ".join(f"{t}={counts[t]}" for t in WATCHED)
            print(f"[{time.strftime('%H:%M:%S')}] {summary}")
            for topic, body in sorted(top.items()):
                print("    top " + describe(topic, body))
    finally:
        await consumer.stop()


async def _run(settings: Settings, events: int, rate: float, duration: float | None) -> None:
    from simulator import simulate

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_outputs(settings, stop))
    producer = asyncio.create_task(produce_events(simulate(events or None), settings, rate=rate))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([producer, waiter], timeout=duration,
                       return_when=asyncio.FIRST_COMPLETED)
    if producer.done() and not stop.is_set():
        print(producer.result())
        await asyncio.sleep(3)  # let the last scores arrive
    stop.set()
    producer.cancel()
    await asyncio.gather(watcher, producer, waiter, return_exceptions=True)


def companions(settings: Settings) -> list[tuple[str, int]]:
    """The processes that run beside the worker (command, web port): ``scorestream trainer``, which
    learns what the workers score with, and ``scorestream challengers``, if the settings want them."""
    trainer = [("trainer", settings.trainer_web_port)] if settings.learning == "trainer" else []
    challengers = [("challengers", settings.challengers_web_port)] if settings.challengers_process else []
    return trainer + challengers


def run_demo(settings: Settings, events: int = 0, rate: float = 200.0,
             duration: float | None = None) -> int:
    """Broker, topics, worker and simulator, with live scores; Ctrl-C stops it."""
    print(kafka_local.start(settings))
    created = asyncio.run(admin.create_topics(settings))
    print(f"topics ready ({len(created)} created)")
    children = [start_worker(settings)]
    try:
        url = wait_for_metrics(settings, children[0])
        print(f"worker running (pid {children[0].pid}); metrics at {url}; log {settings.home}/worker.log")
        for command, port in companions(settings):
            children.append(start_worker(settings, command))
            url = wait_for_metrics(settings, children[-1], port=port)
            print(f"{command} running (pid {children[-1].pid}); metrics at {url}; "
                  f"log {settings.home}/{command}.log")
        print(f"simulating {'endless' if not events else events} events at {rate:g}/s; "
              "Ctrl-C to stop")
        asyncio.run(_run(settings, events, rate, duration))
    finally:
        for child in children:
            os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
    print("worker stopped; the broker keeps running (scorestream kafka stop to stop it)")
    return 0
