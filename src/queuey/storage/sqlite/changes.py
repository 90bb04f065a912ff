"""The change log: which queues each commit wrote to, so that every process sharing the file
wakes only the waiters of those queues (:meth:`SqliteStorage.changes`).

A write that may let a waiting read or claim find something runs as :func:`logged`: inside
its group's transaction it adds one row ``(seq, app, name)`` per queue per commit, so the row
commits with the write or not at all. ``seq`` is AUTOINCREMENT: commits are serialised by the
write lock, so positions grow in commit order without gaps (a rolled-back row gives its number
back). A reader behind the oldest kept row sees a gap and learns that it cannot tell which
queues changed. The sweep keeps the newest :data:`KEPT` rows.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from queuey.core.errors import StorageUnavailable
from queuey.storage.sqlite.connection import unavailable

T = TypeVar("T")
Key = tuple[str, str]  # (application, queue name)

#: Rows the sweep keeps: a reader may fall this many queue-commits behind before it has to
#: wake every waiter instead of the right ones.
KEPT = 10_000

SQL_CREATE = """CREATE TABLE IF NOT EXISTS changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        name TEXT NOT NULL
    )"""
_SQL_ADD = "INSERT INTO changes (app, name) VALUES (?, ?)"
_SQL_SINCE = "SELECT seq, app, name FROM changes WHERE seq > ? ORDER BY seq"
_SQL_NEWEST = "SELECT coalesce(max(seq), 0) FROM changes"
_SQL_PRUNE = (
    "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes"
    " WHERE seq <= (SELECT max(seq) FROM changes) - ? ORDER BY seq LIMIT ?)"
)


def logged(
    conn: sqlite3.Connection,
    scratch: dict[Any, Any],
    key: Key,
    fn: Callable[..., T],
    *args: Any,
) -> T:
    """A writer's operation: ``fn(conn, scratch, *args)``, then the change of queue ``key``
    recorded once for the transaction (not when ``fn`` raised: it changed nothing)."""
    result = fn(conn, scratch, *args)
    mark = ("changes", key)
    if mark not in scratch:
        conn.execute(_SQL_ADD, key)
        scratch[mark] = True
    return result


def prune(conn: sqlite3.Connection, limit: int) -> int:
    """A step of the sweep: forget at most ``limit`` rows older than the newest KEPT."""
    return conn.execute(_SQL_PRUNE, (KEPT, limit)).rowcount


class ChangeReader:
    """Answers :meth:`SqliteStorage.changes` on a read-only connection of its own; when
    ``PRAGMA data_version`` says nothing committed since its last answer, it answers without
    reading the log."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._seen: tuple[int, int] | None = None  # (data version, position) last answered

    def open(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def changes(self, since: int | None) -> tuple[int, set[Key] | None]:
        conn = self._conn
        if conn is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is closed.")
        try:
            version: int = conn.execute("PRAGMA data_version").fetchall()[0][0]
            if since is None:
                position: int = conn.execute(_SQL_NEWEST).fetchall()[0][0]
                self._seen = (version, position)
                return position, None
            if self._seen == (version, since):
                return since, set()
            rows = conn.execute(_SQL_SINCE, (since,)).fetchall()
        except sqlite3.Error as exc:
            raise unavailable(exc) from exc
        if not rows:
            self._seen = (version, since)
            return since, set()
        position = rows[-1][0]
        self._seen = (version, position)
        if rows[0][0] != since + 1:  # rows after ``since`` were pruned: a gap
            return position, None
        return position, {(app, name) for _, app, name in rows}
