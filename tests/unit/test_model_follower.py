"""Following the snapshot topic, as data: each newer trusted snapshot is taken once, memory stays bounded."""

import copy
import hashlib
import hmac
import logging
import pickle

import orjson

from online_models import persistence
from online_models.task_models import CHAMPION, TaskModels
from online_models.testing import labelled_stream
from stream.model_follower import NEVER, REMEMBERED_REFUSALS, SnapshotFollower
from stream.snapshot_records import manifest_key, publication
from tests.unit.test_online_persistence import EXECUTED, Bomb

KEY = b"0123456789abcdef0123456789abcdef"
NAMES = {"fraud": "fraud", "lead": "lead"}


def trained(position, n=30, task="lead", seed=0):
    """A worker's models (champion, and for fraud the detector) that learned ``n`` examples."""
    models = TaskModels(task, n_trees=1, holds=CHAMPION)
    for x, y in labelled_stream(task, n, seed=seed):
        models.learn_one(x, y, {})
    models.position = position
    return models


def signed(models, version, key=KEY):
    return persistence.dump(copy.deepcopy(models), key, version)


def publish(name, blob, publish_id, header=None, max_bytes=4096):
    """A publish's records in the order they are sent: chunks, then the manifest (which says ``header``,
    by default the blob's own)."""
    header = persistence.read_header(blob, KEY) if header is None else header
    done = publication(name, blob, header, publish_id, max_bytes)
    return [*done.chunks(), done.manifest_record]


def fed(follower, records):
    for key, value in records:
        follower.add(key, value)
    return follower


def newness(swaps):
    """Each task's models taken, as (training position, version)."""
    return {swap.task: (swap.models.position, swap.models.version) for swap in swaps}


def test_a_snapshot_is_taken_only_when_newer_than_the_models_in_use():
    models = trained(20)
    records = publish("lead", signed(models, 2), "a0a0a0a0")
    for in_use in ((20, 2), (20, 3), (21, 0)):
        assert fed(SnapshotFollower(NAMES), records).take({"lead": in_use}, KEY) == []
    [swap] = fed(SnapshotFollower(NAMES), records).take({"lead": (20, 1), "fraud": (99, 9)}, KEY)
    assert (swap.task, swap.models.position, swap.models.version) == ("lead", 20, 2)
    assert swap.manifest.newness == (20, 2) and swap.seconds > 0
    for x, _ in labelled_stream("lead", 20, seed=5):
        assert swap.models.score_one(x) == models.score_one(x)


def test_a_snapshot_is_never_taken_twice_nor_an_older_one_after_it():
    follower = fed(SnapshotFollower(NAMES), publish("lead", signed(trained(20), 2), "a0a0a0a0"))
    assert newness(follower.take({}, KEY)) == {"lead": (20, 2)}
    assert follower.take({}, KEY) == []
    assert follower.take({"lead": NEVER}, KEY) == []  # whatever the worker says it has
    fed(follower, publish("lead", signed(trained(15), 9), "b1b1b1b1"))  # behind in training-examples
    assert follower.take({}, KEY) == []
    fed(follower, publish("lead", signed(trained(30), 3), "c2c2c2c2"))
    assert newness(follower.take({}, KEY)) == {"lead": (30, 3)}


def test_only_the_newest_of_several_published_meanwhile_is_loaded():
    records = [record for i in range(1, 5) for record in publish("lead", signed(trained(10 * i), i),
                                                                 f"a0a0a0a{i}")]
    follower = fed(SnapshotFollower(NAMES), records)
    assert newness(follower.take({}, KEY)) == {"lead": (40, 4)}
    assert follower.held() == (0, 0, 0)  # the older ones are forgotten, before their tombstones come


def test_each_task_follows_its_own_name_and_others_are_ignored():
    fraud, lead = trained(7, task="fraud"), trained(9)
    records = (publish("fraud", signed(fraud, 1), "a0a0a0a0") + publish("lead", signed(lead, 1), "b1b1b1b1")
               + publish("lead.challengers", signed(trained(99), 5), "c2c2c2c2"))
    swaps = fed(SnapshotFollower(NAMES), records).take({}, KEY)
    assert newness(swaps) == {"fraud": (7, 1), "lead": (9, 1)}
    fraud_swap = next(swap for swap in swaps if swap.task == "fraud")
    assert fraud_swap.models.names == ["arf", "hst"]
    x = next(labelled_stream("fraud", 1, seed=3))[0]
    assert fraud_swap.models.score_one(x) == fraud.score_one(x)
    assert fed(SnapshotFollower({"lead": "lead.challengers"}), records).take({}, KEY)[0].models.position == 99


def test_a_snapshot_whose_chunks_are_not_all_there_is_waited_for():
    follower = SnapshotFollower(NAMES)
    records = publish("lead", signed(trained(20), 2), "a0a0a0a0")
    chunks, manifest = records[:-1], records[-1]
    assert len(chunks) >= 2
    assert fed(follower, chunks[:-1]).take({}, KEY) == []  # a publish under way
    assert fed(follower, [manifest]).take({}, KEY) == []  # its manifest, before its last chunk
    assert newness(fed(follower, chunks[-1:]).take({}, KEY)) == {"lead": (20, 2)}


def test_a_snapshot_whose_chunks_were_deleted_is_passed_over_for_the_next():
    follower = SnapshotFollower(NAMES)
    old = publish("lead", signed(trained(10), 1), "a0a0a0a0")
    torn = publish("lead", signed(trained(20), 2), "b1b1b1b1")
    fed(follower, old + torn + [(torn[0][0], None)])  # a chunk of the newer one tombstoned
    assert newness(follower.take({}, KEY)) == {"lead": (10, 1)}
    fed(follower, publish("lead", signed(trained(30), 3), "c2c2c2c2"))
    assert newness(follower.take({}, KEY)) == {"lead": (30, 3)}
    assert follower.held() == (0, 0, 0)  # the torn publish's chunks too: they can never be used
    fed(follower, [(key, None) for key, _ in torn[1:-1]])
    assert follower.held() == (0, 0, 0) and follower.take({}, KEY) == []


def test_chunks_no_manifest_names_are_held_until_their_tombstones():
    """A publish that crashed cannot be told from one under way: its chunks stay, as on the topic."""
    follower = SnapshotFollower(NAMES)
    crashed = publish("lead", signed(trained(20), 2), "a0a0a0a0")[:-1]
    fed(follower, crashed + publish("lead", signed(trained(30), 3), "b1b1b1b1"))
    assert newness(follower.take({}, KEY)) == {"lead": (30, 3)}
    assert follower.held()[:2] == (0, len(crashed))
    fed(follower, [(key, None) for key, _ in crashed])  # deleted by the next publisher to start
    assert follower.held() == (0, 0, 0)


def test_a_deleted_manifest_offers_nothing_and_tombstones_of_what_was_taken_are_harmless():
    records = publish("lead", signed(trained(10), 1), "a0a0a0a0")
    follower = fed(SnapshotFollower(NAMES), [*records, (manifest_key("lead"), None)])
    assert follower.take({}, KEY) == []
    follower = fed(SnapshotFollower(NAMES), records)
    assert len(follower.take({}, KEY)) == 1
    fed(follower, [(key, None) for key, _ in records] + [(None, b"a record without a key")])
    assert follower.take({}, KEY) == [] and follower.held() == (0, 0, 0)


def test_a_snapshot_signed_with_another_key_is_refused_once_and_the_models_in_use_kept(caplog):
    follower = fed(SnapshotFollower(NAMES, "the topic"), publish("lead", signed(trained(10), 1), "a0a0a0a0"))
    assert newness(follower.take({}, KEY)) == {"lead": (10, 1)}
    theirs = signed(trained(20), 2, key=b"another key")
    fed(follower, publish("lead", theirs, "b1b1b1b1", header={"position": 20, "version": 2}))
    with caplog.at_level(logging.ERROR, logger="stream.model_follower"):
        assert follower.take({"lead": (10, 1)}, KEY) == []
        assert follower.take({"lead": (10, 1)}, KEY) == []
        fed(follower, publish("lead", theirs, "b1b1b1b1", header={"position": 20, "version": 2}))  # again
        assert follower.take({"lead": (10, 1)}, KEY) == []
    [refusal] = caplog.messages
    assert refusal.startswith("refusing the lead snapshot v2 (training position 20) of the topic: "
                              "bad signature")
    assert follower.held() == (0, 0, 0)
    fed(follower, publish("lead", signed(trained(30), 3), "c2c2c2c2"))
    assert newness(follower.take({"lead": (10, 1)}, KEY)) == {"lead": (30, 3)}


def test_a_refused_snapshot_is_passed_over_for_an_older_one_still_newer_than_the_models_in_use(caplog):
    good = publish("lead", signed(trained(20), 2), "a0a0a0a0")
    bad = publish("lead", signed(trained(30), 3, key=b"another key"), "b1b1b1b1",
                  header={"position": 30, "version": 3})
    with caplog.at_level(logging.ERROR, logger="stream.model_follower"):
        assert newness(fed(SnapshotFollower(NAMES), good + bad).take({"lead": (10, 1)}, KEY)) == {
            "lead": (20, 2)}
        assert fed(SnapshotFollower(NAMES), good + bad).take({"lead": (20, 2)}, KEY) == []
    assert len(caplog.messages) == 2


def test_a_snapshot_whose_manifest_lies_about_it_is_refused(caplog):
    blob = signed(trained(20), 2)
    follower = SnapshotFollower(NAMES)
    with caplog.at_level(logging.ERROR, logger="stream.model_follower"):
        fed(follower, publish("lead", blob, "a0a0a0a0", header={"position": 900, "version": 2}))
        assert follower.take({}, KEY) == []
        fed(follower, publish("fraud", blob, "b1b1b1b1"))  # the lead models, under the fraud name
        assert follower.take({}, KEY) == []
    assert [m.count("its header does not match its manifest") for m in caplog.messages] == [1, 1]
    fed(follower, publish("lead", blob, "c2c2c2c2"))  # what it says of itself: taken
    assert newness(follower.take({}, KEY)) == {"lead": (20, 2)}


def test_a_forged_snapshot_is_refused_without_running_it(caplog):
    bomb = pickle.dumps(Bomb())
    header = orjson.dumps({"format": 1, "task": "lead", "version": 7, "position": 500,
                           "payload_bytes": len(bomb)})
    signed_part = persistence.MAGIC + len(header).to_bytes(4, "big") + header + bomb
    for tag in (b"\0" * 32, hmac.new(b"the attacker's key", signed_part, hashlib.sha256).digest()):
        follower = fed(SnapshotFollower(NAMES), publish("lead", signed_part + tag, "a0a0a0a0",
                                                        header={"position": 500, "version": 7}))
        with caplog.at_level(logging.ERROR, logger="stream.model_follower"):
            assert follower.take({}, KEY) == []
    assert EXECUTED == [] and caplog.text.count("bad signature") == 2


def test_memory_stays_bounded_over_a_long_tail_of_publications(caplog):
    """200 publishes as the publisher makes them (chunks, manifest, tombstones of the previous publish),
    read in batches of various sizes; then 200 without tombstones; then 200 the follower refuses."""
    follower, previous, most = SnapshotFollower(NAMES), [], (0, 0)
    models = trained(0, n=5)
    blob = signed(models, 1)
    chunks = len(publish("lead", blob, "a0a0a0a0")) - 1
    batch = []
    for i in range(1, 601):
        key = KEY if i <= 400 else b"another key"
        models.position = i
        records = publish("lead", signed(models, i, key), f"{i:08x}", header={"position": i, "version": i})
        deletes = [(k, None) for k, _ in previous] if i <= 200 else []
        previous = records[:-1]
        batch += records + deletes
        if i % (1 + i % 4) == 0:  # a batch of 1 to 4 publishes
            fed(follower, batch)
            most = tuple(map(max, most, follower.held()[:2]))
            with caplog.at_level(logging.ERROR, logger="stream.model_follower"):
                swaps = follower.take({"lead": (0, 0)}, KEY)
            assert newness(swaps) == ({"lead": (i, i)} if i <= 400 else {})
            assert follower.held() == (0, 0, 0), i  # what was taken or refused is forgotten
            batch = []
    assert most == (4, 4 * chunks) and len(follower._refused) == REMEMBERED_REFUSALS
    assert len(caplog.messages) == 200 and all("bad signature" in m for m in caplog.messages)

