"""Batches waiting for a prepare step are handled in fetch order per topic, without holding up
other topics, and nothing after a dropped or failed batch is ever handled."""

from __future__ import annotations

import asyncio

import pytest

from stream.batching import Preparations


class Recorder:
    def __init__(self) -> None:
        self.handled: list[tuple[str, object]] = []
        self.failures: list[BaseException] = []
        self.preparations = Preparations(lambda batch, prepared: self.handled.append((batch, prepared)),
                                         self.failures.append)


def pending() -> asyncio.Future:
    return asyncio.get_running_loop().create_future()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_waiting_batch_holds_up_its_topic_only() -> None:
    async def run() -> None:
        r = Recorder()
        tx1, tx2, web = pending(), pending(), pending()
        r.preparations.add("transactions", tx1, "tx batch 1")
        r.preparations.add("transactions", tx2, "tx batch 2")
        r.preparations.add("web-events", web, "web batch")
        tx2.set_result("tx 2 ready")
        web.set_result("web ready")
        await settle()
        assert r.handled == [("web batch", "web ready")]  # tx batch 2 waits for tx batch 1
        assert r.preparations.waiting("transactions") == 2
        tx1.set_result("tx 1 ready")
        await settle()
        assert r.handled[1:] == [("tx batch 1", "tx 1 ready"), ("tx batch 2", "tx 2 ready")]
        assert r.preparations.waiting("transactions") == 0 and not r.failures

    asyncio.run(run())


@pytest.mark.parametrize("how", ["failed", "cancelled from elsewhere"])
def test_a_batch_not_prepared_stops_everything_after_it(how: str) -> None:
    async def run() -> None:
        r = Recorder()
        first, second = pending(), pending()
        r.preparations.add("transactions", first, "batch 1")
        r.preparations.add("transactions", second, "batch 2")
        second.set_result("ready")
        if how == "failed":
            first.set_exception(RuntimeError("view gone"))
        else:  # not by cancel_all: handing on batch 2 would commit past batch 1's records
            first.cancel()
        await settle()
        assert r.handled == [] and len(r.failures) == 1
        assert r.preparations.waiting("transactions") == 0
        if how == "failed":
            assert str(r.failures[0]) == "view gone"

    asyncio.run(run())


def test_a_failing_handler_is_reported_and_drops_the_rest() -> None:
    async def run() -> None:
        failures: list[BaseException] = []

        def submit(batch: str, prepared: object) -> None:
            raise ValueError(f"cannot handle {batch}")

        preparations = Preparations(submit, failures.append)
        later = pending()
        preparations.add("transactions", asyncio.sleep(0, "ready"), "batch 1")
        preparations.add("transactions", later, "batch 2")
        await settle()
        assert [str(e) for e in failures] == ["cannot handle batch 1"]
        assert later.cancelled()

    asyncio.run(run())


def test_cancel_all_drops_what_waits_and_nothing_is_handled_later() -> None:
    async def run() -> None:
        r = Recorder()
        waiting = [pending() for _ in range(3)]
        for i, future in enumerate(waiting):
            r.preparations.add("transactions", future, f"batch {i}")
        assert r.preparations.cancel_all() == 3
        await settle()
        assert all(f.cancelled() for f in waiting)
        assert r.handled == [] and r.failures == []  # a drop is not a failure: the records are read again

    asyncio.run(run())


def test_wait_below_counts_records_and_returns_once_the_oldest_is_handled() -> None:
    async def run() -> None:
        r = Recorder()
        first = pending()
        r.preparations.add("transactions", first, "batch 1", size=300)
        r.preparations.add("transactions", asyncio.sleep(0, "second"), "batch 2", size=200)
        assert r.preparations.waiting("transactions") == 500  # records, not batches
        waiter = asyncio.ensure_future(r.preparations.wait_below("transactions", 250))
        await settle()
        assert not waiter.done()
        first.set_result("first")
        await asyncio.wait_for(waiter, timeout=1)
        assert [b for b, _ in r.handled] == ["batch 1", "batch 2"]

    asyncio.run(run())


@pytest.mark.parametrize("topic", ["transactions", "never-seen"])
def test_wait_below_with_nothing_waiting_returns_at_once(topic: str) -> None:
    async def run() -> None:
        await asyncio.wait_for(Recorder().preparations.wait_below(topic, 0), timeout=1)

    asyncio.run(run())
