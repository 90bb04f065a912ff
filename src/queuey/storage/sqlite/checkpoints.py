"""Background WAL checkpoints, so that the WAL neither stalls the writer nor grows forever.

The writer connection has automatic checkpoints off (a checkpoint fsyncs and would stall the
event loop). After enough commits or changed rows a thread of its own copies the WAL into the
database (PASSIVE, not holding up writes); the WAL starts over from its beginning only after a
checkpoint copied every frame, which never happens while commits keep coming, so the writer's
next group then runs in the writer thread and first checkpoints the frames committed meanwhile
(:meth:`Checkpoints.restart_wal`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import threading

from queuey.storage.sqlite.connection import Connector

# Checkpoint the WAL in the background after this many commits or changed rows.
CHECKPOINT_COMMITS = 256
CHECKPOINT_CHANGES = 10_000


class Checkpoints:
    """Decides when to checkpoint and runs the checkpoints in a thread of its own."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running = False
        self._closed = False
        #: Set by a finished checkpoint: the writer should start the WAL over (restart_wal).
        self.restart_due = False
        self._commits_at = 0
        self._changes_at = 0

    @property
    def running(self) -> bool:
        """Whether a checkpoint is under way in the checkpoint thread."""
        return self._running

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="queuey-sqlite-checkpoint"
        )

    def open(self, connect: Connector, timeout_ms: int) -> None:
        self._conn = connect(timeout_ms, cache_kib=2048)

    def writer_opened(self, writer: sqlite3.Connection) -> None:
        """Count changed rows from what a new writer connection has made so far."""
        self._changes_at = writer.total_changes

    def close(self) -> None:
        """Wait for a running checkpoint and close the connection."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    def committed(self, writer: sqlite3.Connection, commits: int) -> None:
        """After a commit: start a checkpoint in the background if enough was written."""
        changes = writer.total_changes
        if (
            commits - self._commits_at < CHECKPOINT_COMMITS
            and changes - self._changes_at < CHECKPOINT_CHANGES
        ):
            return
        with self._lock:
            if self._running or self._pool is None or self._closed:
                return
            self._running = True
        self._commits_at = commits
        self._changes_at = changes
        try:
            self._pool.submit(self._checkpoint)
        except RuntimeError:  # shutting down
            self._running = False

    def _checkpoint(self) -> None:
        """In the checkpoint thread: copy the WAL into the database without holding up writes."""
        try:
            if self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.restart_due = True
        except sqlite3.Error:
            pass  # a later checkpoint (or the last connection's close) will do it
        finally:
            with self._lock:
                self._running = False

    @staticmethod
    def restart_wal(writer: sqlite3.Connection) -> None:
        """Checkpoint what is left of the WAL so that the next commit writes from its start.

        Waits a little for readers and other processes' writers, then gives up until the
        next checkpoint: the WAL is only larger meanwhile.
        """
        with contextlib.suppress(sqlite3.Error):
            writer.execute("PRAGMA busy_timeout = 100")
            try:
                writer.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            finally:
                writer.execute("PRAGMA busy_timeout = 0")
