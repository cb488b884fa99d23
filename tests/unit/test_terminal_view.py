"""When the terminal view knows enough for a transaction, and what it counts as late (no broker)."""

import asyncio
import time

import orjson

from features.time import DAY, HOUR
from stream.events import Transaction
from stream.terminal_view import READ_AHEAD_MS, InputClocks, TerminalView

T = 100 * DAY
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def clocks(quiet_s: float = 5.0) -> InputClocks:
    return InputClocks(tx_partitions=[0, 1], label_partitions=[0], delay_ms=7 * DAY,
                       lateness_ms=HOUR, quiet_s=quiet_s, now=0.0)


def test_every_transaction_partition_must_reach_t_minus_the_delay_plus_lateness_or_its_end():
    c = clocks()
    c.read("label", 0, T, now=0.0)
    c.read("tx", 0, T, now=0.0)
    assert c.missing(T, now=0.0) == [("tx", 1)]
    c.read("tx", 1, T - 7 * DAY + HOUR - 1, now=0.0)
    assert not c.knows(T, now=0.0)
    c.reached_end("tx", 1, True)  # nothing more there: what it has is all there is
    assert c.knows(T, now=0.0)


def test_a_label_partition_holds_transactions_back_until_it_reaches_their_time_or_is_quiet():
    c = clocks(quiet_s=5.0)
    for partition in (0, 1):
        c.reached_end("tx", partition, True)
    c.read("label", 0, T - 1, now=1.0)
    assert c.missing(T, now=1.0) == [("label", 0)]
    c.reached_end("label", 0, True)
    assert not c.knows(T, now=5.9)  # quiet is measured from its last record, at 1.0
    assert c.knows(T, now=6.0)
    c.read("label", 0, T - 1, now=7.0)  # a new record: no longer quiet
    assert not c.knows(T, now=7.0)
    c.read("label", 0, T, now=7.0)
    assert c.knows(T, now=7.0)


def label_found_at_its_end(quiet_s: float, fetched_ms: int) -> InputClocks:
    """Transactions read to their end; the label partition's last record (before T) read at 1.0 s
    and its end found by a fetch answered at ``fetched_ms``."""
    c = clocks(quiet_s=quiet_s)
    for partition in (0, 1):
        c.reached_end("tx", partition, True)
    c.read("label", 0, T - 1, now=1.0)
    c.reached_end("label", 0, True, fetched_ms=fetched_ms)
    return c


def test_a_label_partition_found_at_its_end_by_a_fetch_answered_after_the_batch_came_is_caught_up():
    """Every label the broker had when the batch came has been read: with no wait, go on."""
    c = label_found_at_its_end(quiet_s=0.0, fetched_ms=10_000)
    assert not c.knows(T, now=1.0, since_ms=10_001)  # that fetch was answered before the batch came
    assert c.knows(T, now=1.0, since_ms=10_000)
    c.reached_end("label", 0, False, fetched_ms=10_005)  # a newer label arrived: not at its end
    assert not c.knows(T, now=1.0, since_ms=10_000)
    c.reached_end("label", 0, True, fetched_ms=None)  # no fetch answer known
    assert not c.knows(T, now=1.0, since_ms=0)


def test_with_a_wait_a_caught_up_label_partition_must_also_be_quiet():
    c = label_found_at_its_end(quiet_s=5.0, fetched_ms=10_000)
    assert not c.knows(T, now=5.9, since_ms=10_000)
    assert c.knows(T, now=6.0, since_ms=10_000)
    assert not c.knows(T, now=6.0, since_ms=10_001)  # quiet, but not confirmed since the batch came


def test_an_empty_label_partition_is_quiet_only_after_the_wait_from_the_start():
    c = clocks(quiet_s=5.0)
    for partition in (0, 1):
        c.reached_end("tx", partition, True)
    c.reached_end("label", 0, True)
    assert not c.knows(T, now=4.9) and c.knows(T, now=5.0)


def test_a_partition_far_ahead_of_what_was_asked_pauses():
    c = clocks()
    c.read("tx", 0, T + READ_AHEAD_MS + 1, now=0.0)
    assert not c.ahead(("tx", 0), wanted=None)  # nothing asked yet: read on
    assert c.ahead(("tx", 0), wanted=T)
    assert not c.ahead(("tx", 0), wanted=T + 1)


def tx(event_id: str, ts: int, terminal: str = "k1") -> Transaction:
    return Transaction(event_id, ts, "c1", terminal, 10.0)


def test_the_view_tells_its_history_and_counts_labels_read_after_their_time_was_scored():
    late = []
    view = TerminalView(delay_ms=DAY, lateness_ms=0, quiet_s=0.0, on_late_label=lambda: late.append(1))

    def raw_tx(event_id: str, ts: int) -> bytes:
        return orjson.dumps({"event_id": event_id, "ts": ts, "customer_id": "c1", "terminal_id": "k1",
                             "amount": 5.0})

    def raw_label(event_id: str, ts: int) -> bytes:
        return orjson.dumps({"event_id": event_id, "ts": ts, "is_fraud": True})

    assert view.tell("tx", raw_tx("a", T0)) == T0
    assert view.tell("tx", b"{not json") is None and view.tell("label", None) is None
    assert view.tell("label", raw_label("a", T0 + DAY)) == T0 + DAY
    assert view.features(tx("b", T0 + DAY + 1), partition=0)["terminal_risk_1d"] == 1.0
    assert late == []
    view.tell("tx", raw_tx("c", T0 + 1))
    view.tell("label", raw_label("c", T0 + DAY))
    assert late == [1]  # a transaction at T0 + DAY + 1 was scored without it


def test_waiting_ends_once_the_reader_has_read_far_enough():
    async def scenario() -> bool:
        view = TerminalView(delay_ms=DAY, lateness_ms=0, quiet_s=60.0)
        view.clocks = InputClocks([0], [0], DAY, 0, 60.0, now=0.0)
        view.clocks.reached_end("tx", 0, True)
        waiter = asyncio.ensure_future(view.wait_until_known(T))
        await asyncio.sleep(0.05)
        assert not waiter.done() and view.wanted == T
        view.clocks.read("label", 0, T, now=0.0)
        view._wake()
        return await asyncio.wait_for(waiter, timeout=2)

    assert asyncio.run(scenario()) is False  # the labels reached T: not a quiet release


def test_a_waiting_batch_goes_on_once_a_fresh_fetch_finds_the_labels_at_their_end():
    async def scenario() -> bool:
        view = TerminalView(delay_ms=DAY, lateness_ms=0, quiet_s=0.0)
        view.clocks = InputClocks([0], [0], DAY, 0, 0.0, now=time.monotonic())
        view.clocks.reached_end("tx", 0, True)
        view.clocks.read("label", 0, T - 1, now=time.monotonic())
        view.clocks.reached_end("label", 0, True, fetched_ms=int(time.time() * 1000) - 1_000)
        waiter = asyncio.ensure_future(view.wait_until_known(T))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # at its end, but as of a fetch answered before the batch came
        view.clocks.reached_end("label", 0, True, fetched_ms=int(time.time() * 1000))
        view._wake()
        return await asyncio.wait_for(waiter, timeout=2)

    assert asyncio.run(scenario()) is True  # its end, not a label at T, let it go on


def test_a_batch_goes_on_at_once_if_the_answer_bringing_its_transactions_found_the_labels_at_end():
    """The view reads the transactions too: the answer that brought them was answered after they
    were in Kafka, so a label partition it found at its end has every label from before them."""
    async def scenario() -> tuple[bool, bool]:
        view = TerminalView(delay_ms=DAY, lateness_ms=0, quiet_s=0.0)
        view.clocks = InputClocks([0], [0], DAY, 0, 0.0, now=time.monotonic())
        view.clocks.reached_end("tx", 0, True)
        view.clocks.read("label", 0, T - 1, now=time.monotonic())
        answered = int(time.time() * 1000) - 1_000  # a second before the batch asks
        view.clocks.read_to(0, 100, fetched_ms=answered)  # offsets 0-99
        view.clocks.reached_end("label", 0, True, fetched_ms=answered)  # in that same answer
        first = await asyncio.wait_for(view.wait_until_known(T, offsets={0: 99}), timeout=1)
        # offset 100 came in no answer yet, and the labels' end is not known past the old one
        later = asyncio.ensure_future(view.wait_until_known(T, offsets={0: 100}))
        await asyncio.sleep(0.05)
        still_waiting = not later.done()
        later.cancel()
        return first, still_waiting

    assert asyncio.run(scenario()) == (True, True)


def test_a_label_end_found_before_the_transactions_were_read_does_not_count():
    c = label_found_at_its_end(quiet_s=0.0, fetched_ms=10_000)
    c.read_to(0, 50, fetched_ms=10_020)  # the transactions came in a later answer
    since = c.read_at({0: 49})
    assert since == 10_020 and not c.knows(T, now=1.0, since_ms=since)
    c.reached_end("label", 0, True, fetched_ms=10_020)
    assert c.knows(T, now=1.0, since_ms=since)
