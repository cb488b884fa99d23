"""Bounded memory: stream 10⁶ distinct customers through the feature layer, report RSS and cost.

The worker keeps each key's state as bytes in Faust's in-memory table store; this
benchmark holds the same bytes in a dict, so its resident memory is what the
worker's table costs for that many keys. Then the same transactions (and a fraud
label for one in a hundred) go through the terminal view's own work
(``TerminalView.tell``: decode and remember; then each transaction's terminal
features): what every worker holds per transaction of the last ``d`` + 30 days.
Run: ``python -m bench.feature_memory``.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time

import orjson

from stream.events import parse_transaction
from stream.pipeline import TASKS, BatchScorer, InputRecord
from stream.terminal_view import TerminalView

T0 = 1_767_225_600_000
DAY = 86_400_000


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def transactions(customers: int, per_customer: int, seed: int):
    """Each customer pays ``per_customer`` times over 30 days, customers interleaved in time."""
    rng = random.Random(seed)
    span = 30 * DAY
    for round_ in range(per_customer):
        for c in range(customers):
            ts = T0 + round_ * span // per_customer + c * (span // per_customer) // customers
            yield orjson.dumps({"event_id": f"t{round_}-{c}", "ts": ts, "customer_id": f"c{c:07d}",
                                "terminal_id": f"k{rng.randrange(20_000)}",
                                "amount": round(rng.uniform(1, 300), 2)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--per-customer", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    scorer = BatchScorer(TASKS["fraud"])
    store: dict[bytes, bytes] = {}
    gc.collect()
    before = rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    batch: list[InputRecord] = []
    n = 0
    for n, raw in enumerate(transactions(args.customers, args.per_customer, seed=1), start=1):
        batch.append(InputRecord(raw, None, 0, n))
        if len(batch) == args.batch:
            result = scorer.score_batch(batch, store.get)
            store.update({k: v for k, (_, v) in result.state_writes.items()})
            batch.clear()
    if batch:
        result = scorer.score_batch(batch, store.get)
        store.update({k: v for k, (_, v) in result.state_writes.items()})
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    gc.collect()
    after = rss_mib()
    state_bytes = sum(len(k) + len(v) for k, v in store.items())
    print(f"keys                      {len(store):>12,}")
    print(f"events                    {n:>12,}")
    print(f"events/s (score + state)  {n / elapsed:>12,.0f}")
    print(f"CPU µs per event          {cpu / n * 1e6:>12.1f}")
    print(f"state bytes per key       {state_bytes / len(store):>12.0f}")
    print(f"RSS before / after (MiB)  {before:>6.0f} / {after:.0f}")
    print(f"RSS per key (bytes)       {(after - before) * 2**20 / len(store):>12.0f}")
    print(f"peak RSS (MiB)            {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:>12.0f}")
    terminal_view_memory(args.customers, args.per_customer)


def terminal_view_memory(customers: int, per_customer: int) -> None:
    """RSS and CPU of the terminal view for the same transactions, one in 100 labelled fraud."""
    view = TerminalView(delay_ms=7 * DAY, lateness_ms=3_600_000, quiet_s=0.0)
    raws = list(transactions(customers, per_customer, seed=1))
    gc.collect()
    before = rss_mib()
    cpu_started = time.process_time()
    for n, raw in enumerate(raws):
        view.tell("tx", raw)
        if n % 100 == 0:
            tx = orjson.loads(raw)
            view.tell("label", orjson.dumps({"event_id": tx["event_id"], "ts": tx["ts"] + DAY,
                                             "is_fraud": True}))
    told = time.process_time() - cpu_started
    gc.collect()
    after = rss_mib()
    sample = [parse_transaction(raw) for raw in raws[-100_000:]]
    cpu_started = time.process_time()
    for tx in sample:
        view.features(tx, 0)
    asked = time.process_time() - cpu_started
    held = len(view.history.transactions)
    print(f"terminal view: transactions held   {held:>12,} on {len(view.history.terminals):,} terminals")
    print(f"terminal view: CPU µs per tx told  {told / len(raws) * 1e6:>12.1f}  (decode included)")
    print(f"terminal view: CPU µs per features {asked / len(sample) * 1e6:>12.1f}")
    print(f"terminal view: RSS per tx (bytes)  {(after - before) * 2**20 / held:>12.0f}")


if __name__ == "__main__":
    main()
