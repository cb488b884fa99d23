"""The simulator's building blocks: config, time text, rhythms, late arrivals and JSON lines."""

from __future__ import annotations

import io
import random
from dataclasses import FrozenInstanceError
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import SimulatorConfig, read_jsonl, simulate, write_jsonl
from simulator.clock import DAY, format_ts, parse_ts
from simulator.lateness import hold_back
from simulator.rhythm import NIGHT, PAYMENTS, WEB


def test_config_is_frozen_and_checked():
    config = SimulatorConfig()
    with pytest.raises(FrozenInstanceError):
        config.fraud_rate = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulatorConfig(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="out_of_order_fraction"):
        SimulatorConfig(out_of_order_fraction=1.5)
    with pytest.raises(ValueError, match="fraud_mix"):
        SimulatorConfig(fraud_mix=(0, 0, 0, 0))


def test_default_start_is_the_first_of_january_2026():
    first = next(simulate(1))
    assert first["ts"].startswith("2026-01-01T")


@given(st.integers(min_value=0, max_value=4_102_444_799_999))
def test_ts_text_round_trips(ts_ms):
    text = format_ts(ts_ms)
    assert parse_ts(text) == ts_ms
    assert len(text) == 24 and text.endswith("Z")


@pytest.mark.parametrize("rhythm", [WEB, PAYMENTS, NIGHT])
def test_a_rhythm_keeps_its_average_rate(rhythm):
    rng, t, count = random.Random(0), 0, 0
    while t < 28 * DAY:
        t = rhythm.next_time(rng, t, per_day=50.0)
        count += 1
    assert 0.9 * 50 * 28 < count < 1.1 * 50 * 28


@given(
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=200),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=500),
    st.integers(min_value=0, max_value=2**32),
)
def test_held_back_events_are_never_later_than_the_bound(stamps, fraction, lateness, seed):
    items = [(ts, {"topic": "web-events", "n": n}, None) for n, ts in enumerate(sorted(stamps))]
    out = list(hold_back(iter(items), random.Random(seed), fraction, lateness, ("web-events",)))
    assert sorted(n["n"] for _, n, _ in out) == list(range(len(items)))
    newest = 0
    for ts, _, _ in out:
        assert ts >= newest - lateness
        newest = max(newest, ts)


def test_jsonl_round_trips_and_ends_every_line(tmp_path):
    events = list(simulate(2_500, seed=2))
    path = tmp_path / "events.jsonl"
    assert write_jsonl(iter(events), path) == len(events)
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == len(events)
    assert list(read_jsonl(path)) == events


def test_jsonl_of_the_same_seed_is_byte_identical_and_writes_to_file_objects():
    first, second = io.BytesIO(), io.BytesIO()
    assert write_jsonl(simulate(1_500, seed=8), first) == 1_500
    write_jsonl(simulate(1_500, seed=8), second)
    assert first.getvalue() == second.getvalue()
