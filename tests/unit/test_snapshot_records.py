"""The snapshot topic's records as pure data: the newest whole snapshot is found, whatever else is there."""

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from online_models import persistence
from online_models.task_models import TaskModels
from stream.snapshot_records import (
    MAX_RECORD_BYTES,
    LogReader,
    Manifest,
    chunk_key,
    manifest_key,
    publication,
    read_log,
)

KEY = b"0123456789abcdef0123456789abcdef"


def signed(position, version, task="lead", key=KEY):
    models = TaskModels(task, n_trees=1)
    models.position = position
    return persistence.dump(models, key, version)


def publish(name, blob, publish_id, max_bytes=4096, key=KEY):
    """The records of one publish, in the order they are sent: chunks, then the manifest."""
    done = publication(name, blob, persistence.read_header(blob, key), publish_id, max_bytes)
    return [*done.chunks(), done.manifest_record]


def newest(records, name="lead"):
    return next(read_log(records, [name]).snapshots(name), None)


def compacted(records):
    """What Kafka's compaction leaves: the last value of each key, tombstoned keys gone."""
    last = {}
    for key, value in records:
        last.pop(key, None)
        last[key] = value
    return [(key, value) for key, value in last.items() if value is not None]


def test_the_newest_complete_snapshot_is_found_and_is_the_published_one():
    old, new = signed(10, 1), signed(20, 2)
    records = publish("lead", old, "a0a0a0a0") + publish("lead", new, "b1b1b1b1")
    manifest, blob = newest(records)
    assert blob == new and (manifest.position, manifest.version, manifest.chunks) == (20, 2, 4)
    assert [m.version for m, _ in read_log(records, ["lead"]).snapshots("lead")] == [2, 1]


def test_newest_is_by_position_then_version_not_by_the_order_written():
    ahead, lagging, same_place = signed(50, 3), signed(40, 7), signed(50, 2)
    records = (publish("lead", ahead, "a0a0a0a0") + publish("lead", lagging, "b1b1b1b1")
               + publish("lead", same_place, "c2c2c2c2"))
    assert newest(records)[1] == ahead
    # compaction keeps the last manifest only: then the last one written is what there is
    assert newest(compacted(records))[1] == same_place


def test_a_crash_while_publishing_leaves_the_previous_snapshot_readable():
    old = signed(10, 1)
    torn = publish("lead", signed(20, 2), "b1b1b1b1")[:2]  # two chunks sent, then the crash
    records = publish("lead", old, "a0a0a0a0") + torn
    assert newest(records)[1] == old and newest(compacted(records))[1] == old
    # the torn chunks might be a publish still going on: they are not superseded, the old ones are
    # (once this process publishes a newer snapshot)
    assert read_log(records, ["lead"]).superseded["lead"] == [chunk_key("lead", "a0a0a0a0", i)
                                                              for i in range(4)]


def test_two_processes_publishing_the_same_name_at_once_do_not_mix_their_chunks():
    one, two = publish("lead", signed(30, 4), "a0a0a0a0"), publish("lead", signed(31, 4), "b1b1b1b1")
    interleaved = [record for pair in zip(one[:-1], two[:-1], strict=True) for record in pair]
    records = [*interleaved, two[-1], one[-1]]
    found = read_log(records, ["lead"])
    assert [m.position for m, _ in found.snapshots("lead")] == [31, 30]
    assert newest(compacted(records))[0].position == 30  # the last manifest written


def test_an_incomplete_snapshot_is_skipped_for_an_older_whole_one():
    old, new = signed(10, 1), signed(20, 2)
    records = publish("lead", old, "a0a0a0a0") + publish("lead", new, "b1b1b1b1")
    records.append((chunk_key("lead", "b1b1b1b1", 1), None))  # a chunk deleted
    found = read_log(records, ["lead"])
    assert newest(records)[1] == old
    assert found.skipped["lead"] == ["v2: 1 of its 4 chunks missing"]


def test_a_mixed_or_damaged_set_of_chunks_is_passed_over():
    old, new, other = signed(10, 1), signed(20, 2), signed(20, 2, task="fraud")
    new_records = publish("lead", new, "b1b1b1b1")
    foreign = publish("lead", other, "c2c2c2c2")[0][1]  # chunk 0 of another snapshot
    mixed = [(new_records[0][0], foreign), *new_records[1:]]
    assert newest(publish("lead", old, "a0a0a0a0") + mixed)[1] == old
    key, chunk = new_records[2]
    damaged = new_records[:2] + [(key, chunk[:-1] + bytes([chunk[-1] ^ 1]))] + new_records[3:]
    assert newest(publish("lead", old, "a0a0a0a0") + damaged)[1] == old


def test_a_manifest_naming_chunks_of_another_snapshot_is_passed_over():
    """The chunks join up, but not to the snapshot the manifest names."""
    real = publish("lead", signed(20, 2), "b1b1b1b1")
    forged = Manifest.decode("lead", real[-1][1])
    lie = Manifest("lead", forged.publish_id, "0" * 64, forged.chunks, 99, 99)
    assert newest([*real, (manifest_key("lead"), lie.encode())]) == newest(real)


def test_chunks_left_by_an_older_bigger_snapshot_are_harmless_and_superseded():
    big = signed(10, 1, task="fraud")
    small = signed(20, 2, task="fraud")
    older, newer = publish("fraud", big, "a0a0a0a0", max_bytes=2048), publish("fraud", small, "b1b1b1b1")
    n_older, n_newer = len(older) - 1, len(newer) - 1  # chunks (the last record is the manifest)
    assert n_older > n_newer > 1  # the older one is cut into more chunks
    records = older + newer
    found = read_log(records, ["fraud"])
    assert newest(records, "fraud")[1] == small
    assert [len(candidate.chunks) for candidate in found.candidates["fraud"]] == [n_newer, n_older]
    assert sorted(found.superseded["fraud"]) == sorted(
        [chunk_key("fraud", "a0a0a0a0", i) for i in range(n_older)]
        + [chunk_key("fraud", "b1b1b1b1", i) for i in range(n_newer)])


def test_once_a_process_deletes_what_its_publish_superseded_compaction_leaves_one_snapshot():
    older, old, new, newer = signed(5, 1), signed(10, 2), signed(20, 3), signed(30, 4)
    records = publish("lead", older, "a0a0a0a0") + publish("lead", old, "b1b1b1b1")
    records += publish("lead", signed(15, 3), "c2c2c2c2")[:3]  # a crashed publish
    superseded = read_log(records, ["lead"]).superseded["lead"]  # what a process found at start
    assert len(superseded) == 8
    records += publish("lead", new, "d3d3d3d3") + [(key, None) for key in superseded]
    left = compacted(records)
    assert newest(left)[1] == new and len(left) == 4 + 3 + 1  # the crashed chunks are still there
    found = read_log(records, ["lead"])  # before compaction: the older manifests are still there
    assert [m.version for m, _ in found.snapshots("lead")] == [3] and found.skipped == {}
    # its next publish deletes its previous one; the next process to start and publish deletes
    # the crashed one (and the newest, which its publish supersedes)
    records += publish("lead", newer, "e4e4e4e4") + [(chunk_key("lead", "d3d3d3d3", i), None)
                                                      for i in range(4)]
    assert newest(compacted(records))[1] == newer
    assert sorted(read_log(records, ["lead"]).superseded["lead"]) == sorted(
        [chunk_key("lead", "c2c2c2c2", i) for i in range(3)] + [chunk_key("lead", "e4e4e4e4", i)
                                                                 for i in range(4)])


def test_names_are_told_apart_and_others_ignored():
    lead, challengers = signed(10, 1), signed(30, 5)
    records = publish("lead", lead, "a0a0a0a0") + publish("lead.challengers", challengers, "b1b1b1b1")
    records.append((b"fraud", b"not a manifest"))
    found = read_log(records, ["lead"])
    assert newest(records)[1] == lead and newest(records, "lead.challengers")[1] == challengers
    assert set(found.candidates) == {"lead"} and found.skipped == {}
    assert read_log(records, ["fraud"]).skipped["fraud"][0].startswith("offset 10:")


def test_malformed_manifests_are_refused():
    good = publish("lead", signed(10, 1), "a0a0a0a0")[-1][1]
    Manifest.decode("lead", good)
    for bad in (b"[]", b'{"format": 2}', good.replace(b'"chunks":4', b'"chunks":1000000000'),
                good.replace(b'"publish_id":"a0a0a0a0"', b'"publish_id":"../x"')):
        with pytest.raises(ValueError):
            Manifest.decode("lead", bad)


def test_every_record_fits_kafka_s_default_message_limit():
    blob = signed(10, 1) * 200  # 3 MB: only the size matters here
    done = publication("fraud.challengers", blob, {"version": 1, "position": 10}, "f" * 16)
    sizes = [DefaultRecordBatchBuilder.estimate_size_in_bytes(k, v, []) for k, v in done.chunks()]
    assert len(sizes) == 4 and max(sizes) < MAX_RECORD_BYTES < 1_048_576


def test_a_reader_asked_again_and_again_says_each_reason_once():
    reader = LogReader(["lead"])
    for key, value in publish("lead", signed(20, 2), "b1b1b1b1")[1:]:  # chunk 0 never came
        reader.add(key, value)
    assert reader.result().skipped == reader.result().skipped == {"lead": ["v2: 1 of its 4 chunks missing"]}


def test_a_reader_forgets_what_it_is_told_to_and_the_chunks_only_that_named():
    reader = LogReader(["lead", "fraud"])
    records = (publish("lead", signed(10, 1), "a0a0a0a0") + publish("lead", signed(20, 2), "b1b1b1b1")
               + publish("fraud", signed(5, 1, task="fraud"), "c2c2c2c2") + [(b"lead", b"[]")])
    for key, value in records:
        reader.add(key, value)
    assert reader.held()[:2] == (3, 4 + 4 + 5) and reader.result().skipped["lead"][0].startswith("offset 16:")
    reader.forget("lead", lambda manifest: manifest.position > 10)
    assert reader.held()[:2] == (2, 4 + 5) and "lead" not in reader.result().skipped
    assert [m.version for m, _ in reader.result().snapshots("lead")] == [2]
    reader.forget("lead", lambda manifest: False)
    assert reader.held()[:2] == (1, 5) and next(reader.result().snapshots("fraud"))[0].position == 5
