"""Seeded simulator of website behaviour and card payments, with delayed labels.

Pure Python, no Kafka: it yields plain dicts, each with a ``"topic"``
(``web-events``, ``transactions``, ``conversions``, ``fraud-labels``), in
event-time order, for the producer and CLI to publish or write to a file.
See ``docs/simulator.md`` for scenarios and fields.

>>> first = next(simulate(None, seed=7))
>>> first["topic"] in ("web-events", "transactions"), first["ts"].endswith("Z")
(True, True)
"""

from simulator.config import SimulatorConfig
from simulator.engine import simulate, simulate_with_truth
from simulator.jsonl import read_jsonl, write_jsonl

__all__ = ["SimulatorConfig", "read_jsonl", "simulate", "simulate_with_truth", "write_jsonl"]
