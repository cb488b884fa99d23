"""Sliding windows against a brute-force definition of ``(t - w, t]``."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.windows import EventWindow

relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
entries = st.lists(st.tuples(st.integers(0, 10_000), st.floats(0, 1000, allow_nan=False)), max_size=60)


@relaxed
@given(entries, st.integers(0, 12_000), st.integers(1, 5_000))
def test_count_total_mean_match_brute_force(items, end, width):
    window = EventWindow()
    for ts, value in items:  # arrival order is arbitrary: out-of-order inserts
        window.add(ts, value)
    inside = [v for ts, v in items if end - width < ts <= end]
    assert window.count(end, width) == len(inside)
    assert abs(window.total(end, width) - sum(inside)) <= 1e-9 * max(1.0, sum(inside))
    assert window.ts == sorted(window.ts)


@relaxed
@given(entries, st.integers(1, 5_000))
def test_prune_keeps_everything_a_window_can_still_see(items, horizon):
    window = EventWindow()
    for ts, value in items:
        window.add(ts, value)
    newest = max((ts for ts, _ in items), default=0)
    before = window.count(newest, horizon)
    window.prune(newest, horizon)
    assert window.count(newest, horizon) == before == len(window)


def test_previous_is_strictly_before():
    window = EventWindow()
    for ts in (10, 20, 20, 30):
        window.add(ts, 1.0)
    assert window.previous(20) == 10
    assert window.previous(21) == 20
    assert window.previous(10) is None
