"""The snapshot topic through Kafka: read once at start, and every saved snapshot published to it.

So a worker on a new machine (an empty ``SCORESTREAM_HOME``) starts from the newest
snapshot any process of the app published, rather than from the start of
``training-examples`` (which retention bounds). The record layout is
:mod:`stream.snapshot_records`'.

Snapshots are published only when ``SCORESTREAM_MODEL_KEY`` is set: with the random
key of ``<home>/model.key`` no other machine could verify them, so they would be
25 MB a minute of records nobody may use. The topic is read in any case, so that a
process whose key differs says why it does not use the snapshots there.

Publishing a 25 MB snapshot to a local broker takes about 0.13 s (28 chunks) and
holds the event loop at most a few milliseconds at a time (measured: 2-5 ms, as much
as an idle loop's 2 ms now and then). A process that cannot reach Kafka at start
stops after :data:`READ_TIMEOUT_S` rather than start without a snapshot that may be
there: what retention dropped from ``training-examples`` would be lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from online_models import persistence
from online_models.task_models import CHAMPION, TaskModels
from stream import model_store, topics
from stream.settings import Settings
from stream.snapshot_records import (
    MAX_RECORD_BYTES,
    LogReader,
    Manifest,
    Publication,
    SnapshotLog,
    publication,
)

log = logging.getLogger(__name__)

#: Seconds a worker tries to reach Kafka to read the snapshot topic before it gives up (and stops:
#: starting without a snapshot that may be there could lose what retention dropped).
READ_TIMEOUT_S = 60.0


async def read(settings: Settings, names: Iterable[str], timeout_s: float = READ_TIMEOUT_S) -> SnapshotLog:
    """What the app's snapshot topic holds for the snapshots ``names``, read from its start to its end."""
    topic = topics.snapshot_topic(settings.app_id)
    reader = LogReader(names)
    deadline = time.monotonic() + timeout_s
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 << 20)
        try:
            await consumer.start()
            break
        except KafkaConnectionError as error:
            await consumer.stop()
            if time.monotonic() > deadline:
                msg = (f"cannot read the model snapshot topic {topic} at {settings.kafka_bootstrap} "
                       f"after {timeout_s:g} s ({error}): is Kafka up?")
                raise RuntimeError(msg) from error
            await asyncio.sleep(1.0)
    try:
        if topic not in await consumer.topics():
            return SnapshotLog(topic_exists=False)
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, (await consumer.beginning_offsets([partition]))[partition])
        while await consumer.position(partition) < end:
            if time.monotonic() > deadline:
                msg = f"reading the model snapshot topic {topic} took more than {timeout_s:g} s"
                raise RuntimeError(msg)
            batch = await consumer.getmany(partition, timeout_ms=1000)
            for record in batch.get(partition, []):
                reader.add(record.key, record.value)
        return reader.result()
    finally:
        await consumer.stop()


def read_at_start(settings: Settings, names: Iterable[str]) -> SnapshotLog:
    """:func:`read`, from synchronous code (building the app), on an event loop of its own."""
    names = list(names)
    with ThreadPoolExecutor(1, thread_name_prefix="snapshot-topic") as pool:
        found = pool.submit(asyncio.run, read(settings, names)).result()
    topic = topics.snapshot_topic(settings.app_id)
    if not found.topic_exists:
        log.warning("the model snapshot topic %s does not exist (make it with 'scorestream topics "
                    "create'): models restore from local snapshots only", topic)
    for name, reasons in found.skipped.items():
        for reason in reasons:
            log.warning("passing over a %s snapshot of %s: %s", name, topic, reason)
    return found


class SnapshotPublisher:
    """Publishes snapshot files to the topic; one publish at a time (the caller's lock)."""

    def __init__(self, settings: Settings, superseded: Mapping[str, Iterable[bytes]]) -> None:
        self.settings = settings
        self.topic = topics.snapshot_topic(settings.app_id)
        self._producer: AIOKafkaProducer | None = None
        #: chunk keys to delete once a newer snapshot of the name is on the topic
        self._obsolete = {name: set(keys) for name, keys in superseded.items()}

    async def publish(self, name: str, path: Path) -> Manifest:
        """Send the snapshot in ``path`` as ``name``: chunks, then (all acknowledged) the manifest,
        then tombstones for what it made obsolete.

        Reading and hashing the file (25 MB: tens of milliseconds, without the GIL) runs in a
        thread; the event loop cuts one chunk at a time (a copy of under 1 MB) and hands it to
        the producer, waiting for each to be acknowledged: it never holds more than one.
        """
        return await self.publish_blob(name, await asyncio.to_thread(path.read_bytes))

    async def publish_blob(self, name: str, blob: bytes) -> Manifest:
        """:meth:`publish` a signed snapshot already in memory."""
        key = model_store.signing_key(self.settings)
        publish = await asyncio.to_thread(_publication, blob, key, name, secrets.token_hex(8))
        producer = await self._started()
        obsolete = self._obsolete.setdefault(name, set())
        for chunk_key, chunk in publish.chunks():
            obsolete.add(chunk_key)  # until the manifest is acknowledged, these are litter
            await producer.send_and_wait(self.topic, chunk, key=chunk_key, partition=0)
        manifest_key, manifest = publish.manifest_record
        await producer.send_and_wait(self.topic, manifest, key=manifest_key, partition=0)
        mine = set(publish.manifest.chunk_keys)
        deletes = [await producer.send(self.topic, None, key=k, partition=0) for k in obsolete - mine]
        await asyncio.gather(*deletes)
        self._obsolete[name] = mine
        return publish.manifest

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                        max_request_size=MAX_RECORD_BYTES, linger_ms=0)
            try:
                await producer.start()
            except Exception:
                await producer.stop()  # its half-open connections; the next publish starts anew
                raise
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


def _publication(blob: bytes, key: bytes, name: str, publish_id: str) -> Publication:
    return publication(name, blob, persistence.read_header(blob, key), publish_id)


def publisher(settings: Settings, found: SnapshotLog) -> SnapshotPublisher | None:
    """The app's publisher, or None (with the reason in the log) when snapshots stay local."""
    if not settings.model_key:
        log.warning("model snapshots stay on this machine: SCORESTREAM_MODEL_KEY is not set, so no other"
                    " machine could verify them. Set it to the same secret on every process to publish"
                    " them to %s, from which a worker on a new machine restores.",
                    topics.snapshot_topic(settings.app_id))
        return None
    if not found.topic_exists:
        return None  # said at start
    return SnapshotPublisher(settings, found.superseded)


def load_models(settings: Settings, tasks: Iterable[str],
                holds: str) -> tuple[dict[str, TaskModels], SnapshotPublisher | None]:
    """Every task's models from its newest trusted snapshot, the local one or the topic's (else
    fresh ones), and the publisher of the snapshots to come."""
    names = {task: model_store.snapshot_name(task, holds) for task in tasks}
    found = read_at_start(settings, names.values())
    models = {task: model_store.load_or_create(task, settings, holds, found.snapshots(name))
              for task, name in names.items()}
    return models, publisher(settings, found)


def load_published(settings: Settings, tasks: Iterable[str]) -> dict[str, TaskModels]:
    """Every task's newest models published by ``scorestream trainer`` (else fresh ones, until it
    publishes): what a worker scores with when ``SCORESTREAM_LEARNING=trainer``."""
    names = {task: model_store.published_name(task) for task in tasks}
    found = read_at_start(settings, names.values())
    models = {}
    for task, name in names.items():
        newest = model_store.newest_trusted(task, name, settings, found.snapshots(name))
        if newest is None:
            log.warning("no %s models published by scorestream trainer yet on %s: scoring with new"
                        " models until it publishes", task, topics.snapshot_topic(settings.app_id))
            newest = TaskModels(task, n_trees=settings.arf_trees, champion=settings.champion(task),
                                holds=CHAMPION)
        models[task] = newest
    return models


def trainer_publisher(settings: Settings, tasks: Iterable[str]) -> SnapshotPublisher:
    """The publisher of the models the workers score with; the trainer cannot do without it."""
    names = [model_store.published_name(task) for task in tasks]
    found = read_at_start(settings, names)
    if not found.topic_exists:
        msg = (f"the model snapshot topic {topics.snapshot_topic(settings.app_id)} does not exist, and"
               " the workers receive their models through it: make it with 'scorestream topics create'")
        raise RuntimeError(msg)
    if not settings.model_key:
        log.warning("SCORESTREAM_MODEL_KEY is not set: the models published for the workers are signed"
                    " with the random key in %s/model.key, which only processes sharing this"
                    " SCORESTREAM_HOME have", settings.home)
    return SnapshotPublisher(settings, found.superseded)

