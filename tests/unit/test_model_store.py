"""Model snapshots on disk: restored as saved, with the configured champion and holding (no broker)."""

import asyncio
from dataclasses import replace

from online_models.label_join import TrainingExample
from online_models.registry import CHAMPIONS
from online_models.task_models import ALL, CHALLENGERS, CHAMPION
from stream import model_store
from stream.settings import Settings

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
