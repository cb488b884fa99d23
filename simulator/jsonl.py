"""Events to and from JSON-lines files (one event per ``\\n``-terminated line).

A file of simulated events is a replayable, diffable fixture: the same seed
gives the same bytes.

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = pathlib.Path(folder) / "events.jsonl"
...     written = write_jsonl([{"topic": "t", "n": 1}, {"topic": "t", "n": 2}], path)
...     numbers = [event["n"] for event in read_jsonl(path)]
>>> written, numbers
(2, [1, 2])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import orjson

_BATCH = 1000


def write_jsonl(events: Iterable[dict], path: str | os.PathLike[str] | BinaryIO) -> int:
    """Write ``events`` as JSON lines to ``path`` (or a binary file object); return the count."""
    if hasattr(path, "write"):
        return _write(events, path)
    with open(path, "wb") as out:
        return _write(events, out)


def _write(events: Iterable[dict], out: BinaryIO) -> int:
    written = 0
    batch: list[bytes] = []
    for event in events:
        batch.append(orjson.dumps(event))
        if len(batch) == _BATCH:
            written += _flush(batch, out)
    return written + _flush(batch, out)


def _flush(batch: list[bytes], out: BinaryIO) -> int:
    if not batch:
        return 0
    out.write(b"\n".join(batch) + b"\n")
    count = len(batch)
    batch.clear()
    return count


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict]:
    """Lazily read events written by :func:`write_jsonl` (blank lines are skipped)."""
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
