"""``queuey backup``: a consistent copy of a SQLite store while servers keep using it.

The copy is SQLite's online backup, run in steps of a few pages inside one read transaction of
its own: every step copies from the same snapshot (the store as of the backup's start), and as
the store is in WAL mode the servers' writes go on meanwhile (the WAL only stops being
checkpointed past that snapshot until the copy ends). The copy is written next to its final
name and renamed when complete, owner-only like the store; the store's key and token secret
files come with it, so a restore is putting the directory back (README).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from queuey.config import KEY_FILE_NAME, TOKEN_SECRET_FILE_NAME
from queuey.core.errors import StorageUnavailable

DATABASE = "queuey.db"
STEP_PAGES = 256  # pages copied per step (1 MiB of 4 KiB pages)
STEP_PAUSE_S = 0.002  # between steps
Progress = Callable[[int, int], None]  # (pages copied, pages in all)


class BackupError(Exception):
    """The backup cannot be made (the message says why); nothing was left behind."""


def backup_store(store: Path, directory: Path, progress: Progress | None = None) -> Path:
    """Copy the SQLite store in directory ``store`` into directory ``directory`` (created,
    owner-only, if missing; it must not hold a backup already); the copy's database path.

    Raises:
        BackupError: there is no store, or ``directory`` holds a backup already.
        StorageUnavailable: SQLite failed (nothing is left in ``directory``).
    """
    source_path = store / DATABASE
    if not source_path.is_file():
        raise BackupError(f"{source_path} does not exist: no SQLite store there")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = directory / DATABASE
    if final.exists():
        raise BackupError(f"{final} exists: back up into a new directory")
    partial = directory / (DATABASE + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # of a backup that was stopped
    try:
        _copy(source_path, partial, progress)
        for name in (KEY_FILE_NAME, TOKEN_SECRET_FILE_NAME):
            if (store / name).is_file():
                _copy_private(store / name, directory / name)
        os.replace(partial, final)
    except sqlite3.Error as error:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise StorageUnavailable(f"the backup of {source_path} failed: {error}") from error
    return final


def _copy(source_path: Path, path: Path, progress: Progress | None) -> None:
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    source = sqlite3.connect(source_path, timeout=30, isolation_level=None)
    target = sqlite3.connect(path, isolation_level=None)
    try:
        source.execute("PRAGMA query_only = 1")
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM meta").fetchall()  # the snapshot starts here

        def step(status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        source.backup(target, pages=STEP_PAGES, progress=step, sleep=STEP_PAUSE_S)
        source.execute("COMMIT")
        # Folded into the file: the copy is one file, whatever journal it is opened with.
        target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        source.close()
        target.close()
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _copy_private(source: Path, target: Path) -> None:
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out, open(source, "rb") as data:
        shutil.copyfileobj(data, out)
