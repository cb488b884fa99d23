"""Signed snapshots: identical models back, anything unsigned or tampered refused before unpickling."""

import hashlib
import pickle
import random

import pytest

from online_models.label_join import TrainingExample
from online_models.persistence import (
    MAGIC,
    SnapshotError,
    _tag,
    chunk_count,
    dump,
    iter_chunks,
    join_chunks,
    load,
    read_header,
    split_chunks,
)
from online_models.task_models import DUPLICATE_WINDOW_MS, TaskModels
from online_models.testing import labelled_stream

KEY = b"0123456789abcdef0123456789abcdef"
EXECUTED = []


def detonate(message):
    EXECUTED.append(message)
    return message


class Bomb:
    """Unpickling this runs ``detonate``: it stands for a pickle that runs an attacker's code."""

    def __reduce__(self):
        return detonate, ("the snapshot ran code",)


def topic(task, n, seed=0):
    """A training-examples topic: examples scored by a separate scorer, as bytes."""
    scorer = TaskModels(task, n_trees=2)
    records = []
    for i, (x, y) in enumerate(labelled_stream(task, n, seed)):
        example = TrainingExample(task, f"e{i}", f"w{i}", i, y, i, "label", x, scorer.score_one(x))
        records.append(example.to_bytes())
    return records


def learn(models, records, start=0):
    for offset, raw in enumerate(records):
        if offset >= start:
            models.learn_example(TrainingExample.from_bytes(raw), offset)
    return models


PROBES = {task: [x for x, _ in labelled_stream(task, 40, seed=77)] for task in ("fraud", "lead")}


@pytest.mark.parametrize("task", ["fraud", "lead"])
def test_round_trip_gives_identical_models(task):
    records = topic(task, 400)
    models = learn(TaskModels(task, n_trees=3), records[:300])
    restored = load(dump(models, KEY, version=7), KEY, task=task)
    assert restored.version == 7 and restored.position == 299
    assert [restored.score_one(x) for x in PROBES[task]] == [models.score_one(x) for x in PROBES[task]]
    assert restored.describe() == models.describe()
    learn(models, records, start=300)
    learn(restored, records, start=300)
    assert [restored.score_one(x) for x in PROBES[task]] == [models.score_one(x) for x in PROBES[task]]


def test_restore_then_replay_the_topic_equals_never_stopping():
    records = topic("fraud", 500)
    uninterrupted = learn(TaskModels("fraud", n_trees=2), records)
    blob = dump(learn(TaskModels("fraud", n_trees=2), records[:180]), KEY, version=1)
    assert read_header(blob, KEY)["position"] == 179
    resumed = learn(load(blob, KEY), records)  # replayed from the start: 0..179 are skipped
    assert resumed.learned == uninterrupted.learned
    probes = PROBES["fraud"]
    assert [resumed.score_one(x) for x in probes] == [uninterrupted.score_one(x) for x in probes]


def test_header_is_readable_without_unpickling():
    header = read_header(dump(TaskModels("lead", n_trees=1), KEY, version=3), KEY)
    assert header["task"] == "lead" and header["version"] == 3 and header["champion"] == "logreg"
    assert header["learned"]["logreg"] == 0 and header["format"] == 1


@pytest.mark.parametrize("where", [len(MAGIC) + 10, -100, -1])  # header, payload, signature
def test_a_tampered_snapshot_is_refused(where):
    blob = bytearray(dump(TaskModels("lead", n_trees=1), KEY, version=1))
    blob[where] ^= 0x01
    with pytest.raises(SnapshotError, match="bad signature"):
        load(bytes(blob), KEY)


def test_wrong_key_truncation_and_empty_key_are_refused():
    blob = dump(TaskModels("lead", n_trees=1), KEY, version=1)
    with pytest.raises(SnapshotError, match="bad signature"):
        load(blob, b"another key of the same length!!")
    with pytest.raises(SnapshotError):
        load(blob[: len(MAGIC) + 3], KEY)
    with pytest.raises(SnapshotError):
        load(blob[:-5], KEY)
    for call in (lambda: dump(TaskModels("lead", n_trees=1), b"", 1), lambda: load(blob, b"")):
        with pytest.raises(ValueError, match="SCORESTREAM_MODEL_KEY"):
            call()
    with pytest.raises(SnapshotError, match="lead models, not the fraud"):
        load(blob, KEY, task="fraud")


def test_an_unsigned_or_forged_pickle_is_refused_without_running_it():
    bomb = pickle.dumps(Bomb())
    forged = MAGIC + b"\x00\x00\x00\x02{}" + bomb
    forged += _tag(b"the attacker's own key", forged)
    for blob in (bomb, forged, MAGIC + bomb):
        with pytest.raises(SnapshotError):
            load(blob, KEY)
        with pytest.raises(SnapshotError):
            read_header(blob, KEY)
    assert EXECUTED == []
    pickle.loads(bomb)  # the payload is live: unpickled, it does run
    assert EXECUTED == ["the snapshot ran code"]
    EXECUTED.clear()


def test_chunks_stay_under_the_limit_and_join_back_in_any_order():
    blob = random.Random(0).randbytes(3_000_000)
    chunks = split_chunks(blob, max_bytes=1_000_000)
    assert len(chunks) == 4 and all(len(chunk) <= 1_000_000 for chunk in chunks)
    shuffled = chunks[::-1] + [chunks[1]]  # reversed, one delivered twice
    assert join_chunks(shuffled) == blob
    assert join_chunks(split_chunks(b"")) == b""


def test_chunks_can_be_cut_one_at_a_time_from_a_digest_computed_beforehand():
    blob = random.Random(1).randbytes(2_500_000)
    lazy = iter_chunks(blob, hashlib.sha256(blob).digest(), 1_000_000)
    assert next(lazy) == split_chunks(blob, 1_000_000)[0]
    assert [chunk_count(blob, 1_000_000), chunk_count(b"", 1_000_000)] == [3, 1]
    assert join_chunks([split_chunks(blob, 1_000_000)[0], *lazy]) == blob


def test_incomplete_mixed_or_corrupted_chunks_are_refused():
    blob = random.Random(1).randbytes(100_000)
    chunks = split_chunks(blob, max_bytes=30_000)
    other = split_chunks(random.Random(2).randbytes(100_000), max_bytes=30_000)
    corrupted = chunks[:-1] + [chunks[-1][:-1] + bytes([chunks[-1][-1] ^ 1])]
    for bad, reason in ((chunks[:-1], "incomplete"), (chunks[:2] + other[2:], "different snapshots"),
                        (corrupted, "checksum"), ([b"not a chunk"], "not a snapshot chunk"), ([], "none")):
        with pytest.raises(SnapshotError, match=reason):
            join_chunks(bad)
    with pytest.raises(ValueError):
        split_chunks(blob, max_bytes=10)


def test_a_snapshot_travels_in_chunks():
    models = learn(TaskModels("fraud", n_trees=2), topic("fraud", 300))
    blob = dump(models, KEY, version=12)
    back = load(join_chunks(split_chunks(blob, max_bytes=50_000)), KEY)
    assert back.version == 12 and back.describe() == models.describe()


def test_remembered_example_ids_survive_a_snapshot():
    records = topic("lead", 300)
    models = learn(TaskModels("lead", n_trees=2), records)
    restored = load(dump(models, KEY, version=2), KEY, task="lead")
    assert len(restored.seen) == len(models.seen) == 300
    again = TrainingExample.from_bytes(records[250])  # the join sent it again, after the snapshot
    assert models.apply_example(again, position=300) == "duplicate"
    assert restored.apply_example(again, position=300) == "duplicate"
    assert restored.duplicates == models.duplicates == 1
    assert restored.describe() == models.describe()
    assert [restored.score_one(x) for x in PROBES["lead"]] == [models.score_one(x) for x in PROBES["lead"]]


def test_a_snapshot_from_before_example_ids_were_remembered_loads_with_none():
    records = topic("fraud", 200)
    models = learn(TaskModels("fraud", n_trees=2), records)
    del models.seen, models.duplicates  # the state an older version pickled
    old = load(dump(models, KEY, version=4), KEY, task="fraud")
    assert old.position == 199 and old.learned == models.learned
    assert len(old.seen) == 0 and old.duplicates == 0
    assert old.seen.window_ms == DUPLICATE_WINDOW_MS["fraud"]
    assert [old.score_one(x) for x in PROBES["fraud"]] == [models.score_one(x) for x in PROBES["fraud"]]
    copy = TrainingExample.from_bytes(records[199])
    assert old.apply_example(copy, position=200) == "learned"  # nothing remembered from before...
    assert old.apply_example(copy, position=201) == "duplicate"  # ... from now on it is


def test_the_examples_learned_of_each_class_survive_a_snapshot_and_start_at_zero_before():
    models = learn(TaskModels("fraud", n_trees=2), topic("fraud", 200))
    assert sum(models.learned_by_class) == 200
    assert load(dump(models, KEY, version=1), KEY).learned_by_class == models.learned_by_class
    del models.learned_by_class  # the state an older version pickled
    assert load(dump(models, KEY, version=2), KEY).learned_by_class == [0, 0]
