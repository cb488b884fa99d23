"""Following the snapshot topic: a worker that does not learn swaps in each newer snapshot published.

With ``SCORESTREAM_LEARNING=trainer`` one trainer process learns and publishes each
task's champion and anomaly detector to the app's snapshot topic (under the name
``<task>.scoring``, :mod:`stream.snapshot_records`' layout; see :mod:`stream.trainer`);
the scoring workers follow that topic and put each newer snapshot in place of the
models they score with (:func:`add_model_following`).

:class:`SnapshotFollower` is the logic, without Kafka: fed the topic's records in
offset order, it finds the newest whole snapshot of each task strictly newer than
the models in use, verifies it (its signature before anything is unpickled, then
that its header says what its manifest does) and loads it. A snapshot refused is
logged once and passed over for the next one; the worker goes on with what it has.
It holds only what may still become a newer snapshot: a snapshot taken or refused,
older ones, and earlier manifests whose chunks are missing are forgotten at once, with
their chunks, whether or not their tombstones have come. Chunks no manifest names (a
publish under way, or one that crashed) are held until their tombstones, as the
topic holds them (see :meth:`SnapshotFollower.held`).

:func:`follow` is the glue: a consumer of its own on the topic's partition, in the
worker's event loop, for ever. Verifying and loading run in a thread, which spares the
loop the hashing and copying (no GIL held) but not all of the unpickling. Measured on
2 busy cores (Python 3.11), a fraud champion of 10 trees and its detector:

* after 400 examples (0.6 MB, one chunk): 15-25 ms to verify and load, of which the
  loop is held at most 10-13 ms at a time (an idle loop's own jitter: up to 2-4 ms);
  once in a while 70-115 ms, when the objects made trigger a full garbage collection
  of the process (which holds the GIL whatever thread runs it);
* after 30,000 examples (14 MB, 16 chunks): 0.16-0.5 s to load, of which the loop is
  held 20-130 ms at a time, nearly all of it full garbage collections (~100 ms each,
  more in a process with a bigger heap); loaded on the loop it would be held 0.4-0.45 s.

A snapshot swapped in frees the models it replaces on the loop (when ``swap`` drops
them): under a millisecond for the 0.6 MB one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from online_models import persistence
from online_models.task_models import TaskModels
from stream import model_store, topics
from stream.metrics import Metrics
from stream.pipeline import BatchScorer
from stream.settings import Settings
from stream.snapshot_records import LogReader, Manifest, SnapshotLog

log = logging.getLogger(__name__)

#: Newness (training position, version) older than any snapshot's.
NEVER = (-1, -1)
#: Refused manifests remembered, so that one read again is neither verified nor reported again.
REMEMBERED_REFUSALS = 64
#: Seconds between two attempts to reach Kafka, or to find the snapshot topic.
RETRY_S = 5.0
#: Largest fetch from the snapshot topic's partition: several of its chunks (each under 1 MB).
FETCH_BYTES = 8 << 20

Newness = tuple[int, int]


@dataclass(frozen=True)
class Offer:
    """A whole snapshot of a task newer than its models in use; not yet verified."""

    task: str
    manifest: Manifest
    blob: bytes


@dataclass(frozen=True)
class Swap:
    """Verified models to put in place of a task's, and the seconds verifying and loading took."""

    task: str
    models: TaskModels
    manifest: Manifest
    seconds: float


def verified_models(offer: Offer, key: bytes) -> TaskModels:
    """The offer's models, if its signature holds and its header says what its manifest does.

    The header is checked (signature verified, nothing unpickled) before the models are
    loaded, as at start (``model_store.restore_newest``): a signed snapshot of another
    task or another position is not taken for the one named. Raises
    :class:`~online_models.persistence.SnapshotError`.
    """
    header = persistence.read_header(offer.blob, key)
    if header["task"] != offer.task or (header["position"], header["version"]) != offer.manifest.newness:
        msg = "its header does not match its manifest (task, position or version)"
        raise persistence.SnapshotError(msg)
    return persistence.load(offer.blob, key, task=offer.task)


class SnapshotFollower:
    """The newest trusted snapshot of each task, from the snapshot topic's records as they come.

    ``names`` maps each task to its snapshot's name (``model_store.snapshot_name``). Feed
    records with :meth:`add`; :meth:`take` then gives the models to swap in, each snapshot
    at most once and never one older than a snapshot taken or than the models in use.
    """

    def __init__(self, names: Mapping[str, str], source: str = "the snapshot topic") -> None:
        self.names = dict(names)
        self.source = source
        self._followed = set(self.names.values())
        self._reader = LogReader(self._followed)
        self._taken: dict[str, Newness] = {}  # per name, the newness of the last snapshot taken
        self._last: dict[str, Manifest | None] = {}  # per name, the last manifest written
        self._refused: OrderedDict[Manifest, None] = OrderedDict()

    def add(self, key: bytes | None, value: bytes | None) -> None:
        """Read the topic's next record (offset order); a tombstone's value is None."""
        self._reader.add(key, value)
        name = key.decode(errors="replace") if key is not None else None
        if name in self._followed:
            self._last[name] = _manifest_or_none(name, value)

    def offers(self, newness: Mapping[str, Newness]) -> list[Offer]:
        """For each task, the newest whole snapshot strictly newer than ``newness[task]`` (the
        models in use) and than the last taken, not refused; assembled, not yet verified.

        What can never be offered any more is forgotten here: manifests no newer than that,
        refused ones, and those whose chunks are missing unless it is the name's last
        manifest (a publisher sends the chunks first: the chunks of an earlier one are not
        coming). So the follower holds at most, per name, the snapshots offered and not yet
        taken or refused, and the last manifest written.
        """
        found = self._reader.result()
        offers = []
        for task, name in self.names.items():
            floor = max(self._taken.get(name, NEVER), newness.get(task, NEVER))
            offer = self._newest(task, name, found, floor)
            if offer is not None:
                offers.append(offer)
            whole = {candidate.manifest for candidate in found.candidates.get(name, [])}
            last = self._last.get(name)
            self._reader.forget(name, lambda m, floor=floor, whole=whole, last=last: (
                m.newness > floor and m not in self._refused and (m in whole or m == last)))
        return offers

    def _newest(self, task: str, name: str, found: SnapshotLog, floor: Newness) -> Offer | None:
        for candidate in found.candidates.get(name, []):  # newest first
            if candidate.manifest.newness <= floor:
                return None
            if candidate.manifest in self._refused:
                continue
            try:
                return Offer(task, candidate.manifest, candidate.assemble())
            except persistence.SnapshotError as error:
                self._remember_refused(name, candidate.manifest, error.detail)
        return None

    def accept(self, offer: Offer) -> None:
        """The offer's models are in use: nothing as old will be offered again."""
        name = self.names[offer.task]
        self._taken[name] = max(self._taken.get(name, NEVER), offer.manifest.newness)
        taken = self._taken[name]
        self._reader.forget(name, lambda manifest: manifest.newness > taken)

    def refuse(self, offer: Offer, reason: str) -> None:
        """The offer failed verification: logged, and never offered again."""
        name = self.names[offer.task]
        self._remember_refused(name, offer.manifest, reason)
        self._reader.forget(name, lambda manifest: manifest != offer.manifest)

    def _remember_refused(self, name: str, manifest: Manifest, reason: str) -> None:
        if manifest in self._refused:
            return
        self._refused[manifest] = None
        while len(self._refused) > REMEMBERED_REFUSALS:
            self._refused.popitem(last=False)
        log.error("refusing the %s snapshot v%d (training position %d) of %s: %s. Processes trust each"
                  " other's snapshots only if SCORESTREAM_MODEL_KEY is the same secret on all of them."
                  " The models in use are kept.", name, manifest.version, manifest.position,
                  self.source, reason)

    def take(self, newness: Mapping[str, Newness], key: bytes) -> list[Swap]:
        """The verified models of each task's newest trusted snapshot newer than ``newness``.

        A refused snapshot is passed over for the next newest (still newer than the models
        in use). Verifying and loading a big snapshot takes a while: call it in a thread.
        """
        swaps = []
        while offers := self.offers(newness):
            for offer in offers:
                started = time.perf_counter()
                try:
                    models = verified_models(offer, key)
                except persistence.SnapshotError as error:
                    self.refuse(offer, error.detail)
                    continue
                except Exception as error:  # signed by us, yet not loadable here (another version?)
                    log.exception("cannot load the %s snapshot v%d", offer.task, offer.manifest.version)
                    self.refuse(offer, f"it does not load: {error!r}")
                    continue
                self.accept(offer)
                swaps.append(Swap(offer.task, models, offer.manifest, time.perf_counter() - started))
        return swaps

    def held(self) -> tuple[int, int, int]:
        """Manifests, chunks and bytes of chunks held (refusals remembered are at most
        :data:`REMEMBERED_REFUSALS`): what the follower's memory grows with."""
        return self._reader.held()


def _manifest_or_none(name: str, value: bytes | None) -> Manifest | None:
    if value is None:
        return None
    try:
        return Manifest.decode(name, value)
    except ValueError:
        return None


Swapper = Callable[[str, TaskModels], None]
SwapCounter = Callable[[str, TaskModels, float], None]


async def follow(settings: Settings, names: Mapping[str, str], newness: Callable[[str], Newness],
                 swap: Swapper, *, on_swap: SwapCounter | None = None,
                 poll_timeout_s: float = 1.0, retry_s: float = RETRY_S) -> None:
    """Follow the app's snapshot topic for ever, calling ``swap(task, models)`` with each newer
    verified snapshot's models (``names``: task → snapshot name; ``newness(task)``: the
    position and version of the models in use).

    ``on_swap(task, models, seconds)`` is then called too, ``seconds`` being how long
    verifying and loading took (in a thread): to count swaps and show the training
    position of the models in use. The topic is read from its start (it is compacted and
    small; the snapshots already in use are not loaded again); nothing is taken before the
    records there at start are read, so a worker catching up loads one snapshot, not each
    one in turn. A missing topic is waited for, an unreachable Kafka retried, every
    ``retry_s``; cancelling stops the consumer. An exception of ``swap`` or ``on_swap`` ends
    the following.
    """
    follower = _Following(settings, SnapshotFollower(names, topics.snapshot_topic(settings.app_id)),
                          newness, swap, on_swap)
    await follower.run(poll_timeout_s, retry_s)


class _Following:
    """:func:`follow`'s state: where it is in the topic, across consumers (after a Kafka error)."""

    def __init__(self, settings: Settings, follower: SnapshotFollower, newness: Callable[[str], Newness],
                 swap: Swapper, on_swap: SwapCounter | None) -> None:
        self.settings = settings
        self.topic = topics.snapshot_topic(settings.app_id)
        self.follower = follower
        self.newness = newness
        self.swap = swap
        self.on_swap = on_swap
        self.key = model_store.signing_key(settings)
        self.next_offset: int | None = None  # where the next consumer starts; None: not yet read
        self.unread = False  # whether records were read since snapshots were last taken

    async def run(self, poll_timeout_s: float, retry_s: float) -> None:
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        max_partition_fetch_bytes=FETCH_BYTES)
            try:
                await consumer.start()
                partition = await self._assigned(consumer, retry_s)
                await self._seek(consumer, partition)
                await self._tail(consumer, partition, poll_timeout_s)
            except KafkaError as error:  # aiokafka reconnects by itself; this is what it gave up on
                log.warning("following %s at %s: %s; trying again in %g s", self.topic,
                            self.settings.kafka_bootstrap, error, retry_s)
                await asyncio.sleep(retry_s)
            finally:
                await consumer.stop()

    async def _assigned(self, consumer: AIOKafkaConsumer, retry_s: float) -> TopicPartition:
        """The topic's partition, once the topic exists."""
        said = False
        while self.topic not in await consumer.topics():
            if not said:
                log.warning("the model snapshot topic %s does not exist (make it with 'scorestream topics"
                            " create'): the models in use are kept; looking again every %g s",
                            self.topic, retry_s)
                said = True
            await asyncio.sleep(retry_s)
        if said:
            log.info("the model snapshot topic %s now exists: following it", self.topic)
        partition = TopicPartition(self.topic, 0)
        consumer.assign([partition])
        return partition

    async def _seek(self, consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
        if self.next_offset is not None:
            consumer.seek(partition, self.next_offset)  # a consumer anew, after an error
        else:
            await consumer.seek_to_beginning(partition)

    async def _tail(self, consumer: AIOKafkaConsumer, partition: TopicPartition,
                    poll_timeout_s: float) -> None:
        """Read on for ever; take the newer snapshots once what was there at start is read."""
        end = (await consumer.end_offsets([partition]))[partition]
        while True:
            batch = await consumer.getmany(partition, timeout_ms=int(poll_timeout_s * 1000))
            for record in batch.get(partition, []):
                self.follower.add(record.key, record.value)
                self.unread = True
            self.next_offset = await consumer.position(partition)
            if self.unread and self.next_offset >= end:
                await self._take()
                self.unread = False

    async def _take(self) -> None:
        newness = {task: self.newness(task) for task in self.follower.names}
        for swap in await asyncio.to_thread(self.follower.take, newness, self.key):
            self.swap(swap.task, swap.models)
            log.info("swapped in the %s models v%d at training position %d from %s (loaded in %.3f s)",
                     swap.task, swap.models.version, swap.models.position, self.topic, swap.seconds)
            if self.on_swap is not None:
                self.on_swap(swap.task, swap.models, swap.seconds)


def add_model_following(app: faust.App, settings: Settings, metrics: Metrics,
                        scorers: Mapping[str, BatchScorer]) -> None:
    """A worker's side: swap in each newer model the trainer publishes, between two batches."""
    for task, scorer in scorers.items():
        metrics.model_training_position.labels(task=task).set(scorer.models.position)

    def newness(task: str) -> tuple[int, int]:
        models = scorers[task].models
        return models.position, models.version

    def swap(task: str, models: TaskModels) -> None:
        scorers[task].models = models  # batches are handled whole on this loop: never half-swapped

    def count(task: str, models: TaskModels, seconds: float) -> None:
        metrics.model_swaps.labels(task=task).inc()
        metrics.model_training_position.labels(task=task).set(models.position)

    @app.task
    async def follow_trainer() -> None:
        names = {task: model_store.published_name(task) for task in scorers}
        await follow(settings, names, newness, swap, on_swap=count)
