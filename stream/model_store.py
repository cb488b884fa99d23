"""Model snapshots on local disk: signed, versioned, restored at start.

A snapshot is ``online_models.persistence``'s signed blob; it is verified with the
key before anything in it is unpickled. Files are written atomically (a temporary
file, then a rename), so a crash never leaves half a snapshot.

At start the newest snapshot (position in ``training-examples``, then version) among
the local file and those of the snapshot topic (:mod:`stream.snapshot_topic`) is
restored. A local snapshot that fails verification stops the process
(:class:`~online_models.persistence.SnapshotError`): this machine's disk was tampered
with. One from the topic that fails is logged and passed over, for the next one, the
local file or fresh models: the topic is shared, and a process with another key (or
anyone who may write to it) must not be able to stop every worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from online_models import persistence
from online_models.task_models import CHALLENGERS, TaskModels
from stream import topics
from stream.settings import Settings
from stream.snapshot_records import Manifest

log = logging.getLogger(__name__)


def signing_key(settings: Settings) -> bytes:
    """``SCORESTREAM_MODEL_KEY``, else a random key kept (0600) in the home folder."""
    if settings.model_key:
        return settings.model_key.encode()
    path = settings.home / "model.key"
    if not path.exists():  # processes sharing a home may start together: the first key made wins
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)  # whole when it appears, and never replaces another's
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip().encode()


def snapshot_name(task: str, holds: str) -> str:
    """``<task>`` for a scoring worker's snapshot, ``<task>.challengers`` for ``scorestream challengers``'."""
    return f"{task}.challengers" if holds == CHALLENGERS else task


def published_name(task: str) -> str:
    """``<task>.scoring``: the champion and anomaly detector ``scorestream trainer`` publishes for
    the workers to score with (``SCORESTREAM_LEARNING=trainer``)."""
    return f"{task}.scoring"


def snapshot_path(settings: Settings, task: str, holds: str) -> Path:
    """``<home>/models/<task>.snapshot`` for a scoring worker, ``<task>.challengers.snapshot`` for
    ``scorestream challengers``.
    """
    return settings.home / "models" / f"{snapshot_name(task, holds)}.snapshot"


def save(models: TaskModels, settings: Settings) -> Path:
    """Write the next version of ``models``' snapshot."""
    path = snapshot_path(settings, models.task, models.holds)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = persistence.dump(models, signing_key(settings), models.version + 1)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")  # a child and its parent may both write
    temporary.write_bytes(blob)
    os.replace(temporary, path)
    return path


async def save_in_child(models: TaskModels, settings: Settings) -> bool:
    """Write the next snapshot from a forked child; whether it was written.

    Pickling a trained forest takes hundreds of milliseconds (30 MB: 0.4 s here), during
    which no event would be scored. A child made by ``fork`` sees the models as they
    are at this instant (its memory is a copy-on-write image of ours) and pickles,
    signs and writes them while this process goes on scoring and learning: the way
    Redis writes its snapshots. Without ``fork`` (not POSIX), it saves in-process.
    """
    if not hasattr(os, "fork"):
        save(models, settings)
        return True
    signing_key(settings)  # made (if need be) here, not in the child
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        code = 1
        try:
            save(models, settings)
            code = 0
        finally:
            os._exit(code)  # no cleanup of the parent's loop, sockets or threads
    models.version += 1  # what the child wrote
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        log.error("the child saving the %s models failed (status %d)", models.task, status)
        return False
    return True


def restore(task: str, settings: Settings, holds: str) -> TaskModels | None:
    """The task's models from their snapshot, or None when there is none.

    A snapshot that fails verification raises :class:`persistence.SnapshotError`:
    the worker refuses to start on models it cannot trust.
    """
    path = snapshot_path(settings, task, holds)
    if not path.exists():
        return None
    models = persistence.load(path.read_bytes(), signing_key(settings), task=task)
    log.info("restored %s models v%d at training position %d", task, models.version, models.position)
    return models


def _newness(header: dict[str, Any]) -> tuple[int, int]:
    return header["position"], header["version"]


def restore_newest(task: str, settings: Settings, holds: str,
                   from_topic: Iterable[tuple[Manifest, bytes]] = ()) -> TaskModels | None:
    """The task's models from the newest trusted snapshot: the local file or one of ``from_topic``
    (the topic's, newest first, see :meth:`~stream.snapshot_records.SnapshotLog.snapshots`).

    Headers are compared (verified, nothing unpickled) before the one chosen is loaded. A
    local snapshot that fails verification raises :class:`persistence.SnapshotError`; one from
    the topic is logged as refused and passed over. On a tie the local file is kept.
    """
    key = signing_key(settings)
    path = snapshot_path(settings, task, holds)
    local = path.read_bytes() if path.exists() else None
    newest = _newness(persistence.read_header(local, key)) if local is not None else None
    models = newest_trusted(task, snapshot_name(task, holds), settings, from_topic, newer_than=newest)
    if models is not None or local is None:
        return models
    models = persistence.load(local, key, task=task)
    log.info("restored %s models v%d at training position %d", task, models.version, models.position)
    return models


def newest_trusted(task: str, name: str, settings: Settings, from_topic: Iterable[tuple[Manifest, bytes]],
                   newer_than: tuple[int, int] | None = None) -> TaskModels | None:
    """The newest snapshot of ``from_topic`` (newest first) that verifies and is newer than
    ``newer_than``, loaded; those refused are logged and passed over."""
    key = signing_key(settings)
    for manifest, blob in from_topic:
        if newer_than is not None and manifest.newness <= newer_than:
            return None  # the rest are older still (as their manifests say; headers are checked when used)
        try:
            header = persistence.read_header(blob, key)
            if header["task"] != task or _newness(header) != manifest.newness:
                msg = "its header does not match its manifest (task, position or version)"
                raise persistence.SnapshotError(msg)
        except persistence.SnapshotError as error:
            _log_refused(name, manifest, error, settings)
            continue
        models = persistence.load(blob, key, task=task)
        log.info("restored %s models v%d at training position %d from %s", task, models.version,
                 models.position, topics.snapshot_topic(settings.app_id))
        return models
    return None


def _log_refused(name: str, manifest: Manifest, error: persistence.SnapshotError,
                 settings: Settings) -> None:
    whose = ("" if settings.model_key else
             f" (it is not set here: this process signs with the random key in {settings.home}/model.key)")
    log.error("refusing the %s snapshot v%d (training position %d) of %s: %s. Processes trust each"
              " other's snapshots only if SCORESTREAM_MODEL_KEY is the same secret on all of them%s."
              " Passed over, for an older snapshot, the local one, or fresh models.", name,
              manifest.version, manifest.position, topics.snapshot_topic(settings.app_id),
              error.detail, whose)


def load_or_create(task: str, settings: Settings, holds: str,
                   from_topic: Iterable[tuple[Manifest, bytes]] = ()) -> TaskModels:
    """The task's restored models (:func:`restore_newest`), or new ones, holding what ``holds`` says.

    Which model is champion is configuration (``SCORESTREAM_FRAUD_CHAMPION``,
    ``SCORESTREAM_LEAD_CHAMPION``), not learned state: a snapshot taken under another
    choice is used if it has every model now needed (extra ones are dropped); if not,
    the models start afresh and learn ``training-examples`` again from its start.
    """
    champion = settings.champion(task)
    restored = restore_newest(task, settings, holds, from_topic)
    if restored is not None:
        if restored.champion != champion:
            log.info("%s champion: %s (was %s in the snapshot)", task, champion, restored.champion)
            restored.champion = champion
        if restored.keep_only(holds):
            return restored
        log.warning("the %s snapshot (v%d) lacks a model the %s process needs: starting afresh from "
                    "the start of training-examples", task, restored.version, holds)
    return TaskModels(task, n_trees=settings.arf_trees, champion=champion, holds=holds)
