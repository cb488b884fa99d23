"""Interoperability with a non-Python client: kcat (librdkafka) produces the inputs and reads the scores.

kcat's default partitioner (CRC32) differs from the Java/aiokafka one (murmur2):
the worker keeps each entity's state with the partition its records arrive on, so
scores stay correct whatever partitioner the producer used.
"""

from __future__ import annotations

import shutil
import subprocess

import orjson
import pytest

from simulator import simulate
from stream import topics
from stream.topics import KEY_FIELD

pytestmark = pytest.mark.integration


def kcat(*args: str, stdin: bytes | None = None, timeout: float = 120) -> bytes:
    assert shutil.which("kcat"), "kcat is missing: `make install` installs it (Debian package kcat)"
    done = subprocess.run(["kcat", *args], input=stdin, capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_kcat_in_kcat_out(engine, start_worker, tmp_path):
    start_worker()
    events = [e for e in simulate(2_000, seed=11) if e["topic"] in topics.INPUT_TOPICS]
    expected = {}
    for topic in topics.INPUT_TOPICS:
        lines = []
        for event in (e for e in events if e["topic"] == topic):
            body = {k: v for k, v in event.items() if k != "topic"}
            lines.append(f"{event[KEY_FIELD[topic]]}\t".encode() + orjson.dumps(body))
            expected.setdefault(topic, set()).add(event["event_id"])
        lines.append(b"k-bad\tthis is not json")
        path = tmp_path / f"{topic}.tsv"
        path.write_bytes(b"\n".join(lines) + b"\n")
        kcat("-P", "-b", engine.kafka_bootstrap, "-t", topic, "-K", "\t", "-l", str(path))

    for input_topic, score_topic in ((topics.WEB_EVENTS, topics.LEAD_SCORES),
                                     (topics.TRANSACTIONS, topics.TRANSACTION_SCORES)):
        n = len(expected[input_topic])
        out = kcat("-C", "-b", engine.kafka_bootstrap, "-t", score_topic, "-o", "beginning",
                   "-c", str(n), "-J", "-q")
        envelopes = [orjson.loads(line) for line in out.splitlines()]
        bodies = [orjson.loads(env["payload"]) for env in envelopes]
        assert sorted(b["event_id"] for b in bodies) == sorted(expected[input_topic])
        entity = KEY_FIELD[input_topic]
        assert all(env["key"] == body[entity] for env, body in zip(envelopes, bodies, strict=True))

    dead = kcat("-C", "-b", engine.kafka_bootstrap, "-t", topics.DEAD_LETTER, "-o", "beginning",
                "-c", "2", "-q")
    reasons = sorted(orjson.loads(line)["reason"] for line in dead.splitlines())
    assert reasons == ["malformed_json", "malformed_json"]
