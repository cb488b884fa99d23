"""Model snapshots on disk: restored as saved, with the registry's champion (no broker)."""

from dataclasses import replace

from online_models.registry import CHAMPIONS
from stream import model_store
from stream.settings import Settings


def test_a_restored_snapshot_publishes_the_registry_champion(tmp_path):
    settings = replace(Settings(), home=tmp_path, model_key="test-key")
    models = model_store.load_or_create("fraud", settings)
    other = next(name for name in models.models if name != CHAMPIONS["fraud"])
    models.champion = other  # as saved by a version whose champion was another model
    model_store.save(models, settings)
    restored = model_store.load_or_create("fraud", settings)
    assert restored.champion == CHAMPIONS["fraud"]
    assert sorted(restored.models) == sorted(models.models)
