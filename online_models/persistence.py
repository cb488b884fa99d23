"""Signed, versioned snapshots of a task's models, and their transport in chunks.

A snapshot is ``MAGIC | header length (4 bytes) | header (JSON) | payload (pickle) | tag``,
where ``tag`` is the HMAC-SHA256, under a secret key, of everything before it.
:func:`load` checks the magic and the tag (``hmac.compare_digest``) **before**
unpickling anything, and refuses an unsigned, truncated, tampered or
wrongly-keyed blob with :class:`SnapshotError`: a pickle runs code when loaded,
so only bytes signed with our key are ever unpickled. The header (task,
version, position in ``training-examples``, examples learned) can be read
without unpickling, with :func:`read_header`.

A trained forest of 10 trees pickles to about 15 MB, more than Kafka's default
1 MB message limit: :func:`split_chunks` cuts a snapshot into records of at
most ``max_bytes`` and :func:`join_chunks` puts them back together, checking
that every chunk is there and that the whole has the SHA-256 it was cut with.

>>> from online_models.task_models import TaskModels
>>> key = b"a secret of 32 bytes or more...."
>>> blob = dump(TaskModels("lead", n_trees=1), key, version=3)
>>> read_header(blob, key)["version"], load(join_chunks(split_chunks(blob, 4096)), key).version
(3, 3)
>>> load(blob[:-1] + bytes([blob[-1] ^ 1]), key)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
online_models.persistence.SnapshotError: refusing model snapshot: bad signature (tampered, or ...)
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from online_models.task_models import TaskModels

#: First bytes of a signed snapshot (format 1).
MAGIC = b"SSMODEL1"
#: First bytes of a chunk of a snapshot.
CHUNK_MAGIC = b"SSCHUNK1"
TAG_BYTES = hashlib.sha256().digest_size
_LENGTH = struct.Struct(">I")
_CHUNK_HEAD = struct.Struct(">8s32sII")  # magic, SHA-256 of the whole snapshot, index, count
#: Default largest chunk: under Kafka's default 1 MB message limit, with room for the record overhead.
MAX_CHUNK_BYTES = 900_000


class SnapshotError(ValueError):
    """A model snapshot that is refused: unsigned, tampered, wrongly keyed, incomplete or not ours."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"refusing model snapshot: {detail}")
        self.detail = detail


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or not key:
        msg = "the model-signing key is empty: set SCORESTREAM_MODEL_KEY to a long random secret"
        raise ValueError(msg)


def _tag(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()


def dump(models: TaskModels, key: bytes, version: int) -> bytes:
    """A signed snapshot of ``models`` as ``version`` (the caller's counter: larger is newer)."""
    _check_key(key)
    if version < 0:
        msg = f"snapshot version must be >= 0, got {version}"
        raise ValueError(msg)
    models.version = version
    payload = pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL)
    header = orjson.dumps({
        "format": 1, "task": models.task, "version": version, "position": models.position,
        "champion": models.champion, "learned": models.learned, "payload_bytes": len(payload),
    })
    signed = MAGIC + _LENGTH.pack(len(header)) + header + payload
    return signed + _tag(key, signed)


def _verified(blob: bytes, key: bytes) -> tuple[dict[str, Any], memoryview]:
    """The header and payload of a blob whose signature holds; nothing is unpickled here.

    The parts are views, not copies: copying a 25 MB snapshot holds the GIL for milliseconds,
    and the snapshot publisher verifies in a thread beside the event loop.
    """
    _check_key(key)
    blob = bytes(blob)
    if not blob.startswith(MAGIC):
        msg = "not a signed Scorestream snapshot (no magic); it is never unpickled"
        raise SnapshotError(msg)
    if len(blob) < len(MAGIC) + _LENGTH.size + TAG_BYTES:
        msg = f"truncated: {len(blob)} bytes"
        raise SnapshotError(msg)
    signed, tag = memoryview(blob)[:-TAG_BYTES], blob[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, signed)):
        msg = "bad signature (tampered, or signed with another key)"
        raise SnapshotError(msg)
    (length,) = _LENGTH.unpack_from(signed, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    header = orjson.loads(signed[start:start + length])
    payload = signed[start + length:]
    if header.get("format") != 1 or header.get("payload_bytes") != len(payload):
        msg = f"unsupported or inconsistent header {header}"
        raise SnapshotError(msg)
    return header, payload


def read_header(blob: bytes, key: bytes) -> dict[str, Any]:
    """The verified header of a snapshot (task, version, position, learned…), without unpickling."""
    return _verified(blob, key)[0]


def load(blob: bytes, key: bytes, task: str | None = None) -> TaskModels:
    """The models of a signed snapshot; the signature is verified before anything is unpickled."""
    header, payload = _verified(blob, key)
    if task is not None and header["task"] != task:
        msg = f"it holds the {header['task']} models, not the {task} models"
        raise SnapshotError(msg)
    models = pickle.loads(payload)  # signed with our key: verified above
    if not isinstance(models, TaskModels):
        msg = f"it holds a {type(models).__name__}, not TaskModels"
        raise SnapshotError(msg)
    models.version = header["version"]
    return models


def split_chunks(blob: bytes, max_bytes: int = MAX_CHUNK_BYTES) -> list[bytes]:
    """Cut a snapshot into chunks of at most ``max_bytes`` each, header included."""
    return list(iter_chunks(blob, hashlib.sha256(blob).digest(), max_bytes))


def chunk_count(blob: bytes, max_bytes: int = MAX_CHUNK_BYTES) -> int:
    """How many chunks :func:`split_chunks` cuts ``blob`` into."""
    room = max_bytes - _CHUNK_HEAD.size
    if room <= 0:
        msg = f"max_bytes must exceed the {_CHUNK_HEAD.size}-byte chunk header, got {max_bytes}"
        raise ValueError(msg)
    return max(1, -(-len(blob) // room))


def iter_chunks(blob: bytes, digest: bytes, max_bytes: int = MAX_CHUNK_BYTES) -> Iterator[bytes]:
    """:func:`split_chunks` one chunk at a time, ``digest`` being the blob's SHA-256 (computed
    beforehand, perhaps in a thread): each step is one copy of at most ``max_bytes``, short
    enough for an event loop to take between two other tasks."""
    count = chunk_count(blob, max_bytes)
    room = max_bytes - _CHUNK_HEAD.size
    view = memoryview(blob)
    for index in range(count):
        yield _CHUNK_HEAD.pack(CHUNK_MAGIC, digest, index, count) + view[index * room:(index + 1) * room]


def join_chunks(chunks: Iterable[bytes]) -> bytes:
    """The snapshot cut by :func:`split_chunks`, from its chunks in any order (repeats tolerated).

    Refused with :class:`SnapshotError` if chunks are missing, foreign, or do not add up
    to the SHA-256 they were cut with.
    """
    parts: dict[int, bytes] = {}
    digests, counts = set(), set()
    for chunk in chunks:
        if len(chunk) < _CHUNK_HEAD.size or not chunk.startswith(CHUNK_MAGIC):
            msg = "a chunk is not a snapshot chunk"
            raise SnapshotError(msg)
        _, digest, index, count = _CHUNK_HEAD.unpack_from(chunk)
        digests.add(digest)
        counts.add(count)
        data = bytes(chunk[_CHUNK_HEAD.size:])
        if parts.setdefault(index, data) != data:
            msg = f"two different chunks numbered {index}"
            raise SnapshotError(msg)
    if len(digests) != 1 or len(counts) != 1:
        msg = f"chunks of {len(digests)} different snapshots mixed (or none given)"
        raise SnapshotError(msg)
    (count,) = counts
    missing = sorted(set(range(count)) - set(parts))
    if missing or len(parts) != count:
        msg = f"incomplete: chunks {missing[:10]} of {count} missing"
        raise SnapshotError(msg)
    blob = b"".join(parts[i] for i in range(count))
    if hashlib.sha256(blob).digest() != digests.pop():
        msg = "chunks joined do not match their checksum"
        raise SnapshotError(msg)
    return blob
