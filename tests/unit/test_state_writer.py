"""StateWriter: each batch's state goes out after its outputs and every earlier state, coalesced."""

import asyncio

import pytest

from stream.batching import StateWriter, merge_states


class FakeSender:
    """OrderedSender's interface: one future per send, resolved by the test."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.pending: list[asyncio.Future] = []

    def send(self, records: dict) -> list[asyncio.Future]:
        self.sent.append(records)
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return [future]

    def acknowledge(self, error: BaseException | None = None) -> None:
        future = self.pending.pop(0)
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def state(key: bytes, value: bytes) -> dict:
    return {("t-changelog", 0): [(key, value)]}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_state_waits_for_its_outputs_then_batches_queued_meanwhile_go_out_together():
    async def scenario() -> None:
        sender = FakeSender()
        writer = StateWriter(sender)
        loop = asyncio.get_running_loop()
        outputs = [loop.create_future() for _ in range(4)]
        done = [writer.add(outputs[i], state(b"k%d" % (i % 2), b"v%d" % i)) for i in range(4)]
        await settle()
        assert sender.sent == [], "no state before its outputs are acknowledged"
        outputs[0].set_result(None)
        await settle()
        assert sender.sent == [state(b"k0", b"v0")]
        outputs[1].set_result(None)
        outputs[2].set_result(None)
        await settle()
        assert len(sender.sent) == 1, "one write at a time: the next waits for this one"
        sender.acknowledge()
        await settle()
        assert done[0].done() and not done[1].done()
        # batches 1 and 2 together (their outputs are in), each key's newest value; 3 still waits
        assert sender.sent[1] == {("t-changelog", 0): [(b"k1", b"v1"), (b"k0", b"v2")]}
        sender.acknowledge()
        await settle()
        assert done[1].done() and done[2].done() and not done[3].done()
        outputs[3].set_result(None)
        await settle()
        sender.acknowledge()
        await settle()
        assert all(d.done() and d.exception() is None for d in done)
        assert len(sender.sent) == 3

    asyncio.run(scenario())


def test_a_batch_whose_outputs_fail_fails_and_so_does_every_later_one():
    async def scenario() -> None:
        sender = FakeSender()
        writer = StateWriter(sender)
        loop = asyncio.get_running_loop()
        outputs = [loop.create_future() for _ in range(3)]
        done = [writer.add(outputs[i], state(b"k", b"v%d" % i)) for i in range(3)]
        outputs[0].set_exception(OSError("broker gone"))
        outputs[1].set_result(None)
        outputs[2].set_result(None)
        await settle()
        assert sender.sent == [], "nothing after a lost batch reaches the changelog"
        with pytest.raises(OSError):
            done[0].result()
        for later in done[1:]:
            with pytest.raises(RuntimeError, match="earlier batch"):
                later.result()

    asyncio.run(scenario())


def test_a_refused_state_write_fails_its_batches_and_every_later_one():
    async def scenario() -> None:
        sender = FakeSender()
        writer = StateWriter(sender)
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        done_first = writer.add(first, state(b"k", b"1"))
        done_second = writer.add(second, state(b"k", b"2"))
        first.set_result(None)
        await settle()
        second.set_result(None)
        sender.acknowledge(OSError("not enough replicas"))
        await settle()
        with pytest.raises(OSError):
            done_first.result()
        with pytest.raises(RuntimeError, match="earlier batch"):
            done_second.result()
        assert len(sender.sent) == 1

    asyncio.run(scenario())


def test_merging_keeps_partitions_apart_and_one_batch_as_it_is():
    one = {("a", 0): [(b"x", b"1"), (b"x", b"2")]}
    assert merge_states([one]) is one
    merged = merge_states([{("a", 0): [(b"x", b"1")]}, {("a", 1): [(b"x", b"2")]}])
    assert merged == {("a", 0): [(b"x", b"1")], ("a", 1): [(b"x", b"2")]}
