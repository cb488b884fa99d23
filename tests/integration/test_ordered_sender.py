"""The worker's sender against aiokafka's metadata trap, on the real broker.

aiokafka refreshes metadata for the topics its client tracks, or for every topic
while it tracks none, and replaces what it knew with each answer. Faust forces a
refresh while none is tracked (when it declares topics), so the worker's producer
knows every topic it sends to without tracking it. The first send to a topic created
after that refresh tracks that topic alone: the next answer drops every other topic,
and a batch of theirs waiting in the producer's accumulator never learns its leader.
In the trainer-mode benchmark that stalled a worker after 6 183 events, for 20 minutes
(Faust's producer request timeout). :class:`~stream.batching.OrderedSender` tracks
each topic before queuing its first batch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.batching import OrderedSender
from stream.settings import Settings

pytestmark = pytest.mark.integration

ATTEMPTS = 5
DELIVERY_WAIT_S = 5.0
#: A stranded batch fails once this has passed, so the producer can stop.
REQUEST_TIMEOUT_MS = int(DELIVERY_WAIT_S * 1000) + 2000

Send = Callable[[AIOKafkaProducer, str, int], Coroutine[Any, Any, asyncio.Future]]


async def _send_raw(producer: AIOKafkaProducer, topic: str, partition: int) -> asyncio.Future:
    batch = producer.create_batch()
    batch.append(key=b"k", value=b"v" * 1000, timestamp=None)
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition)


def _through(sender: OrderedSender) -> Send:
    async def send(producer: AIOKafkaProducer, topic: str, partition: int) -> asyncio.Future:
        (delivery,) = sender.send({(topic, partition): [(b"k", b"v" * 1000)]})
        return delivery
    return send


async def _stranded_batches(bootstrap: str, via_sender: bool) -> int:
    """Batches to an old topic still undelivered after the first send to a new topic."""
    old, new = f"it-old-{uuid.uuid4().hex[:8]}", f"it-new-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        await admin.create_topics([NewTopic(old, 2, 1)])
        await producer.start()
        await producer.client.force_metadata_update()  # as Faust does after declaring a topic
        assert producer.client.cluster.partitions_for_topic(old) == {0, 1}
        await admin.create_topics([NewTopic(new, 1, 1)])
        send = _through(OrderedSender(lambda: producer)) if via_sender else _send_raw
        # the new topic's metadata request leaves first; the old topic's batches queue behind it
        to_new = asyncio.ensure_future(send(producer, new, 0))
        await asyncio.sleep(0)
        to_old = [await send(producer, old, i % 2) for i in range(4)]
        await (await to_new)
        _, undelivered = await asyncio.wait(to_old, timeout=DELIVERY_WAIT_S)
        await asyncio.wait(to_old)  # a stranded batch fails at the request timeout
        return len(undelivered)
    finally:
        await producer.stop()
        await admin.delete_topics([old, new])
        await admin.close()


def test_the_trap_strands_batches_of_a_raw_producer(broker: Settings) -> None:
    """The scenario is real: without tracking, aiokafka strands the old topic's batches.

    If a future aiokafka refreshes the topics it sends to, this fails, and the tracking in
    OrderedSender may go.
    """
    stranded = []
    while len(stranded) < ATTEMPTS and not any(stranded):
        stranded.append(asyncio.run(_stranded_batches(broker.kafka_bootstrap, via_sender=False)))
    assert any(stranded), f"no batch stranded in {ATTEMPTS} attempts: {stranded}"


def test_ordered_sender_delivers_every_batch(broker: Settings) -> None:
    stranded = [asyncio.run(_stranded_batches(broker.kafka_bootstrap, via_sender=True))
                for _ in range(ATTEMPTS)]
    assert stranded == [0] * ATTEMPTS
