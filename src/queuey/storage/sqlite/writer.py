"""Group commit: the writes of one event-loop iteration share one transaction.

The writer knows nothing about what it writes. An operation is a function
``fn(connection, scratch, *args)`` run inside the group's transaction; ``scratch`` is a dict
that the operations of one transaction share (facts looked up once per group) and that starts
empty for every group. An operation's :class:`~queuey.core.errors.QueueyError` is its own
outcome: it must decide such failures before changing anything (or change things under
:func:`savepoint`), so a failing operation never fails the others of its group. An
``sqlite3`` error rolls the whole transaction back and fails every operation of the group with
StorageUnavailable; the writer stays usable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar, cast

from queuey.core.errors import QueueyError, StorageUnavailable
from queuey.storage.sqlite.checkpoints import Checkpoints
from queuey.storage.sqlite.connection import Connector, is_busy, unavailable

T = TypeVar("T")
# An operation: (function(connection, scratch, *args), args, caller's future).
_Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class _Busy(Exception):
    """Another connection holds the write lock (only raised when not waiting for it)."""


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """Several statements as one unit: all or none, without failing the transaction."""
    conn.execute("SAVEPOINT op")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
        raise
    conn.execute("RELEASE op")


def _barrier(conn: sqlite3.Connection, scratch: dict[Any, Any]) -> None:
    return None


class GroupWriter:
    """Runs operations in shared ``BEGIN IMMEDIATE ... COMMIT`` transactions.

    The statements of a group run inline on the event loop: a thread hop per group and the
    GIL hand-offs cost more than they save. Two things go to the writer thread instead: a
    COMMIT that fsyncs (``commit_in_thread``), and a group that must wait for the write lock
    another process holds (the writer connection has no busy handler, so the loop never
    sleeps in SQLite).

    Args:
        connect: opens the writer's connections.
        busy_timeout_ms: how long a group waits for a lock held elsewhere before it fails.
        commit_in_thread: run COMMIT in the writer thread (``synchronous=FULL``).
        end_reads: called on the loop before each group's transaction and after its outcome
            is handed out (a reader must not hold the WAL while it may start over, and reads
            from then on must see the commit).
    """

    def __init__(
        self,
        connect: Connector,
        busy_timeout_ms: int,
        commit_in_thread: bool,
        end_reads: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._busy_timeout_ms = busy_timeout_ms
        self._commit_in_thread = commit_in_thread
        self._end_reads = end_reads
        #: Transactions committed (group commit makes it far lower than the number of
        #: operations under concurrency).
        self.commits = 0
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpoints = Checkpoints()
        self._pending: list[_Op] = []
        self._flushing = False
        self.closed = False

    @property
    def connection(self) -> sqlite3.Connection | None:
        """The writer connection (None before open, after close, or while a failure left
        none: the next group opens another)."""
        return self._conn

    @property
    def checkpointing(self) -> bool:
        """Whether a WAL checkpoint is under way in the background."""
        return self._checkpoints.running

    # --- life cycle -------------------------------------------------------------------------

    async def open(self, prepare: Callable[[], None]) -> None:
        """Run ``prepare`` (e.g. create the schema), then open the connections, in the writer
        thread. Raises what they raise (sqlite3.Error, OSError)."""
        self._loop = asyncio.get_running_loop()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="queuey-sqlite-writer"
        )
        self._checkpoints.start()
        await self._loop.run_in_executor(self._pool, self._open_sync, prepare)

    def _open_sync(self, prepare: Callable[[], None]) -> None:
        prepare()
        self._conn = self._open_connection()
        self._checkpoints.open(self._connect, self._busy_timeout_ms)

    def _open_connection(self) -> sqlite3.Connection:
        # No busy handler: the loop must never sleep in SQLite; _begin waits in the thread.
        conn = self._connect(0)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        self._checkpoints.writer_opened(conn)
        return conn

    async def drain(self) -> None:
        """Return when every operation submitted so far has finished; then refuse new ones."""
        if self._loop is not None and not self.closed:
            with contextlib.suppress(StorageUnavailable):
                await self.submit(_barrier)
        self.closed = True

    def close(self) -> None:
        """Stop the threads and close the connections (blocking: run it off the loop)."""
        self.closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._checkpoints.close()
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    # --- submitting -------------------------------------------------------------------------

    async def submit(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, scratch, *args)`` in the next group's transaction; its result
        (or exception) once that transaction committed."""
        if self.closed or self._loop is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is closed.")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append((fn, args, future))
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)
        return cast(T, await future)

    def _flush(self) -> None:
        """Run every pending operation in one transaction and commit it (on the loop)."""
        ops, self._pending = self._pending, []
        self._end_reads()
        if self._checkpoints.restart_due:
            self._checkpoints.restart_due = False
            self._offload(ops, self._transact, ops, True)
            return
        conn = None
        try:
            conn = self._writable()
            self._begin(conn, wait=False)
            outcomes = self._apply(conn, ops)
        except _Busy:
            self._offload(ops, self._transact, ops)
            return
        except sqlite3.Error as exc:
            self._finish(ops, self._fail(conn, ops, exc))
            return
        if self._commit_in_thread:
            self._offload(ops, self._commit, conn, ops, outcomes)
            return
        self._finish(ops, self._commit(conn, ops, outcomes))

    def _offload(self, ops: list[_Op], fn: Callable[..., list[Any]], *args: Any) -> None:
        assert self._loop is not None and self._pool is not None
        try:
            done = self._loop.run_in_executor(self._pool, fn, *args)
        except RuntimeError as exc:  # the pool is shut down
            self._finish(ops, [unavailable(exc) for _ in ops])
            return
        done.add_done_callback(partial(self._offloaded, ops))

    def _offloaded(self, ops: list[_Op], done: asyncio.Future[list[Any]]) -> None:
        try:
            outcomes = done.result()
        except BaseException as exc:  # not expected: the writer's functions catch their errors
            outcomes = [unavailable(exc) for _ in ops]
        self._finish(ops, outcomes)

    def _finish(self, ops: list[_Op], outcomes: list[Any]) -> None:
        self._end_reads()
        for (_, _, future), outcome in zip(ops, outcomes, strict=True):
            if future.done():  # the caller was cancelled; the write stands
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._pending:  # they came while the writer thread worked: the next group
            self._flush()
        else:
            self._flushing = False

    # --- the transaction --------------------------------------------------------------------

    def _transact(self, ops: list[_Op], restart_wal: bool = False) -> list[Any]:
        """In the writer thread: wait for the write lock, then the whole transaction."""
        conn = None
        try:
            conn = self._writable()
            if restart_wal:
                self._checkpoints.restart_wal(conn)
            self._begin(conn, wait=True)
            outcomes = self._apply(conn, ops)
        except sqlite3.Error as exc:
            return self._fail(conn, ops, exc)
        return self._commit(conn, ops, outcomes)

    @staticmethod
    def _apply(conn: sqlite3.Connection, ops: list[_Op]) -> list[Any]:
        """Each operation's result or own exception; an sqlite3.Error fails the transaction."""
        outcomes: list[Any] = []
        scratch: dict[Any, Any] = {}
        for fn, args, _ in ops:
            try:
                outcomes.append(fn(conn, scratch, *args))
            except QueueyError as exc:  # decided before the operation changed anything
                outcomes.append(exc)
            except sqlite3.Error:
                raise
            except Exception as exc:  # e.g. a value the driver cannot bind; undone by itself
                outcomes.append(unavailable(exc))
        return outcomes

    def _commit(self, conn: sqlite3.Connection, ops: list[_Op], outcomes: list[Any]) -> list[Any]:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            return self._fail(conn, ops, exc)
        self.commits += 1
        self._checkpoints.committed(conn, self.commits)
        return outcomes

    def _fail(
        self, conn: sqlite3.Connection | None, ops: list[_Op], exc: sqlite3.Error
    ) -> list[Any]:
        if conn is not None:
            self._recover(conn)
        return [unavailable(exc) for _ in ops]

    def _writable(self) -> sqlite3.Connection:
        """The writer connection, opened again if a failure left none."""
        if self._conn is None:
            if self.closed or self._loop is None:
                raise sqlite3.ProgrammingError("the store is closed")
            self._conn = self._open_connection()
        return self._conn

    def _begin(self, conn: sqlite3.Connection, wait: bool) -> None:
        """BEGIN IMMEDIATE; when another process holds the lock, raise _Busy (``wait`` false:
        the caller moves to the writer thread) or retry with backoff up to the timeout."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        delay = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if not wait:
                    raise _Busy() from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise sqlite3.OperationalError(
                    f"database is locked (waited {self._busy_timeout_ms} ms)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.005)

    def _recover(self, conn: sqlite3.Connection) -> None:
        """Roll back after a failure; reopen the connection if it is still stuck."""
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            try:
                self._conn = self._open_connection()
            except sqlite3.Error:
                self._conn = None
