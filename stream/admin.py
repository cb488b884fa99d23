"""Topic administration with aiokafka's admin client: create every topic, idempotently."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream import topics
from stream.settings import Settings


async def _existing_partitions(admin: AIOKafkaAdminClient) -> dict[str, int]:
    described = await admin.describe_topics()
    return {t["topic"]: len(t["partitions"]) for t in described if not t.get("error_code")}


async def create_topics(settings: Settings, names: tuple[str, ...] | None = None) -> list[str]:
    """Create the missing topics (default: all, and the app's internal ones); return those created.

    The app's changelogs and its model snapshot topic are compacted; the snapshot topic
    has one partition whatever ``SCORESTREAM_PARTITIONS`` says.

    Records carry their event time as Kafka timestamp, so time retention is off by
    default (``SCORESTREAM_TOPIC_RETENTION_MS``) and size retention bounds the disk.

    An existing topic with another partition count is an error: Faust's tables
    need input and changelog topics to agree.
    """
    changelogs = topics.changelog_topics(settings.app_id)
    snapshots = topics.snapshot_topic(settings.app_id)
    if names is None:
        names = topics.ALL_TOPICS + topics.app_topics(settings.app_id) + changelogs + (snapshots,)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = await _existing_partitions(admin)
        fixed = {**topics.FIXED_PARTITIONS, snapshots: 1}
        wanted = {n: fixed.get(n, settings.partitions) for n in names}
        wrong = {n: existing[n] for n in names if n in existing and existing[n] != wanted[n]}
        if wrong:
            msg = (f"topics exist with another partition count than {settings.partitions}: {wrong};"
                   " delete them (scorestream topics delete) or set SCORESTREAM_PARTITIONS")
            raise RuntimeError(msg)
        missing = [n for n in names if n not in existing]
        if missing:
            config = {"retention.ms": str(settings.topic_retention_ms),
                      "retention.bytes": str(settings.topic_retention_bytes)}
            configs = {n: {"cleanup.policy": "compact"} for n in changelogs}
            configs[snapshots] = topics.SNAPSHOT_TOPIC_CONFIG
            new = [NewTopic(n, wanted[n], 1, topic_configs=configs.get(n, config)) for n in missing]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        await _wait_for(admin, names)
        return missing
    finally:
        await admin.close()


async def delete_topics(settings: Settings, names: tuple[str, ...] | None = None,
                        prefix: str | None = None) -> list[str]:
    """Delete the named topics (default: all of Scorestream's) and those starting with ``prefix``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = set(names if names is not None else topics.ALL_TOPICS)
        if prefix:
            wanted |= {n for n in existing if n.startswith(prefix)}
        doomed = sorted(wanted & existing)
        if doomed:
            await admin.delete_topics(doomed)
            for _ in range(100):
                if not set(await admin.list_topics()) & set(doomed):
                    break
                await asyncio.sleep(0.1)
        return doomed
    finally:
        await admin.close()


async def _wait_for(admin: AIOKafkaAdminClient, names: tuple[str, ...], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        partitions = await _existing_partitions(admin)
        if all(n in partitions for n in names):
            return
        if asyncio.get_running_loop().time() > deadline:
            msg = f"topics not visible after {timeout} s: {[n for n in names if n not in partitions]}"
            raise TimeoutError(msg)
        await asyncio.sleep(0.1)
