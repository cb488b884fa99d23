"""How model snapshots lie in the compacted snapshot topic (``<app id>-model-snapshots``): pure logic.

A snapshot is named like its local file (``fraud``, ``lead.challengers``: see
``stream.model_store.snapshot_name``). Publishing one writes, in this order, to the
topic's single partition:

1. its chunks (:func:`online_models.persistence.split_chunks`, under Kafka's 1 MB
   message limit), keyed ``<name>/<publish id>/<index>``. The publish id is random, so
   two processes publishing the same name at once (every worker saves at shutdown)
   never write the same key, and a crash halfway leaves chunks no manifest names
   beside the previous snapshot, intact;
2. once every chunk is acknowledged, its *manifest*, keyed ``<name>``: publish id,
   chunk count, SHA-256 of the snapshot, and the version and position of its signed
   header. Compaction keeps the last manifest of each name: a later snapshot
   replaces an earlier one;
3. tombstones for the chunks that publish made obsolete: the publisher's previous
   publish of the name and, after its first, the chunks it found at start written
   before the name's newest manifest (older snapshots, and crashed publishes).

One case is left open: chunks found at start belonging to another process's publish
still under way, whose manifest lands after this process's first publish (a publish
lasting longer than the time between that start and that publish). They are deleted,
and until the next publish of that name its newest manifest is incomplete: readers
fall back to the local snapshot. Nothing is read that should not be.

A reader keeps the last value of each key, as compaction will, and every manifest
it met; it takes the newest (position in ``training-examples``, then version) whose
chunks are all there and join up to its SHA-256 (:func:`~online_models.persistence.join_chunks`
refuses chunks of two snapshots), so a reader before or after compaction, or during
a publish, finds a whole snapshot. Nothing read here is trusted: the blob is
verified with the signing key before anything in it is unpickled
(``stream.model_store``). Whoever may write to the topic can withhold snapshots
(workers then fall back), never make a worker unpickle bytes we did not sign.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from online_models.persistence import MAX_CHUNK_BYTES, SnapshotError, chunk_count, iter_chunks, join_chunks

log = logging.getLogger(__name__)

#: A Kafka record as this module sees it: key, and value (None: a tombstone).
Record = tuple[bytes, bytes | None]

MANIFEST_FORMAT = 1
#: Largest record (key, value and overhead) a publisher sends: a chunk and its key fit, under the
#: broker's default ``message.max.bytes`` (1 MiB + 12).
MAX_RECORD_BYTES = 1_000_000
#: Most chunks a manifest may name (90 GB): a forged count must not make a reader build a huge list.
MAX_CHUNKS = 100_000
_PUBLISH_ID = re.compile(r"[0-9a-f]{8,32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_key(name: str) -> bytes:
    return name.encode()


def chunk_key(name: str, publish_id: str, index: int) -> bytes:
    """The key of a snapshot's chunk.

    >>> chunk_key("fraud", "0f3a9c2e", 2)
    b'fraud/0f3a9c2e/2'
    """
    return f"{name}/{publish_id}/{index}".encode()


@dataclass(frozen=True)
class Manifest:
    """What a publish says of its snapshot; a claim until the snapshot's signature is checked."""

    name: str
    publish_id: str
    sha256: str
    chunks: int
    version: int
    position: int

    @property
    def chunk_keys(self) -> list[bytes]:
        return [chunk_key(self.name, self.publish_id, i) for i in range(self.chunks)]

    @property
    def newness(self) -> tuple[int, int]:
        """Position in ``training-examples``, then version: larger is newer."""
        return self.position, self.version

    def encode(self) -> bytes:
        return orjson.dumps({"format": MANIFEST_FORMAT, "publish_id": self.publish_id,
                             "sha256": self.sha256, "chunks": self.chunks,
                             "version": self.version, "position": self.position})

    @classmethod
    def decode(cls, name: str, value: bytes) -> Manifest:
        """The manifest a record holds; ValueError if it is not a well-formed one."""
        fields: Any = orjson.loads(value)
        if not isinstance(fields, dict) or fields.get("format") != MANIFEST_FORMAT:
            msg = f"not a format-{MANIFEST_FORMAT} manifest"
            raise ValueError(msg)
        publish_id, sha256, chunks = fields.get("publish_id"), fields.get("sha256"), fields.get("chunks")
        version, position = fields.get("version"), fields.get("position")
        if not (isinstance(publish_id, str) and _PUBLISH_ID.fullmatch(publish_id)
                and isinstance(sha256, str) and _SHA256.fullmatch(sha256)
                and type(chunks) is int and 0 < chunks <= MAX_CHUNKS
                and type(version) is int and type(position) is int):
            msg = f"malformed manifest {fields}"
            raise ValueError(msg)
        return cls(name, publish_id, sha256, chunks, version, position)


@dataclass(frozen=True)
class Publication:
    """The records of one publish: the chunks, then the manifest (sent once the chunks are acknowledged)."""

    manifest: Manifest
    blob: bytes
    max_bytes: int

    def chunks(self) -> Iterator[tuple[bytes, bytes]]:
        """The chunk records, each cut when asked for (one copy of under a megabyte)."""
        digest = bytes.fromhex(self.manifest.sha256)
        return zip(self.manifest.chunk_keys, iter_chunks(self.blob, digest, self.max_bytes), strict=True)

    @property
    def manifest_record(self) -> tuple[bytes, bytes]:
        return manifest_key(self.manifest.name), self.manifest.encode()


def publication(name: str, blob: bytes, header: dict[str, Any], publish_id: str,
                max_bytes: int = MAX_CHUNK_BYTES) -> Publication:
    """How to publish ``blob``, a signed snapshot whose verified header is ``header``.

    It hashes the whole blob (tens of milliseconds for 25 MB, without the GIL): a publisher
    calls it in a thread, then takes the chunks one at a time.
    """
    if not _PUBLISH_ID.fullmatch(publish_id) or "/" in name:
        msg = f"bad snapshot name {name!r} or publish id {publish_id!r}"
        raise ValueError(msg)
    manifest = Manifest(name, publish_id, hashlib.sha256(blob).hexdigest(), chunk_count(blob, max_bytes),
                        header["version"], header["position"])
    return Publication(manifest, blob, max_bytes)


@dataclass(frozen=True)
class Candidate:
    """A manifest whose chunks are all on the topic: a snapshot once they join up."""

    manifest: Manifest
    chunks: tuple[bytes, ...]

    def assemble(self) -> bytes:
        """The snapshot; :class:`SnapshotError` if the chunks are mixed, damaged or not the manifest's."""
        blob = join_chunks(self.chunks)
        if hashlib.sha256(blob).hexdigest() != self.manifest.sha256:
            msg = "its chunks are not the snapshot its manifest names"
            raise SnapshotError(msg)
        return blob


@dataclass
class SnapshotLog:
    """What a reader of the snapshot topic found, for the snapshot names it asked about."""

    #: Whether the topic exists (``scorestream topics create`` makes it).
    topic_exists: bool = True
    #: Per name, manifests whose chunks are all present, newest first.
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    #: Per name, chunk keys written before the name's newest manifest: obsolete once this
    #: process has published a newer one.
    superseded: dict[str, list[bytes]] = field(default_factory=dict)
    #: Per name, why manifests were passed over (missing chunks, malformed), for the log.
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def snapshots(self, name: str) -> Iterator[tuple[Manifest, bytes]]:
        """Each whole snapshot of ``name``, newest first, assembled one at a time; not yet verified."""
        for candidate in self.candidates.get(name, []):
            try:
                yield candidate.manifest, candidate.assemble()
            except SnapshotError as error:
                log.warning("passing over the %s snapshot v%d of the snapshot topic: %s", name,
                            candidate.manifest.version, error.detail)


class LogReader:
    """Reads the snapshot topic's records in offset order, one at a time (bounded memory:
    only the last value of each key of the names asked about is kept)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = set(names)
        self._offset = 0
        self._chunks: dict[bytes, tuple[int, bytes]] = {}  # key -> (offset, value)
        self._manifests: dict[str, list[tuple[int, Manifest]]] = {}
        self._last_manifest: dict[str, int] = {}
        self._skipped: dict[str, list[str]] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        offset, self._offset = self._offset, self._offset + 1
        if key is None:
            return
        name, slash, _ = key.decode(errors="replace").partition("/")
        if name not in self._names:
            return
        if slash:
            if value is None:
                self._chunks.pop(key, None)
            else:
                self._chunks[key] = (offset, value)
            return
        self._last_manifest[name] = offset
        if value is None:  # a deleted manifest: what it named is no longer offered
            self._manifests[name] = []
            return
        try:
            self._manifests.setdefault(name, []).append((offset, Manifest.decode(name, value)))
        except ValueError as error:
            self._skipped.setdefault(name, []).append(f"offset {offset}: {error}")

    def forget(self, name: str, keep: Callable[[Manifest], bool]) -> None:
        """Forget the manifests of ``name`` that ``keep`` rejects, the chunks only they name, and
        why manifests of ``name`` were passed over.

        For a reader that follows the topic for ever (``stream.model_follower``): once it has
        taken a snapshot, what is older can never be used, and its memory stays bounded.
        """
        kept, dropped = [], []
        for entry in self._manifests.get(name, []):
            (kept if keep(entry[1]) else dropped).append(entry)
        self._manifests[name] = kept
        named = {key for _, manifest in kept for key in manifest.chunk_keys}
        for _, manifest in dropped:
            for key in manifest.chunk_keys:
                if key not in named:
                    self._chunks.pop(key, None)
        self._skipped.pop(name, None)

    def held(self) -> tuple[int, int, int]:
        """Manifests, chunks and bytes of chunks kept: what a long-running reader's memory is."""
        return (sum(map(len, self._manifests.values())), len(self._chunks),
                sum(len(value) for _, value in self._chunks.values()))

    def result(self) -> SnapshotLog:
        """What was read so far (the reader is left as it was: it may read on, and be asked again)."""
        found = SnapshotLog(skipped={name: list(reasons) for name, reasons in self._skipped.items()})
        for name in self._names:
            newest_first = sorted(self._manifests.get(name, []), key=lambda om: (om[1].newness, om[0]),
                                  reverse=True)
            seen: set[Manifest] = set()
            for _, manifest in newest_first:
                if manifest in seen:  # sent twice
                    continue
                seen.add(manifest)
                present = [self._chunks.get(key) for key in manifest.chunk_keys]
                if any(chunk is None for chunk in present):
                    if name not in found.candidates:  # older ones' chunks are deleted as a rule
                        missing = sum(chunk is None for chunk in present)
                        found.skipped.setdefault(name, []).append(
                            f"v{manifest.version}: {missing} of its {manifest.chunks} chunks missing")
                    continue
                found.candidates.setdefault(name, []).append(
                    Candidate(manifest, tuple(chunk[1] for chunk in present if chunk is not None)))
            last = self._last_manifest.get(name, -1)
            found.superseded[name] = [key for key, (offset, _) in self._chunks.items()
                                      if offset < last and key.startswith(name.encode() + b"/")]
        return found


def read_log(records: Iterable[Record], names: Iterable[str]) -> SnapshotLog:
    """What the snapshot topic holds for ``names``, from its records in offset order."""
    reader = LogReader(names)
    for key, value in records:
        reader.add(key, value)
    return reader.result()
