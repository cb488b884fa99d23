"""The peer: Quix Streams doing the engine's per-event work, the way its docs show.

One ``StreamingDataFrame`` per input topic; a stateful ``apply`` (RocksDB state with its changelog
topic, at-least-once) scores each event with the very same core as the engine (a one-record
``BatchScorer.score_batch``: decode → validate → features from ``features.registry`` → the River
champion → encode), then ``set_timestamp`` stamps the wall-clock processing time (so the harness can
time it from the output records, as it does the engine) and ``to_topic`` produces the score.

Rare side outputs (fraud alerts, dead letters) are not routed: the simulated events are all valid
and alerts are a fraction of a percent. Run by the harness as a process::

    python -m bench.peer_quix --group GROUP --state-dir DIR
"""

from __future__ import annotations

import argparse
import logging
import time

from quixstreams import Application, message_context

from bench.common import bench_settings, make_scorer
from stream.pipeline import TASKS, BatchScorer, InputRecord


def build(group: str, state_dir: str) -> Application:
    settings = bench_settings()
    app = Application(broker_address=settings.kafka_bootstrap, consumer_group=group,
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel=logging.WARNING,
                      processing_guarantee="at-least-once")
    for task in TASKS.values():
        scorer = make_scorer(task, settings)
        source = app.topic(task.input_topic, key_deserializer="bytes", value_deserializer="bytes")
        sink = app.topic(task.score_topic, key_serializer="bytes", value_serializer="bytes")
        sdf = app.dataframe(source)
        sdf = sdf.apply(_scorer(scorer), stateful=True, metadata=True)
        sdf = sdf.filter(lambda value: value is not None)
        sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: time.time_ns() // 1_000_000)
        sdf.to_topic(sink)
    return app


def _scorer(scorer: BatchScorer):  # noqa: ANN202 - Quix's callback signature
    def score(value: bytes, key: bytes, timestamp: int, headers: object, state: object) -> bytes | None:
        def load(entity: bytes) -> bytes | None:
            raw = state.get("s")
            return raw.encode() if raw is not None else None

        context = message_context()
        result = scorer.score_batch([InputRecord(value, key, context.partition, context.offset)], load)
        for _, (_, raw) in result.state_writes.items():
            state.set("s", raw.decode())
        for out in result.outputs:
            if out.topic == scorer.task.score_topic:
                return out.value
        return None

    return score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    build(args.group, args.state_dir).run()


if __name__ == "__main__":
    main()
