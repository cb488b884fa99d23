"""The transport: a raw aiokafka consume → produce pass-through on the same broker, topics, partitions.

Records of the input topics are read in batches (``getmany``) by a fresh consumer group and written
unchanged to the matching score topic, same partition, through ``BatchBuilder``\\ s and
``send_batch`` (no per-record send, no awaiting each); offsets are committed once everything is
acknowledged. Nothing is decoded: this is what moving the bytes costs.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import stop_consumer
from stream import topics
from stream.settings import Settings

ROUTE = {topics.WEB_EVENTS: topics.LEAD_SCORES, topics.TRANSACTIONS: topics.TRANSACTION_SCORES}


async def run_transport(settings: Settings, expected: int, timeout: float = 120) -> dict[str, float]:
    """Pass ``expected`` pre-loaded input records through; events/s and CPU µs per event."""
    consumer = AIOKafkaConsumer(*topics.INPUT_TOPICS, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=f"bench-transport-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=1,
                                max_batch_size=256 * 1024, acks=1)
    await producer.start()
    await consumer.start()
    moved = 0
    started = cpu = None
    pending: list[asyncio.Future] = []
    try:
        deadline = time.monotonic() + timeout
        while moved < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            if batches and started is None:
                started, cpu = time.perf_counter(), time.process_time()
            for tp, records in batches.items():
                route = ROUTE[tp.topic]
                batch = producer.create_batch()
                for r in records:
                    if batch.append(key=r.key, value=r.value, timestamp=None) is None:
                        batch.close()
                        pending.append(await producer.send_batch(batch, route, partition=tp.partition))
                        batch = producer.create_batch()
                        batch.append(key=r.key, value=r.value, timestamp=None)
                batch.close()
                pending.append(await producer.send_batch(batch, route, partition=tp.partition))
                moved += len(records)
            if len(pending) > 64:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await consumer.commit()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await stop_consumer(consumer)
        await producer.stop()
    if moved < expected:
        raise RuntimeError(f"transport moved only {moved}/{expected} records")
    return {"events_per_s": moved / wall, "cpu_us_per_event": cpu / moved * 1e6}


async def serve(settings: Settings) -> None:
    """Pass new input records through until killed (the latency floor); prints "ready" once assigned."""
    consumer = AIOKafkaConsumer(*topics.INPUT_TOPICS, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=f"bench-floor-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="latest", enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=1, acks=1)
    await producer.start()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)
        print("ready", flush=True)
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5_000)
            for tp, records in batches.items():
                batch = producer.create_batch()
                for r in records:
                    if batch.append(key=r.key, value=r.value, timestamp=None) is None:
                        batch.close()
                        await producer.send_batch(batch, ROUTE[tp.topic], partition=tp.partition)
                        batch = producer.create_batch()
                        batch.append(key=r.key, value=r.value, timestamp=None)
                batch.close()
                await producer.send_batch(batch, ROUTE[tp.topic], partition=tp.partition)
    finally:
        await stop_consumer(consumer)
        await producer.stop()


if __name__ == "__main__":
    from bench.common import bench_settings

    asyncio.run(serve(bench_settings()))
