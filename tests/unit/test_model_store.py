"""Model snapshots on disk: restored as saved, with the registry's champion (no broker)."""

import asyncio
from dataclasses import replace

from online_models.label_join import TrainingExample
from online_models.registry import CHAMPIONS
from stream import model_store
from stream.settings import Settings

T0 = 1_767_225_600_000


def test_a_restored_snapshot_publishes_the_registry_champion(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("fraud", settings)
    other = next(name for name in models.models if name != CHAMPIONS["fraud"])
    models.champion = other  # as saved by a version whose champion was another model
    model_store.save(models, settings)
    restored = model_store.load_or_create("fraud", settings)
    assert restored.champion == CHAMPIONS["fraud"]
    assert sorted(restored.models) == sorted(models.models)


def test_a_forked_child_writes_the_models_as_they_were_when_it_was_made(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("lead", settings)
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
    restored = model_store.restore("lead", settings)
    assert restored.version == models.version == 1
    assert restored.learned["logreg"] == 50 and models.learned["logreg"] == 70
    assert list(tmp_path.glob("models/*.tmp")) == []


def test_the_remembered_example_ids_are_saved_and_restored(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("lead", settings)
    examples = [TrainingExample("lead", f"v{i}/s1", f"w{i}", T0 + i, i % 2 == 0, T0 + i, "label",
                                {"page_views_7d": i}, {}) for i in range(5)]
    for offset, example in enumerate(examples):
        models.apply_example(example, position=offset)
    assert models.apply_example(examples[2], position=5) == "duplicate"
    model_store.save(models, settings)
    restored = model_store.load_or_create("lead", settings)
    assert restored.version == 1 and restored.position == 5 and restored.duplicates == 1
    assert restored.apply_example(examples[3], position=6) == "duplicate"  # after a restart too
    assert restored.learned == models.learned
