"""Integration fixtures: one real Kafka broker per test session, fresh topics, real workers.

The broker is the project's own (``scorestream kafka start``) on its own ports and
data folder, so a developer's demo broker is left alone. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from stream import admin, kafka_local
from stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TEST_BOOTSTRAP = os.environ.get("SCORESTREAM_TEST_BOOTSTRAP", "127.0.0.1:19092")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def broker() -> Iterator[Settings]:
    """The session's broker: started once (jars cached), stopped at the end."""
    settings = Settings(
        kafka_bootstrap=TEST_BOOTSTRAP,
        kafka_controller_port=int(TEST_BOOTSTRAP.rsplit(":", 1)[1]) + 1,
        home=REPO / ".scorestream" / "test",
        kafka_cache=REPO / ".scorestream" / "cache",
    )
    kafka_local.wipe(settings)
    started = time.monotonic()
    print(f"\n{kafka_local.start(settings)} in {time.monotonic() - started:.1f} s")
    yield settings
    kafka_local.stop(settings)


@pytest.fixture
def engine(broker: Settings, tmp_path: Path) -> Settings:
    """Settings for one test: empty Scorestream topics, a fresh app id, a free web port."""
    settings = replace(broker, app_id=f"it-{uuid.uuid4().hex[:8]}", home=tmp_path / "home",
                       web_port=free_port(), challengers_web_port=free_port(), trainer_web_port=free_port(),
                       session_timeout_s=6.0)
    asyncio.run(admin.delete_topics(settings, prefix="it-"))
    asyncio.run(admin.create_topics(settings))
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_")}
    for name in ("kafka_bootstrap", "home", "kafka_cache", "partitions", "app_id", "web_port",
                 "fraud_alert_threshold", "batch_size", "session_timeout_s",
                 "allowed_lateness_s", "state_expiry_interval_s", "label_grace_s",
                 "terminal_delay_days", "terminal_label_wait_s", "challengers",
                 "challengers_web_port", "fraud_champion", "lead_champion", "model_key", "learning",
                 "trainer_web_port", "model_publish_interval_s"):
        env["SCORESTREAM_" + name.upper()] = str(getattr(settings, name))
    return env


class Worker:
    """A real ``scorestream worker`` process (or, with ``command=``, ``challengers`` or ``trainer``)."""

    def __init__(self, settings: Settings, name: str = "worker", command: str = "worker") -> None:
        self.settings = settings
        self.command = command
        self.log_path = settings.home / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", command], stdout=log,
                stderr=subprocess.STDOUT, env=settings_env(settings), cwd=REPO,
                start_new_session=True)

    @property
    def metrics_url(self) -> str:
        port = {"challengers": self.settings.challengers_web_port,
                "trainer": self.settings.trainer_web_port}.get(self.command, self.settings.web_port)
        return f"http://127.0.0.1:{port}/metrics"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"worker exited:\n{self.log()}"
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"worker not serving /metrics after {timeout} s:\n{self.log()}")

    def metrics(self) -> dict[str, float]:
        """The scraped samples, as ``name{labels}`` → value."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process (its whole group) and wait; its exit code (-9: killed after ``timeout``)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def start_worker(engine: Settings) -> Iterator:
    """Start real workers for the test; all are stopped afterwards."""
    workers: list[Worker] = []

    def start(settings: Settings = engine, name: str = "worker", command: str = "worker") -> Worker:
        worker = Worker(settings, name, command)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


async def _consume(settings: Settings, topics: tuple[str, ...], expected: int,
                   timeout: float) -> list[tuple[str, dict]]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    found: list[tuple[str, dict]] = []
    distinct: set[tuple[str, object]] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(distinct) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    body = orjson.loads(record.value)
                    found.append((tp.topic, body))
                    distinct.add((tp.topic, body.get("event_id", record.offset)))
        consume.reached_at = time.monotonic()
        # a moment more, to catch duplicates that would arrive after the expected count
        batches = await consumer.getmany(timeout_ms=1500)
        for tp, records in batches.items():
            found.extend((tp.topic, orjson.loads(r.value)) for r in records)
    finally:
        await consumer.stop()
    return found


def consume(settings: Settings, topics: tuple[str, ...], expected: int,
            timeout: float = 120) -> list[tuple[str, dict]]:
    """Read the topics from the beginning until ``expected`` distinct events (or the deadline).

    Records are told apart by topic and ``event_id``, so repeated scores do not
    count twice towards ``expected`` (they are all returned).

    ``consume.reached_at`` is then the monotonic time the expected count was reached.
    """
    return asyncio.run(_consume(settings, topics, expected, timeout))
