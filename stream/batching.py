"""Input records reach the pure core in batches, inside Faust's own consumer.

Faust's fetch loop turns every fetched record into a ``Message`` and walks it
through the conductor, a channel, the agent's stream and ``take()``: about
150 µs of Faust's own work per record, 25× what features and model cost
(``bench/README.md``). This module changes *one method* of Faust's aiokafka
consumer, the fetch loop ``_drain_messages``: records of a topic that has a
**batch handler** go, as fetched, straight to that handler; records of every
other topic (table changelogs during recovery, agents' topics) still take Faust's
per-message path. Faust keeps everything else: the app, the consumer group and
its assignor (tables co-partitioned with their input topics), table recovery,
the periodic offset commit and the commit on rebalance, the web server, the CLI.

A handler returns a :class:`Delivery`: the records to produce (scores, alerts,
dead letters, join snapshots) and the state changelog records, each grouped by
(topic, partition). They go out with ``send_batch`` on the app's own producer,
one batch per partition, never reordered within a partition (a table's
changelog must end on the newest state of a key). A batch's state records are
sent only once Kafka acknowledged its outputs *and* the previous batch's state (batches
queued meanwhile go out together, :class:`StateWriter`):
a state recovered after a crash then never includes an event whose score was
lost, so a replayed event is scored from the state it was first scored with.
Only once Kafka acknowledged all of a batch do its input offsets become
committable, in fetch order: **at-least-once**. A batch Kafka refuses crashes
the worker; on restart its records are read again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stream.pipeline import InputRecord

log = logging.getLogger(__name__)

#: Batches sent but not acknowledged yet before the fetch loop waits for the oldest. With 4, at
#: 2 000 events/s the loop waited on acknowledgements ~60 % of the time, fetching every ~13 ms;
#: with 16 (and :class:`StateWriter`) under 5 %. Each is at most ``SCORESTREAM_BATCH_SIZE`` events:
#: what a crash can leave to be scored again beyond the last commit.
MAX_IN_FLIGHT = 16
#: How long the broker may hold a fetch that finds nothing new (Faust's own: 1500 ms, no setting).
#: aiokafka keeps one fetch in flight per broker, and leaves out of it the partitions whose
#: fetched records were not taken within 100 ms (``prefetch_backoff``): after any pause of the
#: loop that long, its next fetch may name only partitions no record comes to (Faust's
#: ``__assignor-__leader``, say), and all the input partitions then wait for the broker to give
#: up on it. The price of a shorter wait: an idle worker sends ~10 empty fetches a second.
FETCH_MAX_WAIT_MS = 100
#: Records of one topic waiting for their prepare step (:class:`Preparations`) before the fetch
#: loop waits for them too: with a quiet label wait (``SCORESTREAM_TERMINAL_LABEL_WAIT_S``) of
#: seconds, what arrives meanwhile (10 s of transactions at 5 000/s; ~15 MB held).
MAX_PREPARING_RECORDS = 50_000

Key = bytes | None
#: (topic, partition) → the records to produce there, in order
Records = dict[tuple[str, int], list[tuple[Key, bytes | None]]]


@dataclass
class Delivery:
    """What handling a batch produced: records to send, and what to do once Kafka has them all."""

    records: Records = field(default_factory=dict)
    #: the tables' changelog records, sent once Kafka has ``records``
    state: Records = field(default_factory=dict)
    #: called with the time the batch was fetched (``time.monotonic()``), once acknowledged
    on_acknowledged: Callable[[float], None] = lambda fetched_at: None


#: Told how long the fetch loop waited, and on what (:func:`use_batch_consumer`).
WaitObserver = Callable[[str, float], None]
#: What the fetch loop waits on: records from the broker, acknowledgements of a full window, or
#: the preparation of a topic's oldest batch when too many of its records wait (:class:`Preparations`).
WAIT_CAUSES = ("records", "acknowledgements", "preparation")
#: A batch handler: the records of one input topic, fetched together, in partition order.
Handler = Callable[[list[InputRecord]], Delivery]
#: Awaited with a batch before it is handled (to wait for what the handler needs to know);
#: what it returns is handed to the handler as ``prepared=``.
Prepare = Callable[[list[InputRecord]], Awaitable[Any]]


class Outgoing:
    """Records to produce, grouped by (topic, partition) as ``send_batch`` needs them.

    A keyed record goes where Kafka's default partitioner (murmur2, as the Java
    client's and Faust's) puts its key, so readers keyed by the same field meet it.

    >>> out = Outgoing(partitions=4)
    >>> out.add("scores", 2, b"k", b"v")
    >>> out.add_keyed("scores", b"c1", b"w")
    >>> sorted(out.records)
    [('scores', 2), ('scores', 3)]
    """

    _partitioner = DefaultPartitioner()

    def __init__(self, partitions: int) -> None:
        self.partitions = list(range(partitions))
        self.records: Records = {}
        self._partition_of: dict[bytes, int] = {}

    def add(self, topic: str, partition: int, key: Key, value: bytes | None) -> None:
        self.records.setdefault((topic, partition), []).append((key, value))

    def add_keyed(self, topic: str, key: Key, value: bytes) -> None:
        """Add a record to the partition of its key (partition 0 without a key)."""
        partition = 0 if key is None else self.partition_of(key)
        self.add(topic, partition, key, value)

    def partition_of(self, key: bytes) -> int:
        cached = self._partition_of.get(key)
        if cached is None:
            if len(self._partition_of) > 100_000:  # keys repeat; bound the cache anyway
                self._partition_of.clear()
            cached = self._partition_of[key] = self._partitioner(key, self.partitions, self.partitions)
        return cached

    def take(self) -> Records:
        records, self.records = self.records, {}
        return records


class OrderedSender:
    """Sends record batches with ``send_batch``, each partition's batches in the order given.

    ``send_batch`` waits while its partition already has a batch queued; several
    such waits on one partition may resume in any order. So each partition's next
    batch is queued only after the previous one was.

    Every topic is added to the producer's tracked topics before its first batch is
    queued. aiokafka asks the broker for the tracked topics only, or for all of them
    while it tracks none (Faust forces that when it declares topics), and forgets the
    partitions of every topic a response leaves out. An untracked topic's batch waiting
    in the accumulator when the first tracked topic is added then never learns its
    leader: its partition stalls (for Faust's producer, 20 minutes), and with it every
    batch in flight (``tests/integration/test_ordered_sender.py``).
    """

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer  # returns the AIOKafkaProducer once it is started
        self._queued: dict[tuple[str, int], asyncio.Future] = {}
        self._tracked: set[str] = set()

    def send(self, records: Records) -> list[asyncio.Future]:
        """Queue every record; one future per Kafka batch, done when Kafka acknowledged it."""
        producer = self._producer()
        futures = []
        for (topic, partition), items in records.items():
            if topic not in self._tracked:
                producer.client.add_topic(topic)  # refreshes its metadata in the background
                self._tracked.add(topic)
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    futures.append(self._chain(producer, batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(self._chain(producer, batch, topic, partition))
        return futures

    def _chain(self, producer: Any, batch: Any, topic: str, partition: int) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        previous = self._queued.get((topic, partition))
        queued = self._queued[(topic, partition)] = loop.create_future()
        return loop.create_task(_send(producer, batch, topic, partition, previous, queued))


async def _send(producer: Any, batch: Any, topic: str, partition: int,
                previous: asyncio.Future | None, queued: asyncio.Future) -> Any:
    try:
        if previous is not None:
            await asyncio.wait([previous])
        batch.close()
        delivery = await producer.send_batch(batch, topic, partition=partition)
    finally:
        if not queued.done():
            queued.set_result(None)
    return await delivery


def add_batch_handler(app: faust.App, topic: faust.TopicT, handler: Handler,
                      prepare: Prepare | None = None) -> None:
    """Have ``handler`` take ``topic``'s records in batches (the app must use :class:`Transport`).

    The topic is subscribed as an agent's would be (so its partitions, and the
    tables co-partitioned with it, are assigned to this worker), but its records
    never enter a Faust stream. ``prepare``, if given, is started with each batch, and
    ``handler`` gets the batch and, as ``prepared=``, what it returned, in fetch order; meanwhile
    the fetch loop goes on and other topics' batches are handled (:class:`Preparations`). A
    rebalance or a stop meanwhile drops the batches not handled yet (they are read again).
    """
    handlers(app)[topic.get_topic_name()] = _Registered(handler, prepare)
    topic.__aiter__()  # what ``async for`` in an agent does: the conductor subscribes to it


@dataclass(frozen=True)
class _Registered:
    handler: Handler
    prepare: Prepare | None


def handlers(app: faust.App) -> dict[str, _Registered]:
    if not hasattr(app, "batch_handlers"):
        app.batch_handlers = {}
    return app.batch_handlers


@dataclass
class _Fetched:
    """A fetched batch of one topic, before its handler runs."""

    handler: Handler
    records: list[InputRecord]
    parts: list[tuple[TP, list[Any]]]
    generation: int
    fetched_at: float


class Preparations:
    """Batches waiting for their prepare step, handed on in fetch order, each topic on its own.

    A batch whose prepare step waits (the fraud task's, for the terminal view) holds up only the
    later batches of its own topic: the fetch loop goes on fetching, and other topics' batches are
    handled meanwhile. ``submit(batch, prepared)`` is called once a batch and every earlier batch
    of its topic are prepared. A failed (or cancelled) prepare step or handler calls ``fail`` and
    drops the rest; :meth:`cancel_all` drops them silently. Nothing after a dropped batch is
    handed on, so no offset is committed past it: its records are read again.

    >>> async def demo():
    ...     handed = []
    ...     preparations = Preparations(lambda batch, prepared: handed.append(prepared), print)
    ...     slow, fast = asyncio.get_running_loop().create_future(), asyncio.sleep(0, "second")
    ...     preparations.add("tx", slow, "batch 1"); preparations.add("tx", fast, "batch 2")
    ...     await asyncio.sleep(0.01)
    ...     before = list(handed)
    ...     slow.set_result("first"); await asyncio.sleep(0)
    ...     return before, handed
    >>> asyncio.run(demo())
    ([], ['first', 'second'])
    """

    def __init__(self, submit: Callable[[Any, Any], None], fail: Callable[[BaseException], None]) -> None:
        self._submit, self._fail = submit, fail
        self._queues: dict[str, deque[tuple[asyncio.Future, Any, int]]] = {}
        self._sizes: dict[str, int] = {}

    def add(self, topic: str, prepare: Awaitable[Any], batch: Any, size: int = 1) -> None:
        """Start preparing ``batch`` (of ``size`` records); it is handed on after the earlier
        batches of ``topic``."""
        future = asyncio.ensure_future(prepare)
        queue = self._queues.setdefault(topic, deque())
        queue.append((future, batch, size))
        self._sizes[topic] = self._sizes.get(topic, 0) + size
        future.add_done_callback(lambda _: self._hand_on(topic))

    def waiting(self, topic: str) -> int:
        """How many of the topic's records (batches, if added without a size) are not handed on yet."""
        return self._sizes.get(topic, 0)

    async def wait_below(self, topic: str, limit: int) -> None:
        """Wait until at most ``limit`` of the topic's records are not handed on."""
        queue = self._queues.get(topic)
        while queue and self.waiting(topic) > limit:
            await asyncio.wait([queue[0][0]])
            self._hand_on(topic)

    def cancel_all(self) -> int:
        """Drop every batch not handed on yet (a rebalance, a stop); how many were dropped."""
        dropped = 0
        for topic, queue in self._queues.items():
            while queue:
                future, _, _ = queue.popleft()
                future.cancel()
                dropped += 1
            self._sizes[topic] = 0
        return dropped

    def _hand_on(self, topic: str) -> None:
        queue = self._queues[topic]
        while queue and queue[0][0].done():
            future, batch, size = queue.popleft()
            self._sizes[topic] -= size
            # cancel_all takes its batches out before cancelling them: one cancelled here was not
            # dropped on purpose, and handing on the next would commit past its records
            error: BaseException | None = (RuntimeError("a batch's prepare step was cancelled")
                                           if future.cancelled() else future.exception())
            if error is None:
                try:
                    self._submit(batch, future.result())
                    continue
                except Exception as exc:  # the handler's: the worker stops, the batch is read again
                    error = exc
            self.cancel_all()
            self._fail(error)
            return


@dataclass
class _InFlight:
    """One handled batch whose records are on their way to Kafka."""

    done: asyncio.Future
    offsets: dict[TP, int]
    generation: int
    delivery: Delivery
    fetched_at: float


class StateWriter:
    """Sends batches' state records in batch order, each once Kafka has its outputs: group commit.

    A batch's state waits for its own outputs and for every earlier batch's state. Sent one
    batch at a time, that chain costs a produce round trip per batch, and the fetch loop, holding
    at most :data:`MAX_IN_FLIGHT` batches, ends up waiting on it (at 2 000 events/s it waited
    60 % of the time, and each event ~10 ms). So while one write is on its way, the states of
    the batches behind it queue; the next write takes all those whose outputs are acknowledged,
    in order, as one set of record batches, each key's newest state once (what a compacted
    changelog keeps anyway). The guarantee is unchanged: a state in Kafka never includes an
    event whose outputs are not.

    A batch whose outputs fail fails, and so does every batch after it (they are never committed).
    """

    def __init__(self, sender: OrderedSender) -> None:
        self.sender = sender
        self._waiting: deque[tuple[asyncio.Future, Records, asyncio.Future]] = deque()
        self._writing: asyncio.Task | None = None
        self._failed: BaseException | None = None

    def add(self, outputs: asyncio.Future, state: Records) -> asyncio.Future:
        """Queue a batch's state; the future is done once Kafka has it (and its outputs)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((outputs, state, done))
        outputs.add_done_callback(lambda _: self._write_next())
        self._write_next()
        return done

    def _write_next(self) -> None:
        if self._writing is not None:
            return  # its end writes what queued meanwhile
        group: list[tuple[asyncio.Future, Records, asyncio.Future]] = []
        while self._waiting and self._waiting[0][0].done():
            outputs, state, done = self._waiting.popleft()
            error = self._failed or _failure(outputs)
            if error is not None:
                self._failed = self._failed or RuntimeError("an earlier batch was not acknowledged")
                self._fail([(outputs, state, done)], error)
                continue
            group.append((outputs, state, done))
        if group:
            self._writing = asyncio.ensure_future(self._write(group))

    async def _write(self, group: list[tuple[asyncio.Future, Records, asyncio.Future]]) -> None:
        try:
            await asyncio.gather(*self.sender.send(merge_states([state for _, state, _ in group])))
        except BaseException as error:
            self._failed = RuntimeError("an earlier batch was not acknowledged")
            self._fail(group, error)
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            for _, _, done in group:
                if not done.done():
                    done.set_result(None)
        finally:
            self._writing = None
            self._write_next()

    @staticmethod
    def _fail(group: list[tuple[asyncio.Future, Records, asyncio.Future]], error: BaseException) -> None:
        for _, _, done in group:
            if not done.done():
                done.set_exception(error)


def _failure(future: asyncio.Future) -> BaseException | None:
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


def merge_states(states: list[Records]) -> Records:
    """Several batches' state records as one, in order, each key's newest value only.

    >>> merge_states([{("t", 0): [(b"a", b"1"), (b"b", b"1")]}, {("t", 0): [(b"a", b"2")]}])
    {('t', 0): [(b'b', b'1'), (b'a', b'2')]}
    """
    if len(states) == 1:
        return states[0]
    newest: dict[tuple[str, int], dict[Key, bytes | None]] = {}
    for state in states:
        for tp, items in state.items():
            values = newest.setdefault(tp, {})
            for key, value in items:
                values.pop(key, None)  # re-inserted last: the order of the newest writes
                values[key] = value
    return {tp: list(values.items()) for tp, values in newest.items()}


def _ignore_wait(cause: str, seconds: float) -> None:
    pass


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands batch-handled topics' records over in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._committable: dict[TP, int] = {}  # next offset to read, once all before it are acknowledged
        self._in_flight: deque[_InFlight] = deque()
        self._state_writer: StateWriter | None = None  # made with the first batch: the producer is up
        self._preparations = Preparations(self._submit_prepared, self._crash_soon)
        self._seek_needed = False  # a prepared batch came after a rebalance began: read again

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in a worker
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        batch_handlers = handlers(self.app)
        on_wait = getattr(self.app, "batch_loop_waits", None) or _ignore_wait
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                await self.sleep(0)
                began = time.monotonic()
                records, active = await self._wait_next_records(1.0)
                on_wait("records", time.monotonic() - began)
                # read *after* fetching, as Faust's own loop does: records handed out are past
                # any seek a rebalance made (aiokafka drops what it fetched before a seek), and
                # dropping them now would lose them; above all a table changelog's records,
                # which recovery waits for and which no seek to committed offsets reads again
                generation = self.app.consumer_generation_id
                if records is None or self.should_stop:
                    continue
                if not self.flow_active or self._seek_needed:
                    self._seek_needed = False
                    await self.perform_seek()
                    continue
                if not records:
                    await self._wait_in_flight(0)  # idle: let acknowledgements (and commits) catch up
                    continue
                fetched_at = time.monotonic()
                by_topic: dict[str, list[tuple[TP, list[Any]]]] = {}
                for tp, batch in records.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    if tp.topic in batch_handlers:
                        by_topic.setdefault(tp.topic, []).append((tp, batch))
                    else:
                        await self._per_message(tp, batch, generation)
                for topic, parts in by_topic.items():
                    registered = batch_handlers[topic]
                    batch = [InputRecord(r.value, r.key, tp.partition, r.offset)
                             for tp, records in parts for r in records]
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        await self.perform_seek()  # a rebalance started: the rest is read again
                        break
                    if registered.prepare is None:
                        self._submit(registered.handler, batch, parts, generation, fetched_at)
                    else:  # handled once prepared, without holding up the loop
                        fetched = _Fetched(registered.handler, batch, parts, generation, fetched_at)
                        self._preparations.add(topic, registered.prepare(batch), fetched, len(batch))
                        if self._preparations.waiting(topic) > MAX_PREPARING_RECORDS:
                            began = time.monotonic()
                            await self._preparations.wait_below(topic, MAX_PREPARING_RECORDS)
                            on_wait("preparation", time.monotonic() - began)
                    if len(self._in_flight) > MAX_IN_FLIGHT:
                        began = time.monotonic()
                        await self._wait_in_flight(MAX_IN_FLIGHT)
                        on_wait("acknowledgements", time.monotonic() - began)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _per_message(self, tp: TP, batch: list[Any], generation: int) -> None:
        """Faust's own path, for topics without a batch handler."""
        callback = self.callback
        for record in batch:
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return
            message = self._to_message(tp, record)
            read_offset = self._read_offset[tp]
            if read_offset is None or message.offset >= read_offset:
                await self.wait_first(callback(message), self.suspend_flow.wait())
                self._read_offset[tp] = message.offset

    def _submit_prepared(self, fetched: _Fetched, prepared: Any) -> None:
        if not self.flow_active or self.app.consumer_generation_id != fetched.generation:
            self._preparations.cancel_all()  # a rebalance started: read them again
            self._seek_needed = True
            return
        self._submit(functools.partial(fetched.handler, prepared=prepared), fetched.records, fetched.parts,
                     fetched.generation, fetched.fetched_at)

    def _crash_soon(self, error: BaseException) -> None:
        log.error("preparing or handling a batch failed: %r", error)
        asyncio.ensure_future(self.crash(error))

    def _submit(self, handler: Handler, records: list[InputRecord], parts: list[tuple[TP, list[Any]]],
                generation: int, fetched_at: float) -> None:
        inbound = getattr(self.app.monitor, "stream_inbound_time", None)
        for tp, batch in parts:
            self._read_offset[tp] = batch[-1].offset
            if inbound is not None:  # what a stream would note: Faust's stall check reads it
                inbound[tp] = time.monotonic()
        delivery = handler(records)
        if self._state_writer is None:
            self._state_writer = StateWriter(OrderedSender(self.app.producer._ensure_producer))
        outputs = asyncio.gather(*self._state_writer.sender.send(delivery.records))
        done = self._state_writer.add(outputs, delivery.state)
        offsets = {tp: batch[-1].offset + 1 for tp, batch in parts}
        self._in_flight.append(_InFlight(done, offsets, generation, delivery, fetched_at))
        done.add_done_callback(self._on_flight_done)

    def _on_flight_done(self, _: asyncio.Future) -> None:
        """Make acknowledged batches' offsets committable, oldest first."""
        while self._in_flight and self._in_flight[0].done.done():
            flight = self._in_flight.popleft()
            error = None if flight.done.cancelled() else flight.done.exception()
            if flight.done.cancelled() or error is not None:
                # never commit past it: the worker stops, and its successor reads it again
                log.error("Kafka did not acknowledge a batch: %r", error)
                self._in_flight.clear()
                asyncio.ensure_future(self.crash(error or RuntimeError("send cancelled")))
                return
            if flight.generation == self.app.consumer_generation_id:
                for tp, offset in flight.offsets.items():
                    if offset > self._committable.get(tp, -1):
                        self._committable[tp] = offset
            flight.delivery.on_acknowledged(flight.fetched_at)

    async def _wait_in_flight(self, limit: int) -> None:
        """Wait until at most ``limit`` batches are in flight."""
        while len(self._in_flight) > limit:
            head = self._in_flight[0]
            await asyncio.wait([head.done])  # yields even when already done, unlike ``await``
            self._on_flight_done(head.done)

    # Faust's commit machinery, fed with the offsets above -------------------------------------
    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        theirs = set(super()._filter_tps_with_pending_acks(topics))
        ours = {tp for tp in self._committable if topics is None or tp in topics or tp.topic in topics}
        return iter(theirs | ours)

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in handlers(self.app):
            return self._committable.get(tp)
        return super()._new_offset(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # finish and commit what is in flight before giving partitions up (Faust itself
        # forgets the acknowledgements of revoked partitions before its own commit); batches still
        # being prepared are read again
        self._preparations.cancel_all()
        try:
            await self._wait_in_flight(0)
            await self.commit()
        except Exception as exc:  # a failed commit only means those records are read again
            log.warning("commit before revoke failed: %r", exc)
        for tp in revoked:
            self._committable.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def wait_empty(self) -> None:
        self._preparations.cancel_all()  # not handled: read again after the restart
        await self._wait_in_flight(0)
        await super().wait_empty()


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with fetches the broker holds at most :data:`FETCH_MAX_WAIT_MS`."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when it starts (its fetcher)
        return consumer


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the batch-handing :class:`Consumer`."""

    Consumer = Consumer


def use_batch_consumer(app: faust.App, on_wait: WaitObserver | None = None) -> None:
    """Make ``app`` consume with :class:`Consumer` (before the app starts).

    ``on_wait(cause, seconds)`` is told each time the fetch loop waited: for records
    (``"records"``), for acknowledgements, with :data:`MAX_IN_FLIGHT` batches in flight
    (``"acknowledgements"``), or for a topic's oldest batch to be prepared, with
    :data:`MAX_PREPARING_RECORDS` of its records waiting (``"preparation"``). What is left of the loop's
    time is its own work.
    """
    app.transport = Transport(app.conf.broker_consumer, app)
    app.batch_loop_waits = on_wait
