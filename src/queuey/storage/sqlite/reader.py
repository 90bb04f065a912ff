"""Reads on the event loop, on a read-only connection of their own.

Each read is an index range scan bounded by its limit, cheaper than a thread hop. The reads of
one event-loop iteration share one read transaction (a snapshot): an autocommit statement takes
and drops SQLite's shared lock with two fcntl calls, a third of the cost of a point query. The
snapshot ends at the start of the next iteration, before that iteration's new requests are
handled, and before any group of the writer (see ``GroupWriter.end_reads``), so a read never
misses a write that was acknowledged before it was issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any

from queuey.core.errors import StorageUnavailable
from queuey.storage.sqlite.connection import unavailable

Row = tuple[Any, ...]


class SnapshotReader:
    """Runs queries in snapshots that last one event-loop iteration."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_snapshot = False

    @property
    def connection(self) -> sqlite3.Connection | None:
        """The read-only connection (None before open and after close)."""
        return self._conn

    def open(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    def rows(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """The rows of one query."""
        try:
            return self._snapshot().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def rows_of_each(self, sql: str, many: list[tuple[Any, ...]]) -> list[Row]:
        """The rows of one query for each of several parameter tuples, from one snapshot."""
        try:
            reader = self._snapshot()
            if len(many) == 1:
                return reader.execute(sql, many[0]).fetchall()
            rows: list[Row] = []
            for params in many:
                rows += reader.execute(sql, params).fetchall()
            return rows
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def end_snapshot(self) -> None:
        """End the current snapshot: the next read sees every commit made until then."""
        if self._in_snapshot:
            self._in_snapshot = False
            reader = self._conn
            if reader is not None and reader.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    reader.execute("COMMIT")

    def _snapshot(self) -> sqlite3.Connection:
        reader = self._conn
        if reader is None:
            raise sqlite3.ProgrammingError("the store is closed")
        if not self._in_snapshot:
            reader.execute("BEGIN")
            self._in_snapshot = True
            assert self._loop is not None
            self._loop.call_soon(self.end_snapshot)
        return reader

    def _failed(self, exc: sqlite3.Error) -> StorageUnavailable:
        reader = self._conn
        self._in_snapshot = False
        if reader is not None and reader.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                reader.execute("ROLLBACK")
        return unavailable(exc)
