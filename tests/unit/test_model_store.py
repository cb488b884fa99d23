"""Model snapshots on disk and from the snapshot topic's records: restored as saved, the newest trusted
one, with the configured champion and holding (no broker)."""

import asyncio
import copy
import hashlib
import hmac
import logging
import pickle
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from online_models import persistence
from online_models.label_join import TrainingExample
from online_models.persistence import split_chunks
from online_models.registry import CHAMPIONS
from online_models.task_models import ALL, CHALLENGERS, CHAMPION, TaskModels
from stream import model_store
from stream.settings import Settings
from stream.snapshot_records import Manifest, read_log
from tests.unit.test_online_persistence import EXECUTED, Bomb

T0 = 1_767_225_600_000


def test_a_restored_snapshot_publishes_the_configured_champion(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("fraud", settings, ALL)
    other = next(name for name in models.models if name != CHAMPIONS["fraud"])
    models.champion = other  # as saved by a version whose champion was another model
    model_store.save(models, settings)
    restored = model_store.load_or_create("fraud", settings, ALL)
    assert restored.champion == CHAMPIONS["fraud"]
    assert sorted(restored.models) == sorted(models.models)
    promoted = model_store.load_or_create("fraud", replace(settings, fraud_champion="logreg"), ALL)
    assert promoted.champion == "logreg" and promoted.describe()[0]["model"] == "logreg"


def learn_some(models, n=40):
    x = {"page_views_7d": 3.0, "pricing_views_7d": 1.0, "device": "mobile"}
    for i in range(n):
        models.learn_one(x, i % 3 == 0, {})
    return models


def test_a_worker_that_scored_challengers_inline_keeps_its_champion_when_they_go_separate(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    inline = learn_some(model_store.load_or_create("fraud", settings, ALL))
    model_store.save(inline, settings)
    worker = model_store.load_or_create("fraud", settings, CHAMPION)
    assert worker.names == ["arf", "hst"] and worker.learned == {"arf": 40, "hst": 40}
    assert worker.version == 1 and worker.holds == CHAMPION
    x = {"amount": 12.0}
    assert worker.score_one(x) == {k: v for k, v in inline.score_one(x).items() if k in worker.names}


def test_a_snapshot_without_a_model_now_needed_is_not_used(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    model_store.save(learn_some(model_store.load_or_create("lead", settings, CHAMPION)), settings)
    # the champion changed: the snapshot has no trained hoeffding tree, so learning starts over
    fresh = model_store.load_or_create("lead", replace(settings, lead_champion="hoeffding"), CHAMPION)
    assert fresh.names == ["hoeffding"] and fresh.position == -1 and fresh.learned == {"hoeffding": 0}


def test_challengers_have_a_snapshot_of_their_own(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    model_store.save(learn_some(model_store.load_or_create("lead", settings, CHALLENGERS)), settings)
    assert model_store.restore("lead", settings, CHAMPION) is None
    challengers = model_store.load_or_create("lead", settings, CHALLENGERS)
    assert challengers.names == ["logreg", "arf", "hoeffding", "rules"] and challengers.learned["arf"] == 40
    assert model_store.snapshot_path(settings, "lead", CHALLENGERS).name == "lead.challengers.snapshot"


def test_a_forked_child_writes_the_models_as_they_were_when_it_was_made(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("lead", settings, ALL)
    x = {"page_views_7d": 3.0, "pricing_views_7d": 1.0, "device": "mobile"}
    for i in range(50):
        models.learn_one(x, i % 3 == 0, {})

    async def save_then_learn() -> bool:
        saving = asyncio.ensure_future(model_store.save_in_child(models, settings))
        await asyncio.sleep(0)  # the child is forked: what the parent learns now is not in it
        for _ in range(20):
            models.learn_one(x, True, {})
        return await saving

    assert asyncio.run(save_then_learn())
    restored = model_store.restore("lead", settings, ALL)
    assert restored.version == models.version == 1
    assert restored.learned["logreg"] == 50 and models.learned["logreg"] == 70
    assert list(tmp_path.glob("models/*.tmp")) == []


def test_the_remembered_example_ids_are_saved_and_restored(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("lead", settings, CHAMPION)
    examples = [TrainingExample("lead", f"v{i}/s1", f"w{i}", T0 + i, i % 2 == 0, T0 + i, "label",
                                {"page_views_7d": i}, {}) for i in range(5)]
    for offset, example in enumerate(examples):
        models.apply_example(example, position=offset)
    assert models.apply_example(examples[2], position=5) == "duplicate"
    model_store.save(models, settings)
    restored = model_store.load_or_create("lead", settings, CHAMPION)
    assert restored.version == 1 and restored.position == 5 and restored.duplicates == 1
    assert restored.apply_example(examples[3], position=6) == "duplicate"  # after a restart too
    assert restored.learned == models.learned


# Restoring from the snapshot topic (its records as data; the broker's part is in the integration tests)

def on_topic(name, blob, position, version, publish_id="a0a0a0a0"):
    """The records a publish of ``blob`` leaves on the snapshot topic, with the manifest's claims."""
    chunks = split_chunks(blob, 4096)
    manifest = Manifest(name, publish_id, hashlib.sha256(blob).hexdigest(), len(chunks), version, position)
    return [*zip(manifest.chunk_keys, chunks, strict=True), (name.encode(), manifest.encode())]


def trained(settings, position, n=40, task="lead", holds=CHAMPION):
    """Fresh models (whatever the home holds) that learned ``n`` examples, up to ``position``."""
    models = learn_some(TaskModels(task, n_trees=1, champion=settings.champion(task), holds=holds), n)
    models.position = position
    return models


def topic_blob(models, key, version):
    return persistence.dump(copy.deepcopy(models), key, version)


def test_an_empty_home_restores_the_newest_snapshot_of_the_topic(tmp_path):
    settings = replace(Settings(), home=tmp_path / "new-machine", model_key="test-key")
    key = model_store.signing_key(settings)
    models = trained(settings, position=120, n=60)
    records = (on_topic("lead", topic_blob(trained(settings, 50), key, 3), 50, 3, "a0a0a0a0")
               + on_topic("lead", topic_blob(models, key, 4), 120, 4, "b1b1b1b1"))
    restored = model_store.load_or_create("lead", settings, CHAMPION,
                                          read_log(records, ["lead"]).snapshots("lead"))
    assert (restored.version, restored.position, restored.learned) == (4, 120, {"logreg": 60})
    x = {"page_views_7d": 2.0, "pricing_views_7d": 3.0, "device": "desktop"}
    assert restored.score_one(x) == models.score_one(x)
    model_store.save(restored, settings)  # the next local snapshot follows the topic's version
    assert model_store.restore("lead", settings, CHAMPION).version == 5


def test_the_newer_of_the_local_and_the_topic_snapshot_is_restored(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    key = model_store.signing_key(settings)
    local = trained(settings, position=100)
    model_store.save(local, settings)  # v1 at position 100
    for position, version, source in ((99, 9, "local"), (100, 1, "local"), (100, 2, "topic"),
                                      (101, 1, "topic")):
        records = on_topic("lead", topic_blob(trained(settings, position, n=7), key, version),
                           position, version)
        restored = model_store.restore_newest("lead", settings, CHAMPION,
                                              read_log(records, ["lead"]).snapshots("lead"))
        expected = (position, version) if source == "topic" else (100, 1)
        assert (restored.position, restored.version) == expected
        assert restored.learned["logreg"] == (7 if source == "topic" else 40)


def test_a_topic_snapshot_signed_with_another_key_is_refused_and_passed_over(tmp_path, caplog):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    key = model_store.signing_key(settings)
    records = (on_topic("lead", topic_blob(trained(settings, 50, n=5), key, 1), 50, 1, "a0a0a0a0")
               + on_topic("lead", topic_blob(trained(settings, 90), b"another key", 2), 90, 2, "b1b1b1b1"))
    with caplog.at_level(logging.ERROR, logger="stream.model_store"):
        restored = model_store.load_or_create("lead", settings, CHAMPION,
                                              read_log(records, ["lead"]).snapshots("lead"))
    assert (restored.position, restored.learned["logreg"]) == (50, 5)  # the older one, signed with ours
    [refusal] = caplog.messages
    assert refusal.startswith("refusing the lead snapshot v2 (training position 90) of "
                              "scorestream-model-snapshots: bad signature")
    assert "SCORESTREAM_MODEL_KEY is the same secret" in refusal
    # no other: fresh models, and the random key of this home is named as the reason
    caplog.clear()
    no_key = replace(settings, model_key="", home=tmp_path / "other")
    with caplog.at_level(logging.ERROR, logger="stream.model_store"):
        fresh = model_store.load_or_create("lead", no_key, CHAMPION,
                                           read_log(records, ["lead"]).snapshots("lead"))
    assert fresh.position == -1 and fresh.learned == {"logreg": 0} and len(caplog.messages) == 2
    assert all("it is not set here" in message for message in caplog.messages)


def test_a_forged_topic_snapshot_is_refused_without_running_it(tmp_path, caplog):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    model_store.save(trained(settings, position=10), settings)
    bomb = pickle.dumps(Bomb())
    header = orjson.dumps({"format": 1, "task": "lead", "version": 7, "position": 500,
                           "payload_bytes": len(bomb)})
    forged = persistence.MAGIC + len(header).to_bytes(4, "big") + header + bomb
    forged += hmac.new(b"the attacker's key", forged, hashlib.sha256).digest()
    records = on_topic("lead", forged, 500, 7)
    with caplog.at_level(logging.ERROR, logger="stream.model_store"):
        restored = model_store.load_or_create("lead", settings, CHAMPION,
                                              read_log(records, ["lead"]).snapshots("lead"))
    assert restored.position == 10 and EXECUTED == []
    assert "bad signature" in caplog.text


def test_a_topic_snapshot_whose_manifest_lies_about_it_is_refused(tmp_path, caplog):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    key = model_store.signing_key(settings)
    records = on_topic("lead", topic_blob(trained(settings, 20), key, 1), 9_999, 1)  # claims to be newer
    with caplog.at_level(logging.ERROR, logger="stream.model_store"):
        assert model_store.restore_newest("lead", settings, CHAMPION,
                                          read_log(records, ["lead"]).snapshots("lead")) is None
    assert "its header does not match its manifest" in caplog.text
    records = on_topic("lead", topic_blob(trained(settings, 20, task="fraud"), key, 1), 20, 1)
    with caplog.at_level(logging.ERROR, logger="stream.model_store"):
        assert model_store.restore_newest("lead", settings, CHAMPION,
                                          read_log(records, ["lead"]).snapshots("lead")) is None


def test_a_tampered_local_snapshot_still_stops_the_process_whatever_the_topic_holds(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    key = model_store.signing_key(settings)
    path = model_store.save(trained(settings, position=10), settings)
    blob = path.read_bytes()
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    records = on_topic("lead", topic_blob(trained(settings, 20), key, 1), 20, 1)
    with pytest.raises(persistence.SnapshotError, match="bad signature"):
        model_store.load_or_create("lead", settings, CHAMPION, read_log(records, ["lead"]).snapshots("lead"))


def _key_of(home: str) -> bytes:
    return model_store.signing_key(replace(Settings(), home=Path(home)))


def test_processes_sharing_a_home_that_start_together_get_the_same_random_key(tmp_path):
    """A worker and its learners (or two workers) started at once on a fresh home: one key, no crash."""
    import multiprocessing

    for attempt in range(3):
        home = str(tmp_path / f"home{attempt}")
        with multiprocessing.get_context("fork").Pool(6) as pool:
            keys = pool.map(_key_of, [home] * 6)
        assert len(set(keys)) == 1 and len(keys[0]) == 64
        assert sorted(p.name for p in Path(home).iterdir()) == ["model.key"]  # no temporary left

