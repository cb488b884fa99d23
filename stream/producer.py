"""Sending events to Kafka: an event file, or the simulator's stream, optionally paced.

Each event goes to the topic its ``"topic"`` field names, keyed by its entity
(:data:`stream.topics.KEY_FIELD`), with the event's ``ts`` as the record's Kafka
timestamp. The ``"topic"`` field itself is not part of the record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer

from stream.events import InvalidEvent, parse_ts
from stream.settings import Settings
from stream.topics import KEY_FIELD

#: Futures awaited at once: bounds memory while keeping the producer's batches full.
_WINDOW = 5_000


@dataclass
class ProduceReport:
    sent: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def __str__(self) -> str:
        rate = self.total / self.seconds if self.seconds else 0.0
        per_topic = ", ".join(f"{t}={n}" for t, n in sorted(self.sent.items()))
        return (f"sent {self.total} events in {self.seconds:.1f} s ({rate:,.0f}/s): {per_topic}"
                f"; skipped {self.skipped}")


def to_record(event: dict) -> tuple[str, bytes | None, bytes, int | None]:
    """(topic, key, value, timestamp ms) for one event of an event file.

    >>> to_record({"topic": "transactions", "customer_id": "c1", "ts": 1767225600000})
    ('transactions', b'c1', b'{"customer_id":"c1","ts":1767225600000}', 1767225600000)
    """
    body = dict(event)
    topic = body.pop("topic", None)
    if not isinstance(topic, str) or not topic:
        msg = "event has no 'topic' field"
        raise ValueError(msg)
    key = body.get(KEY_FIELD.get(topic, ""))
    try:
        timestamp = parse_ts(body.get("ts"))
    except InvalidEvent:
        timestamp = None  # an invalid ts is the worker's to dead-letter, not ours to fix
    key_bytes = str(key).encode() if key is not None else None
    return topic, key_bytes, orjson.dumps(body), timestamp


def read_event_lines(path: str) -> Iterable[dict | None]:
    """Events of an event file; ``None`` for a line that is not a JSON object."""
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None
                continue
            yield event if isinstance(event, dict) else None


async def produce_events(events: Iterable[dict | None], settings: Settings,
                         rate: float | None = None) -> ProduceReport:
    """Send events in order; ``rate`` in events per second (None: as fast as possible)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5,
                                max_batch_size=256 * 1024, acks="all",
                                enable_idempotence=True)
    await producer.start()
    report = ProduceReport()
    start = time.monotonic()
    pending: list[asyncio.Future] = []
    try:
        for index, event in enumerate(events):
            try:
                topic, key, value, timestamp = to_record(event or {})
            except ValueError:
                report.skipped += 1
                continue
            pending.append(await producer.send(topic, value, key=key, timestamp_ms=timestamp))
            report.sent[topic] = report.sent.get(topic, 0) + 1
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
            if rate:
                ahead = start + (index + 1) / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    report.seconds = time.monotonic() - start
    return report
