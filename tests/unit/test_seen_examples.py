"""SeenExamples: ids remembered for a window of example time, forgotten the same way on every replica."""

import pickle
import random

import pytest

from online_models.seen_examples import SeenExamples

T0 = 1_767_225_600_000
HOUR_MS = 3_600_000


def test_a_copy_within_the_window_is_refused_and_one_after_it_is_new():
    seen = SeenExamples(window_ms=HOUR_MS)
    assert seen.add("x1", T0)
    assert not seen.add("x1", T0 + HOUR_MS)  # exactly a window later: still remembered
    assert seen.add("x2", T0 + HOUR_MS + 1)  # the clock is now more than a window past x1's stamp
    assert "x1" not in seen and "x2" in seen
    assert seen.add("x1", T0)  # forgotten: a copy this late is new again


def test_the_stamp_is_the_newest_time_seen_not_the_examples_own():
    seen = SeenExamples(window_ms=HOUR_MS)
    seen.add("ahead", T0 + 10 * HOUR_MS)  # another join partition is ten hours ahead
    assert seen.add("behind", T0)  # an example of a partition running behind...
    assert seen.clock_ms == T0 + 10 * HOUR_MS  # ... does not move the clock back
    seen.add("next", T0 + 10 * HOUR_MS + HOUR_MS // 2)
    assert not seen.add("behind", T0)  # ... and is remembered a window from when it was learned


def test_memory_is_bounded_by_the_examples_of_one_window():
    seen = SeenExamples(window_ms=100 * 1000)
    sizes = []
    for i in range(5000):  # one example a second: a window holds about 100
        seen.add(f"e{i}", T0 + 1000 * i)
        sizes.append(len(seen))
    assert max(sizes) == 101 and sizes[-1] == 101
    assert "e4899" in seen and "e4898" not in seen


def test_replicas_given_the_same_sequence_forget_and_skip_the_same_ids():
    rng = random.Random(3)
    sequence = []
    for i in range(3000):  # example times jitter back and forth; ids repeat, some late
        time_ms = T0 + 1000 * i + rng.randint(-30_000, 30_000)
        example_id = f"e{rng.randint(0, i)}" if rng.random() < 0.2 else f"e{i}"
        sequence.append((example_id, time_ms))
    first, second = SeenExamples(window_ms=60_000), SeenExamples(window_ms=60_000)
    decisions = [first.add(*item) for item in sequence]
    restored = None
    for i, item in enumerate(sequence):
        replica = second if restored is None else restored
        assert replica.add(*item) == decisions[i]
        if i == 1500:  # a snapshot, then a restart from it
            restored = pickle.loads(pickle.dumps(replica))
    learned_ids = [example_id for (example_id, _), new in zip(sequence, decisions, strict=True) if new]
    assert not all(decisions)  # copies were skipped...
    assert len(learned_ids) > len(set(learned_ids))  # ... and copies later than the window learned
    assert pickle.dumps(first) == pickle.dumps(restored)


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        SeenExamples(window_ms=-1)
