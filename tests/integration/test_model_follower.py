"""A worker following the snapshot topic swaps in each snapshot a trainer publishes, through a broker."""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import replace

import pytest

from online_models.task_models import CHAMPION, TaskModels
from online_models.testing import labelled_stream
from stream import admin, model_follower, model_store, topics
from stream.snapshot_topic import SnapshotPublisher

pytestmark = pytest.mark.integration

KEY = "the secret the trainer and its workers share"
NAMES = {"fraud": "fraud", "lead": "lead"}


def learn(models: TaskModels, n: int, seed: int, position: int) -> TaskModels:
    """The trainer's models, having learned ``n`` more examples, up to ``position`` of training-examples."""
    for x, y in labelled_stream(models.task, n, seed=seed):
        models.learn_one(x, y, {})
    models.position = position
    return models


class Worker:
    """What a worker gives :func:`model_follower.follow`: its models in use, swapped in place."""

    def __init__(self) -> None:
        self.models: dict[str, TaskModels] = {}
        self.swaps: list[tuple[str, int, int, float]] = []

    def newness(self, task: str) -> tuple[int, int]:
        models = self.models.get(task)
        return model_follower.NEVER if models is None else (models.position, models.version)

    def swap(self, task: str, models: TaskModels) -> None:
        self.models[task] = models

    def on_swap(self, task: str, models: TaskModels, seconds: float) -> None:
        self.swaps.append((task, models.position, models.version, seconds))

    async def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.swaps) < count:
            assert time.monotonic() < deadline, f"{len(self.swaps)} swaps of {count}: {self.swaps}"
            await asyncio.sleep(0.1)


def assert_same_models(taken: TaskModels, published: TaskModels) -> None:
    assert (taken.task, taken.position, taken.version) == (published.task, published.position,
                                                           published.version)
    for x, _ in labelled_stream(published.task, 20, seed=99):
        ours, theirs = taken.score_one(x), published.score_one(x)
        assert ours.keys() == theirs.keys()
        assert all(abs(ours[name] - theirs[name]) <= 1e-12 for name in ours)


async def publish(publisher: SnapshotPublisher, models: TaskModels, settings) -> TaskModels:
    """Save and publish the trainer's models; a copy of them as published."""
    path = model_store.save(models, settings)
    await publisher.publish(model_store.snapshot_name(models.task, CHAMPION), path)
    return copy.deepcopy(models)


async def follows_the_trainer(settings) -> None:
    snapshots = topics.snapshot_topic(settings.app_id)
    await admin.delete_topics(settings, names=(snapshots,))  # the topic comes after the worker
    trainer = {task: TaskModels(task, n_trees=3, champion=settings.champion(task), holds=CHAMPION)
               for task in NAMES}
    worker = Worker()
    following = asyncio.create_task(model_follower.follow(
        settings, NAMES, worker.newness, worker.swap, on_swap=worker.on_swap, poll_timeout_s=0.2,
        retry_s=0.5))
    await asyncio.sleep(1.5)
    assert not following.done()
    await admin.create_topics(settings, (snapshots,))
    publisher, late = SnapshotPublisher(settings, {}), None
    try:
        first = {task: await publish(publisher, learn(models, 300, seed=1, position=300), settings)
                 for task, models in trainer.items()}
        await worker.wait_for(2)
        for task, published in first.items():
            assert_same_models(worker.models[task], published)
        # the trainer learns more, and publishes the fraud models again
        second = await publish(publisher, learn(trainer["fraud"], 300, seed=2, position=600), settings)
        await worker.wait_for(3)
        assert_same_models(worker.models["fraud"], second)
        assert_same_models(worker.models["lead"], first["lead"])
        assert [swap[:3] for swap in worker.swaps] == sorted(
            [("fraud", 300, 1), ("lead", 300, 1)]) + [("fraud", 600, 2)]
        assert all(seconds > 0 for *_, seconds in worker.swaps)

        # a worker starting now reads the topic from its start and loads the newest snapshots only
        newcomer = Worker()
        late = asyncio.create_task(model_follower.follow(settings, NAMES, newcomer.newness, newcomer.swap,
                                                         on_swap=newcomer.on_swap, poll_timeout_s=0.2))
        await newcomer.wait_for(2)
        await asyncio.sleep(1)
        assert sorted(swap[:3] for swap in newcomer.swaps) == [("fraud", 600, 2), ("lead", 300, 1)]
        assert_same_models(newcomer.models["fraud"], second)
    finally:
        await publisher.stop()
        for task in (following, late):
            if task is not None:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    await asyncio.sleep(1)
    assert len(worker.swaps) == 3, "nothing taken twice"


def test_a_worker_swaps_in_each_snapshot_the_trainer_publishes(engine, tmp_path):
    settings = replace(engine, model_key=KEY, home=tmp_path / "trainer")
    asyncio.run(follows_the_trainer(settings))
