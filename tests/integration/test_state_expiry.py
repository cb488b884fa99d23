"""Bounded memory: a key idle past every window plus the lateness is dropped, changelog included."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer

from stream.producer import produce_events
from tests.integration.conftest import consume

pytestmark = pytest.mark.integration
DAY = 86_400_000
T0 = 1_767_225_600_000


def tx(event_id: str, customer: str, ts: int) -> dict:
    return {"topic": "transactions", "event_id": event_id, "ts": ts, "customer_id": customer,
            "terminal_id": "k1", "amount": 10.0}


async def changelog_records(settings, topic: str) -> list[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [(r.key, r.value) for records in batches.values() for r in records]
    finally:
        await consumer.stop()


def test_idle_customer_state_expires(engine, start_worker):
    settings = replace(engine, state_expiry_interval_s=1.0)
    worker = start_worker(settings)
    events = [tx("a1", "idle", T0), tx("b1", "busy", T0 + 10 * DAY),
              tx("b2", "busy", T0 + 31 * DAY + 2 * 3_600_000)]
    asyncio.run(produce_events(events, settings))
    assert len(consume(settings, ("transaction-scores",), 3, timeout=60)) == 3

    deadline = time.monotonic() + 30
    expired = 0.0
    while time.monotonic() < deadline and not expired:
        expired = worker.metrics().get('scorestream_expired_keys_total{entity="customer"}', 0.0)
        time.sleep(0.5)
    assert expired == 1.0, "only the customer idle for > 30 days + 1 h expires"
    records = asyncio.run(changelog_records(settings, f"{settings.app_id}-customer-state-changelog"))
    assert (b"idle", None) in records, "its changelog gets a tombstone, so recovery forgets it too"
    assert not any(key == b"busy" and value is None for key, value in records)

    # the idle customer comes back: it starts afresh, and is scored as usual
    asyncio.run(produce_events([tx("a2", "idle", T0 + 31 * DAY + 3 * 3_600_000)], settings))
    scores = consume(settings, ("transaction-scores",), 4, timeout=60)
    back = next(body for _, body in scores if body["event_id"] == "a2")
    assert back["features"]["customer_tx_count_30d"] == 1
    assert back["features"]["seconds_since_last_tx"] == 30 * 86_400.0

