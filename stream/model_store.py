"""Model snapshots on local disk: signed, versioned, restored at start.

A snapshot is ``online_models.persistence``'s signed blob; it is verified with the
key before anything in it is unpickled. Files are written atomically (a temporary
file, then a rename), so a crash never leaves half a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from online_models import persistence
from online_models.task_models import CHALLENGERS, TaskModels
from stream.settings import Settings

log = logging.getLogger(__name__)


def signing_key(settings: Settings) -> bytes:
    """``SCORESTREAM_MODEL_KEY``, else a random key kept (0600) in the home folder."""
    if settings.model_key:
        return settings.model_key.encode()
    path = settings.home / "model.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def snapshot_path(settings: Settings, task: str, holds: str) -> Path:
    """``<home>/models/<task>.snapshot`` for a scoring worker, ``<task>.challengers.snapshot`` for
    ``scorestream challengers``.
    """
    name = f"{task}.challengers" if holds == CHALLENGERS else task
    return settings.home / "models" / f"{name}.snapshot"


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


def load_or_create(task: str, settings: Settings, holds: str) -> TaskModels:
    """The task's restored models, or new ones, holding what ``holds`` says.

    Which model is champion is configuration (``SCORESTREAM_FRAUD_CHAMPION``,
    ``SCORESTREAM_LEAD_CHAMPION``), not learned state: a snapshot taken under another
    choice is used if it has every model now needed (extra ones are dropped); if not,
    the models start afresh and learn ``training-examples`` again from its start.
    """
    champion = settings.champion(task)
    restored = restore(task, settings, holds)
    if restored is not None:
        if restored.champion != champion:
            log.info("%s champion: %s (was %s in the snapshot)", task, champion, restored.champion)
            restored.champion = champion
        if restored.keep_only(holds):
            return restored
        log.warning("the %s snapshot (v%d) lacks a model the %s process needs: starting afresh from "
                    "the start of training-examples", task, restored.version, holds)
    return TaskModels(task, n_trees=settings.arf_trees, champion=champion, holds=holds)
