"""Connections to the database file (the pragmas each one sets) and what SQLite's errors mean."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from queuey.core.errors import StorageUnavailable

SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


@dataclass(frozen=True, slots=True)
class Connector:
    """Opens connections to one database file with one durability."""

    path: Path
    durability: str

    def __call__(
        self, timeout_ms: int, read_only: bool = False, cache_kib: int = 16384
    ) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=timeout_ms / 1000,
            isolation_level=None,  # no implicit transactions: we BEGIN and COMMIT ourselves
            check_same_thread=False,  # used by the loop and the writer thread, never at once
        )
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.durability]}")
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if read_only:  # not mode=ro: that one cannot create the WAL index when it is missing
            conn.execute("PRAGMA query_only = 1")
        return conn


def make_private(path: Path) -> None:
    """Create the database file readable and writable by its owner only (SQLite creates its
    ``-wal`` and ``-shm`` files with the database's mode), and take group and other users'
    access away from the files of an existing database that has it."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether another connection holds the lock ``exc`` failed on."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def unavailable(exc: BaseException) -> StorageUnavailable:
    error = StorageUnavailable(f"Back-end storage unavailable: {exc}")
    error.__cause__ = exc
    return error
