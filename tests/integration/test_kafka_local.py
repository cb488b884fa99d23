"""The local broker for real: start, idempotent start, a record through it, stop, restart.

It runs its own broker (in a temporary home, on free ports) rather than the session's shared
one, because stopping and restarting is what it tests. The jar cache is the project's, so
only the very first run on a machine downloads anything.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream import kafka_local
from stream.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOPIC = "kafka-local-it"
SNAPSHOT_BYTES = 15 * 1024 * 1024  # the size of a model snapshot sent through Kafka
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jar_cache() -> Path:
    """The project's jar cache (``SCORESTREAM_KAFKA_CACHE``, relative to the repository)."""
    cache = Settings.from_env().kafka_cache
    return cache if cache.is_absolute() else REPO / cache


async def send_and_read(bootstrap: str, records: list[bytes]) -> list[bytes]:
    """Create the topic if needed, produce ``records``, read the topic from the beginning."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=20 * 1024 * 1024)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(TOPIC, record, key=b"k")
    finally:
        await producer.stop()
    return await read_all(bootstrap)


async def read_all(bootstrap: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
        enable_auto_commit=False, max_partition_fetch_bytes=20 * 1024 * 1024,
    )
    await consumer.start()
    try:
        end = (await consumer.end_offsets(list(consumer.assignment()))).values()
        wanted, found, deadline = sum(end), [], time.monotonic() + 30
        while len(found) < wanted and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(record.value for record in batch)
    finally:
        await consumer.stop()
    return found


def timed(what: str, action: Callable[[], T]) -> T:
    started = time.monotonic()
    result = action()
    print(f"\n{what}: {time.monotonic() - started:.2f} s")
    return result


def test_broker_lifecycle(tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        home=tmp_path / "home",
        kafka_cache=jar_cache(),
    )
    try:
        timed("jar download (0 if cached)", lambda: kafka_local.fetch_jars(settings))
        first = timed("first start (format + launch)", lambda: kafka_local.start(settings))
        assert first.running and first.ready and first.pid
        assert str(first).startswith(f"Kafka 3.9.1 broker running (pid {first.pid})")
        assert first.log_file.is_file()

        again = timed("start while running", lambda: kafka_local.start(settings))
        assert again.pid == first.pid and again.ready

        snapshot = os.urandom(SNAPSHOT_BYTES)
        records = asyncio.run(send_and_read(settings.kafka_bootstrap, [b"hello", snapshot]))
        assert records == [b"hello", snapshot]

        assert kafka_local.stop(settings) is True
        assert not Path(f"/proc/{first.pid}").exists()  # exited and reaped
        stopped = kafka_local.status(settings)
        assert (stopped.running, stopped.ready, stopped.pid) == (False, False, None)
        assert not kafka_local.pid_file(settings).exists()
        assert kafka_local.stop(settings) is False

        restarted = timed("cached start (formatted data)", lambda: kafka_local.start(settings))
        assert restarted.ready and restarted.pid != first.pid
        assert asyncio.run(read_all(settings.kafka_bootstrap)) == [b"hello", snapshot]
    finally:
        kafka_local.stop(settings)
    assert not kafka_local.status(settings).running
