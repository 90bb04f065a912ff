"""SqliteStorage: one SQLite file (WAL mode) that several server processes may share.

Layout: ``<directory>/queuey.db``. Tables (schema version 1, kept in ``meta`` so that later
versions can migrate; new columns are meant to be added with defaults):

* ``queues``: one row per queue incarnation; ``qid`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``
  so a qid is never handed out twice, and ``UNIQUE(app, name)`` makes creation atomic across
  processes and serves :meth:`list_queues` as an index range (``name >= offset``), as fast at
  any offset. ``principles`` is comma-joined.
* ``messages``: a rowid table with ``UNIQUE(qid, part, ticks, id)``; a read is one range scan
  of that index bounded by ``LIMIT`` (cursors are SQL row-value comparisons on
  ``(ticks, id)``), an index on ``expires`` lets :meth:`sweep` find expired rows without a
  scan. Measured against a ``WITHOUT ROWID`` table clustered on the same key: that one is
  ~15% cheaper for 200-byte bodies, but every row over ~1000 bytes gets an overflow page of
  its own (WAL bytes per 1 KB message 5.3 KB instead of 1.9 KB, writes 2.3x and reads 2x
  slower), so the rowid table is the one that holds up for any body size.
* ``dead_queues``: qids of deleted queues. :meth:`delete_queue` only moves the queue there
  (O(1)); :meth:`sweep` reclaims their messages in bounded batches. Reads and counts ignore a
  qid that is no longer in ``queues``.

Writes: group commit. Every write (messages, queues, sweep) becomes an operation appended to a
pending list; the first one schedules a flush with ``call_soon``, so every operation issued in
the same event-loop iteration (and while a flush is in the writer thread) shares ONE
``BEGIN IMMEDIATE ... COMMIT``; each caller's future is resolved only after that commit
(``commits`` counts them). Domain failures (QueueNotFound, QueueExists, InvalidUpdate) are
decided inside the transaction before the operation changes anything, and an operation of
several rows runs under a savepoint, so a failing operation never fails the others of its
group. An ``sqlite3`` error (disk full, I/O error, lock held past ``busy_timeout_ms``) rolls
the whole transaction back and fails every operation of that group with StorageUnavailable;
the store stays usable (the writer connection is opened again if a rollback fails).

Where the work runs (measured; numbers below):

* The statements of a group always run inline on the event-loop thread. In a writer thread
  they cost a thread hop per flush plus GIL hand-offs (``sqlite3`` releases the GIL around
  every step, and gets it back only when the busy loop thread lets go): sequential single
  writes were 2-3x slower, and even one GIL-free ``INSERT ... SELECT FROM json_each(?)`` per
  group in a thread lost to inline ``executemany`` (130k against 160k msgs/s for 16
  concurrent batches of 100 with 3 us/msg of simulated request work), so the second core
  does not help.
* ``durability="normal"`` (``synchronous=NORMAL``: a commit appends to the WAL without fsync;
  a process crash loses nothing acknowledged, a power loss may lose the last commits): COMMIT
  inline too.
* ``durability="full"`` (``synchronous=FULL``: fsync on every commit, survives power loss):
  COMMIT, the only step that touches the disk, runs in a dedicated writer thread so the loop
  never waits for fsync; operations arriving meanwhile form the next group.
* The writer connection has no busy handler. When another process holds the write lock,
  ``BEGIN IMMEDIATE`` fails at once and the whole group goes to the writer thread, which waits
  for the lock (up to ``busy_timeout_ms``) while the loop serves reads.
* Automatic checkpoints are off on the writer (a checkpoint fsyncs and would stall the loop).
  Every 256 commits or 10,000 changed rows a checkpoint thread copies the WAL into the
  database (PASSIVE, not holding up writes); the next group then runs in the writer thread and
  first checkpoints the frames committed meanwhile (RESTART), so the WAL starts over instead
  of growing for as long as commits keep coming.

Reads run synchronously on the event loop on a read-only connection of their own: each is an
index range scan bounded by its limit, cheaper than a thread hop. The reads of one loop
iteration share one read transaction (see ``_snapshot``), which halves the cost of a point
query such as :meth:`get_queue`. Errors become StorageUnavailable.

Storage alone, 188-byte bodies, uvloop, best of 3 on the 2-core development machine
(``bench_sqlite.py --uvloop --body 188``, kept outside the repository; other jobs shared the
machine), per message: single-message writes 7.2 us with 64 concurrent callers (64 per
commit), 37 us for one caller (a commit each); batches of 100 3.6 us with 16 concurrent
callers, 4.5 us for one; reads at limit=100 1.2 us (118 us a call), at limit=1 7 us a call.
Durability "full": 12 us (64 concurrent single writes), 4.1 us (16 concurrent batches), 260
us for one sequential single write (its fsync).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from itertools import starmap
from pathlib import Path
from typing import Any, TypeVar, cast

from queuey.core.errors import (
    InvalidUpdate,
    QueueExists,
    QueueNotFound,
    QueueyError,
    StorageUnavailable,
)
from queuey.core.ids import ticks_of
from queuey.core.models import Cursor, Message, Queue, QueueSettings

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS queues (
        qid INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        partitions INTEGER NOT NULL,
        type TEXT NOT NULL,
        consistency TEXT NOT NULL,
        principles TEXT NOT NULL,
        created REAL NOT NULL,
        UNIQUE (app, name)
    )""",
    """CREATE TABLE IF NOT EXISTS messages (
        rid INTEGER PRIMARY KEY,
        qid INTEGER NOT NULL,
        part INTEGER NOT NULL,
        ticks INTEGER NOT NULL,
        id TEXT NOT NULL,
        expires INTEGER NOT NULL,
        ctype TEXT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (qid, part, ticks, id)
    )""",
    "CREATE INDEX IF NOT EXISTS messages_expires ON messages (expires)",
    "CREATE TABLE IF NOT EXISTS dead_queues (qid INTEGER PRIMARY KEY)",
)

_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}

# Checkpoint the WAL in the background after this many commits or changed rows.
_CHECKPOINT_COMMITS = 256
_CHECKPOINT_CHANGES = 10_000

_QUEUE_COLUMNS = "qid, app, name, partitions, type, consistency, principles, created"
_SQL_GET_QUEUE = f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name = ?"
_SQL_LIST_QUEUES = (
    f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?"
)
_SQL_LIST_NAMES = "SELECT name FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?"
_SQL_ALIVE = "SELECT 1 FROM queues WHERE qid = ?"
_SQL_INSERT_QUEUE = (
    "INSERT INTO queues (app, name, partitions, type, consistency, principles, created)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQL_UPDATE_QUEUE = (
    "UPDATE queues SET partitions = ?, type = ?, consistency = ?, principles = ? WHERE qid = ?"
)

_MESSAGE_COLUMNS = "id, ticks, part, body, ctype, expires"  # the order of Message's fields
_LIVE = "expires > ? AND EXISTS (SELECT 1 FROM queues WHERE qid = ?)"
_SQL_INSERT = (
    "INSERT INTO messages (qid, part, ticks, id, expires, ctype, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_SQL_UPSERT = (
    "INSERT INTO messages (qid, part, ticks, id, expires, ctype, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (qid, part, ticks, id) DO UPDATE SET"
    " expires = excluded.expires, ctype = excluded.ctype, body = excluded.body"
)
_SQL_DELETE = "DELETE FROM messages WHERE qid = ? AND part = ? AND ticks = ? AND id = ?"
_SQL_GET = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages"
    f" WHERE qid = ? AND part = ? AND ticks = ? AND id = ? AND {_LIVE}"
)
_SQL_COUNT = f"SELECT count(*) FROM messages WHERE qid = ? AND {_LIVE}"


def _read_sql(where: str, order: str) -> str:
    return (
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE qid = ? AND part = ?{where}"
        f" AND {_LIVE} ORDER BY {order} LIMIT ?"
    )


# (descending, cursor kind) -> statement; kind: None (no cursor), True (inclusive), False.
_SQL_READ: dict[tuple[bool, bool | None], str] = {
    (False, None): _read_sql("", "ticks, id"),
    (False, True): _read_sql(" AND (ticks, id) >= (?, ?)", "ticks, id"),
    (False, False): _read_sql(" AND (ticks, id) > (?, ?)", "ticks, id"),
    (True, None): _read_sql("", "ticks DESC, id DESC"),
    (True, True): _read_sql(" AND (ticks, id) <= (?, ?)", "ticks DESC, id DESC"),
    (True, False): _read_sql(" AND (ticks, id) < (?, ?)", "ticks DESC, id DESC"),
}

_SQL_SWEEP_EXPIRED = (
    "DELETE FROM messages WHERE rid IN (SELECT rid FROM messages WHERE expires <= ? LIMIT ?)"
)
_SQL_SWEEP_DEAD = (
    "DELETE FROM messages WHERE rid IN (SELECT rid FROM messages WHERE qid = ? LIMIT ?)"
)

T = TypeVar("T")
_Row = tuple[Any, ...]
# An operation of the writer: (function(connection, alive, *args), args, caller's future).
_Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
# Within one transaction: qid -> whether that queue exists (saves a lookup per operation).
_Alive = dict[int, bool]


class _Busy(Exception):
    """Another connection holds the write lock (only raised when not waiting for it)."""


def _is_busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _unavailable(exc: BaseException) -> StorageUnavailable:
    error = StorageUnavailable(f"Back-end storage unavailable: {exc}")
    error.__cause__ = exc
    return error


def _queue_of(row: _Row) -> Queue:
    qid, app, name, partitions, type_, consistency, principles, created = row
    return Queue(
        app=app,
        name=name,
        qid=qid,
        created=created,
        settings=QueueSettings(
            partitions=partitions,
            type=type_,
            consistency=consistency,
            principles=tuple(principles.split(",")) if principles else (),
        ),
    )


def _noop(conn: sqlite3.Connection, alive: _Alive) -> None:
    return None


class SqliteStorage:
    name = "sqlite"
    nodes = 1
    shared = True

    def __init__(
        self,
        directory: str | Path,
        durability: str = "normal",
        busy_timeout_ms: int = 5000,
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.directory = Path(directory)
        self.path = self.directory / "queuey.db"
        self.durability = durability
        self.busy_timeout_ms = busy_timeout_ms
        # Whether commits run in the writer thread (they fsync) or inline on the event loop.
        self._commit_in_thread = durability == "full"
        #: Transactions committed by this instance's writer (group commit makes it far lower
        #: than the number of write calls under concurrency).
        self.commits = 0
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_snapshot = False
        self._queues: dict[_Row, Queue] = {}
        self._pending: list[_Op] = []
        self._flushing = False
        self._closed = False
        self._writer_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpoint_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpoint_lock = threading.Lock()
        self._checkpointing = False
        self._restart_due = False
        self._commits_at_checkpoint = 0
        self._changes_at_checkpoint = 0

    # --- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="queuey-sqlite-writer"
        )
        self._checkpoint_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="queuey-sqlite-checkpoint"
        )
        try:
            await self._loop.run_in_executor(self._writer_pool, self._open_sync)
        except (sqlite3.Error, OSError) as exc:
            self._close_sync()
            raise _unavailable(exc) from exc

    def _connect(
        self, timeout_ms: int, read_only: bool = False, cache_kib: int = 16384
    ) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=timeout_ms / 1000,
            isolation_level=None,  # no implicit transactions: we BEGIN and COMMIT ourselves
            check_same_thread=False,  # used by the loop and the writer thread, never at once
        )
        conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.durability]}")
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if read_only:  # not mode=ro: that one cannot create the WAL index when it is missing
            conn.execute("PRAGMA query_only = 1")
        return conn

    def _open_sync(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        setup = self._connect(self.busy_timeout_ms)
        try:
            mode = setup.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
            setup.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    setup.execute(statement)
                rows = setup.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchall()
                if not rows:
                    setup.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                elif int(rows[0][0]) > SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"{self.path} has schema version {rows[0][0]}, newer than this"
                        f" Queuey's {SCHEMA_VERSION}"
                    )
                setup.execute("COMMIT")
            except BaseException:
                setup.execute("ROLLBACK")
                raise
        finally:
            setup.close()
        self._writer = self._open_writer()
        self._reader = self._connect(self.busy_timeout_ms, read_only=True)
        self._checkpointer = self._connect(self.busy_timeout_ms, cache_kib=2048)

    def _open_writer(self) -> sqlite3.Connection:
        # No busy handler: the loop must never sleep in SQLite; _begin waits in the thread.
        writer = self._connect(0)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("PRAGMA journal_size_limit = 67108864")
        self._changes_at_checkpoint = writer.total_changes
        return writer

    async def close(self) -> None:
        if self._closed:
            return
        if self._loop is not None:
            with contextlib.suppress(StorageUnavailable):
                await self._submit(_noop)  # a barrier: every earlier write has finished
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        self._closed = True
        for pool in (self._writer_pool, self._checkpoint_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        for conn in (self._reader, self._checkpointer, self._writer):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader = self._checkpointer = self._writer = None

    async def ping(self) -> None:
        self._read("SELECT value FROM meta WHERE key = 'schema_version'", ())

    # --- reads (on the event loop, read-only connection) ------------------------------------
    #
    # Reads of one event-loop iteration share one read transaction (a snapshot): an autocommit
    # statement takes and drops SQLite's shared lock with two fcntl calls, a third of the cost
    # of a point query. The snapshot ends at the start of the next iteration, before that
    # iteration's new requests are handled, and before any flush of this instance, so a read
    # never misses a write that was acknowledged before it was issued.

    def _snapshot(self) -> sqlite3.Connection:
        reader = self._reader
        if reader is None:
            raise sqlite3.ProgrammingError("the store is closed")
        if not self._in_snapshot:
            reader.execute("BEGIN")
            self._in_snapshot = True
            assert self._loop is not None
            self._loop.call_soon(self._end_snapshot)
        return reader

    def _end_snapshot(self) -> None:
        if self._in_snapshot:
            self._in_snapshot = False
            reader = self._reader
            if reader is not None and reader.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    reader.execute("COMMIT")

    def _read_failed(self, exc: sqlite3.Error) -> StorageUnavailable:
        reader = self._reader
        self._in_snapshot = False
        if reader is not None and reader.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                reader.execute("ROLLBACK")
        return _unavailable(exc)

    def _read(self, sql: str, params: Sequence[Any]) -> list[_Row]:
        try:
            return self._snapshot().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._read_failed(exc) from exc

    def _read_many(self, sql: str, many: list[tuple[Any, ...]]) -> list[Message]:
        """The messages of several statements, from one snapshot of the database."""
        try:
            reader = self._snapshot()
            if len(many) == 1:
                return list(starmap(Message, reader.execute(sql, many[0]).fetchall()))
            found: list[Message] = []
            for params in many:
                found.extend(starmap(Message, reader.execute(sql, params).fetchall()))
            return found
        except sqlite3.Error as exc:
            raise self._read_failed(exc) from exc

    def _queue_of(self, row: _Row) -> Queue:
        """The Queue of a row; equal rows share one (immutable) Queue."""
        queue = self._queues.get(row)
        if queue is None:
            if len(self._queues) >= 4096:
                self._queues.clear()
            queue = self._queues[row] = _queue_of(row)
        return queue

    async def get_queue(self, app: str, name: str) -> Queue | None:
        rows = self._read(_SQL_GET_QUEUE, (app, name))
        return self._queue_of(rows[0]) if rows else None

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        rows = self._read(_SQL_LIST_QUEUES, (app, offset or "", limit))
        return [self._queue_of(row) for row in rows]

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        return [row[0] for row in self._read(_SQL_LIST_NAMES, (app, offset or "", limit))]

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        return int(self._read(_SQL_COUNT, (queue.qid, now_ms, queue.qid))[0][0])

    async def read_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        qid, top = queue.qid, queue.partitions
        many: list[tuple[Any, ...]]
        if cursor is None:
            sql = _SQL_READ[descending, None]
            many = [(qid, p, now_ms, qid, limit) for p in partitions if 1 <= p <= top]
        else:
            sql = _SQL_READ[descending, cursor.inclusive]
            at, cid = cursor.ticks, cursor.id
            many = [(qid, p, at, cid, now_ms, qid, limit) for p in partitions if 1 <= p <= top]
        return self._read_many(sql, many) if many else []

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        qid = queue.qid
        many: list[tuple[Any, ...]] = []
        for partition, message_id in ids:
            ticks = ticks_of(message_id)
            if ticks is not None:
                many.append((qid, partition, ticks, message_id, now_ms, qid))
        return self._read_many(_SQL_GET, many) if many else []

    # --- writes (group commit) --------------------------------------------------------------

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        return await self._submit(self._w_create_queue, app, name, settings, now)

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        return await self._submit(self._w_update_queue, app, name, settings)

    async def delete_queue(self, app: str, name: str) -> bool:
        return await self._submit(self._w_delete_queue, app, name)

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False
    ) -> None:
        qid = queue.qid
        rows = [
            (qid, m.partition, m.ticks, m.id, m.expires_ms, m.content_type, m.body)
            for m in messages
        ]
        await self._submit(self._w_write, qid, rows, _SQL_UPSERT if replace else _SQL_INSERT)

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        qid = queue.qid
        rows = []
        for partition, message_id in ids:
            ticks = ticks_of(message_id)
            if ticks is not None:
                rows.append((qid, partition, ticks, message_id))
        if rows:
            await self._submit(self._w_delete, rows)

    async def sweep(self, now_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        return await self._submit(self._w_sweep, now_ms, limit)

    async def _submit(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed or self._loop is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is closed.")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append((fn, args, future))
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)
        return cast(T, await future)

    def _flush(self) -> None:
        """Run every pending operation in one transaction and commit it.

        On the event loop; only a commit that fsyncs (durability "full") or a wait for the
        write lock held by another connection goes to the writer thread.
        """
        ops, self._pending = self._pending, []
        self._end_snapshot()  # a reader must not hold the WAL while it may start over
        if self._restart_due:
            self._restart_due = False
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
        assert self._loop is not None and self._writer_pool is not None
        try:
            done = self._loop.run_in_executor(self._writer_pool, fn, *args)
        except RuntimeError as exc:  # the pool is shut down
            self._finish(ops, [_unavailable(exc) for _ in ops])
            return
        done.add_done_callback(partial(self._offloaded, ops))

    def _offloaded(self, ops: list[_Op], done: asyncio.Future[list[Any]]) -> None:
        try:
            outcomes = done.result()
        except BaseException as exc:  # not expected: the writer's functions catch their errors
            outcomes = [_unavailable(exc) for _ in ops]
        self._finish(ops, outcomes)

    def _finish(self, ops: list[_Op], outcomes: list[Any]) -> None:
        self._end_snapshot()  # reads from now on see this commit
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

    def _transact(self, ops: list[_Op], restart_wal: bool = False) -> list[Any]:
        """In the writer thread: wait for the write lock, then the whole transaction."""
        conn = None
        try:
            conn = self._writable()
            if restart_wal:
                self._restart_wal(conn)
            self._begin(conn, wait=True)
            outcomes = self._apply(conn, ops)
        except sqlite3.Error as exc:
            return self._fail(conn, ops, exc)
        return self._commit(conn, ops, outcomes)

    @staticmethod
    def _apply(conn: sqlite3.Connection, ops: list[_Op]) -> list[Any]:
        """Each operation's result or own exception; an sqlite3.Error fails the transaction."""
        outcomes: list[Any] = []
        alive: _Alive = {}
        for fn, args, _ in ops:
            try:
                outcomes.append(fn(conn, alive, *args))
            except QueueyError as exc:  # decided before the operation changed anything
                outcomes.append(exc)
            except sqlite3.Error:
                raise
            except Exception as exc:  # e.g. a value the driver cannot bind; undone by itself
                outcomes.append(_unavailable(exc))
        return outcomes

    def _commit(self, conn: sqlite3.Connection, ops: list[_Op], outcomes: list[Any]) -> list[Any]:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            return self._fail(conn, ops, exc)
        self.commits += 1
        self._maybe_checkpoint(conn)
        return outcomes

    def _fail(
        self, conn: sqlite3.Connection | None, ops: list[_Op], exc: sqlite3.Error
    ) -> list[Any]:
        if conn is not None:
            self._recover(conn)
        return [_unavailable(exc) for _ in ops]

    def _writable(self) -> sqlite3.Connection:
        """The writer connection, opened again if a failure left none."""
        if self._writer is None:
            if self._closed or self._loop is None:
                raise sqlite3.ProgrammingError("the store is closed")
            self._writer = self._open_writer()
        return self._writer

    def _begin(self, conn: sqlite3.Connection, wait: bool) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if not wait:
                raise _Busy() from exc
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.0002
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise sqlite3.OperationalError(
                    f"database is locked (waited {self.busy_timeout_ms} ms)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.005)
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise

    def _recover(self, conn: sqlite3.Connection) -> None:
        """Roll back after a failure; reopen the writer if the connection is still stuck."""
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            try:
                self._writer = self._open_writer()
            except sqlite3.Error:
                self._writer = None

    def _maybe_checkpoint(self, conn: sqlite3.Connection) -> None:
        changes = conn.total_changes
        if (
            self.commits - self._commits_at_checkpoint < _CHECKPOINT_COMMITS
            and changes - self._changes_at_checkpoint < _CHECKPOINT_CHANGES
        ):
            return
        with self._checkpoint_lock:
            if self._checkpointing or self._checkpoint_pool is None or self._closed:
                return
            self._checkpointing = True
        self._commits_at_checkpoint = self.commits
        self._changes_at_checkpoint = changes
        try:
            self._checkpoint_pool.submit(self._checkpoint)
        except RuntimeError:  # shutting down
            self._checkpointing = False

    def _checkpoint(self) -> None:
        """In the checkpoint thread: copy the WAL into the database without holding up writes.

        The WAL starts over from its beginning only after a checkpoint copied every frame,
        which never happens while commits keep coming; so the next flush runs in the writer
        thread and first checkpoints the few frames committed meanwhile (see _transact).
        """
        try:
            if self._checkpointer is not None:
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._restart_due = True
        except sqlite3.Error:
            pass  # a later checkpoint (or the last connection's close) will do it
        finally:
            with self._checkpoint_lock:
                self._checkpointing = False

    def _restart_wal(self, conn: sqlite3.Connection) -> None:
        """Checkpoint what is left of the WAL so that the next commit writes from its start.

        Waits a little for readers and other processes' writers, then gives up until the
        next checkpoint: the WAL is only larger meanwhile.
        """
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA busy_timeout = 100")
            try:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            finally:
                conn.execute("PRAGMA busy_timeout = 0")

    # --- the writer's operations: run inside the group's transaction ------------------------

    @staticmethod
    def _is_alive(conn: sqlite3.Connection, alive: _Alive, qid: int) -> bool:
        known = alive.get(qid)
        if known is None:
            known = alive[qid] = bool(conn.execute(_SQL_ALIVE, (qid,)).fetchall())
        return known

    @staticmethod
    def _savepoint(conn: sqlite3.Connection, sql: str, rows: list[Any]) -> None:
        """executemany as one unit: all rows or none, without failing the transaction."""
        if len(rows) == 1:
            conn.execute(sql, rows[0])  # a single statement is atomic by itself
            return
        conn.execute("SAVEPOINT op")
        try:
            conn.executemany(sql, rows)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            raise
        conn.execute("RELEASE op")

    def _w_write(
        self, conn: sqlite3.Connection, alive: _Alive, qid: int, rows: list[Any], sql: str
    ) -> None:
        if not self._is_alive(conn, alive, qid):
            raise QueueNotFound()
        if rows:
            self._savepoint(conn, sql, rows)

    def _w_delete(self, conn: sqlite3.Connection, alive: _Alive, rows: list[Any]) -> None:
        self._savepoint(conn, _SQL_DELETE, rows)

    @staticmethod
    def _w_create_queue(
        conn: sqlite3.Connection,
        alive: _Alive,
        app: str,
        name: str,
        settings: QueueSettings,
        now: float,
    ) -> Queue:
        params = (
            app,
            name,
            settings.partitions,
            settings.type,
            settings.consistency,
            ",".join(settings.principles),
            now,
        )
        try:
            cursor = conn.execute(_SQL_INSERT_QUEUE, params)
        except sqlite3.IntegrityError:
            raise QueueExists() from None
        qid = cursor.lastrowid
        assert qid is not None
        alive[qid] = True
        return Queue(app=app, name=name, qid=qid, created=now, settings=settings)

    @staticmethod
    def _w_update_queue(
        conn: sqlite3.Connection, alive: _Alive, app: str, name: str, settings: QueueSettings
    ) -> Queue:
        rows = conn.execute(_SQL_GET_QUEUE, (app, name)).fetchall()
        if not rows:
            raise QueueNotFound()
        current = _queue_of(rows[0])
        if settings.partitions < current.partitions:
            raise InvalidUpdate()
        conn.execute(
            _SQL_UPDATE_QUEUE,
            (
                settings.partitions,
                settings.type,
                settings.consistency,
                ",".join(settings.principles),
                current.qid,
            ),
        )
        return Queue(
            app=app, name=name, qid=current.qid, created=current.created, settings=settings
        )

    @staticmethod
    def _w_delete_queue(conn: sqlite3.Connection, alive: _Alive, app: str, name: str) -> bool:
        rows = conn.execute("SELECT qid FROM queues WHERE app = ? AND name = ?", (app, name))
        found = rows.fetchall()
        if not found:
            return False
        qid = found[0][0]
        conn.execute("DELETE FROM queues WHERE qid = ?", (qid,))
        conn.execute("INSERT OR IGNORE INTO dead_queues (qid) VALUES (?)", (qid,))
        alive[qid] = False
        return True

    @staticmethod
    def _w_sweep(conn: sqlite3.Connection, alive: _Alive, now_ms: int, limit: int) -> int:
        removed = conn.execute(_SQL_SWEEP_EXPIRED, (now_ms, limit)).rowcount
        while removed < limit:
            dead = conn.execute("SELECT qid FROM dead_queues LIMIT 1").fetchall()
            if not dead:
                break
            qid = dead[0][0]
            budget = limit - removed
            count = conn.execute(_SQL_SWEEP_DEAD, (qid, budget)).rowcount
            removed += count
            if count < budget:  # nothing of that queue is left
                conn.execute("DELETE FROM dead_queues WHERE qid = ?", (qid,))
        return removed
