"""SqliteStorage: one SQLite file (WAL mode) that several server processes may share.

Layout: ``<directory>/queuey.db``. Tables (schema version 2, kept in ``meta``; a file of
another version is refused at :meth:`open`, see ``_check_version``):

* ``queues``: one row per queue incarnation; ``qid`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``
  so a qid is never handed out twice, and ``UNIQUE(app, name)`` makes creation atomic across
  processes and serves :meth:`list_queues` as an index range (``name >= offset``), as fast at
  any offset. ``principles`` is comma-joined.
* ``messages``: a rowid table with ``UNIQUE(qid, part, ticks, sfx)``; a read is one range scan
  of that index bounded by ``LIMIT`` (cursors are SQL row-value comparisons on
  ``(ticks, sfx)``), an index on ``expires`` lets :meth:`sweep` find expired rows without a
  scan. A message id is not stored as text: its first 16 hex digits follow from ``ticks``, and
  ``sfx`` holds the last 16 (clock sequence and node) as a number minus 2**63, a signed 64-bit
  integer in the same order, so ``(ticks, sfx)`` sorts as ``(ticks, id)`` does; reads rebuild
  the id (``_messages_of``, ``uuid1_hex``). This makes the unique index half as wide; with the
  multi-row INSERTs below a row costs 1.3 us instead of 1.5 (8 batches of 100 per
  transaction, 188-byte bodies; 291 instead of 350 bytes of file per message); rebuilding ids
  costs reads 0.25 us a message. Measured and not adopted: ``WITHOUT ROWID`` clustered on the
  key (~15% cheaper for 200-byte bodies with one-row INSERTs, no gain with multi-row ones,
  and every row over ~1000 bytes gets an overflow page of its own: WAL bytes per 1 KB message
  5.3 KB instead of 1.9 KB, writes 2.3x and reads 2x slower); NULL for the default content
  type (14 bytes less a row, no faster); 8 or 16 KB pages (inserts 15-20% slower). Dropping
  the index on ``expires`` would save 0.2 us a row, but the sweep needs it to find expired
  rows among live ones in bounded batches.
* ``dead_queues``: qids of deleted queues. :meth:`delete_queue` only moves the queue there
  (O(1)); :meth:`sweep` reclaims their messages in bounded batches. Reads and counts ignore a
  qid that is no longer in ``queues``.

Writes: group commit. Every write (messages, queues, sweep) becomes an operation appended to a
pending list; the first one schedules a flush with ``call_soon``, so every operation issued in
the same event-loop iteration (and while a flush is in the writer thread) shares ONE
``BEGIN IMMEDIATE ... COMMIT``; each caller's future is resolved only after that commit
(``commits`` counts them). Domain failures (QueueNotFound, QueueExists, InvalidUpdate) are
decided inside the transaction before the operation changes anything, and an operation of
several statements runs under a savepoint, so a failing operation never fails the others of
its group. An ``sqlite3`` error (disk full, I/O error, lock held past ``busy_timeout_ms``)
rolls the whole transaction back and fails every operation of that group with
StorageUnavailable; the store stays usable (the writer connection is opened again if a
rollback fails).

Messages are written with multi-row INSERTs (``INSERT ... VALUES (...), (...), ...``) of
fixed sizes (128, 112, ... 16, 8, 4, 2, 1 rows, so that few statements are prepared, each
holding at most 128 K characters of bodies): one statement inserts its rows through cursors
that stay open and in place, where ``executemany`` runs a statement a row that opens the
table's and both indexes' cursors and seeks from their roots each time (2.8 us a row against
1.5, measured as above). A batch made by the service (one partition, consecutive ticks, one
suffix, expiry and content type) binds only its bodies: the ticks are ``?3 + k`` (0.65 us a
row inside SQLite instead of 0.82). A write of 100 such messages is two statements (96 + 4).

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

Throughput through the whole server is measured by ``make bench`` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
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
from queuey.core.models import (
    Claim,
    ClaimRef,
    Cursor,
    Message,
    Queue,
    QueueSettings,
    QueueStats,
)
from queuey.storage.keys import HEX16 as _HEX16
from queuey.storage.keys import SFX_OFFSET as _SFX_OFFSET
from queuey.storage.keys import cursor_position as _cursor_position
from queuey.storage.keys import sfx_of as _sfx_of

SCHEMA_VERSION = 3

# Columns of the work-queue settings and state (api.md Part 2), added in version 3; a version 2
# file gets them with their defaults (see _migrate).
_QUEUE_COLUMNS_V3 = (
    ("delivery", "TEXT NOT NULL DEFAULT 'at_least_once'"),
    ("claim_ttl", "INTEGER NOT NULL DEFAULT 30"),
    ("maxd", "INTEGER NOT NULL DEFAULT 0"),
    ("dlq", "TEXT"),
    ("delay", "INTEGER NOT NULL DEFAULT 0"),
    ("dedup_window", "INTEGER NOT NULL DEFAULT 300"),
    ("policy", "TEXT NOT NULL DEFAULT 'broadcast'"),
    ("paused", "INTEGER NOT NULL DEFAULT 0"),
    ("dlc", "INTEGER NOT NULL DEFAULT 0"),  # messages this queue has dead-lettered
)
_MESSAGE_COLUMNS_V3 = (
    ("due", "INTEGER NOT NULL DEFAULT 0"),  # epoch ms when a delayed message becomes due
    ("dlv", "INTEGER NOT NULL DEFAULT 0"),  # deliveries (claims given)
    ("ctok", "INTEGER NOT NULL DEFAULT 0"),  # token of the last claim
    ("cexp", "INTEGER NOT NULL DEFAULT 0"),  # when that claim's lease ends (0: no claim)
)


def _columns(columns: tuple[tuple[str, str], ...]) -> str:
    return "".join(f",\n        {name} {kind}" for name, kind in columns)


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    f"""CREATE TABLE IF NOT EXISTS queues (
        qid INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        partitions INTEGER NOT NULL,
        type TEXT NOT NULL,
        consistency TEXT NOT NULL,
        principles TEXT NOT NULL,
        created REAL NOT NULL{_columns(_QUEUE_COLUMNS_V3)},
        UNIQUE (app, name)
    )""",
    f"""CREATE TABLE IF NOT EXISTS messages (
        rid INTEGER PRIMARY KEY,
        qid INTEGER NOT NULL,
        part INTEGER NOT NULL,
        ticks INTEGER NOT NULL,
        sfx INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        ctype TEXT NOT NULL,
        body TEXT NOT NULL{_columns(_MESSAGE_COLUMNS_V3)},
        UNIQUE (qid, part, ticks, sfx)
    )""",
    "CREATE INDEX IF NOT EXISTS messages_expires ON messages (expires)",
    "CREATE TABLE IF NOT EXISTS dead_queues (qid INTEGER PRIMARY KEY)",
)
# Created after a migration too. Partial indexes: only claimed or delayed rows are in them, so
# plain posts and reads never touch them. Claims: a queue's earliest lease end is a lookup; the
# sweep's search for ended leases reads the whole index, as long as the number of messages
# claimed at that moment. Delayed rows are indexed by queue (the earliest due time of a queue)
# and by time (the sweep marks the rows that fell due, however many are delayed).
_SCHEMA_V3 = (
    "CREATE INDEX IF NOT EXISTS messages_claims ON messages (qid, cexp) WHERE cexp > 0",
    "CREATE INDEX IF NOT EXISTS messages_due ON messages (qid, due) WHERE due > 0",
    "CREATE INDEX IF NOT EXISTS messages_due_at ON messages (due) WHERE due > 0",
    """CREATE TABLE IF NOT EXISTS dedup (
        qid INTEGER NOT NULL,
        did TEXT NOT NULL,
        ticks INTEGER NOT NULL,
        sfx INTEGER NOT NULL,
        part INTEGER NOT NULL,
        until INTEGER NOT NULL,
        PRIMARY KEY (qid, did)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS dedup_until ON dedup (until)",
)

_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}

# Checkpoint the WAL in the background after this many commits or changed rows.
_CHECKPOINT_COMMITS = 256
_CHECKPOINT_CHANGES = 10_000

_QUEUE_COLUMNS = (
    "qid, app, name, partitions, type, consistency, principles, created,"
    " delivery, claim_ttl, maxd, dlq, delay, dedup_window, policy, paused"
)
_SQL_GET_QUEUE = f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name = ?"
_SQL_LIST_QUEUES = (
    f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?"
)
_SQL_LIST_NAMES = "SELECT name FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?"
_SQL_ALIVE = "SELECT 1 FROM queues WHERE qid = ?"
_SETTINGS_COLUMNS = (
    "partitions, type, consistency, principles,"
    " delivery, claim_ttl, maxd, dlq, delay, dedup_window, policy, paused"
)
_SQL_INSERT_QUEUE = (
    f"INSERT INTO queues (app, name, created, {_SETTINGS_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_UPDATE_QUEUE = (
    f"UPDATE queues SET ({_SETTINGS_COLUMNS}) = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE qid = ?"
)

_MESSAGE_COLUMNS = "ticks, sfx, part, body, ctype, expires, dlv"  # see _messages_of
# Live rows of queue ?1 at time ?{n}: unexpired, due, and of a queue that was not deleted.
_LIVE = "expires > ?{n} AND due <= ?{n} AND EXISTS (SELECT 1 FROM queues WHERE qid = ?1)"
_INSERT = "INSERT INTO messages (qid, part, ticks, sfx, expires, ctype, body) VALUES "
_ON_CONFLICT = (
    " ON CONFLICT DO NOTHING",
    " ON CONFLICT (qid, part, ticks, sfx) DO UPDATE SET"
    " expires = excluded.expires, ctype = excluded.ctype, body = excluded.body",
)
# A batch is written with multi-row INSERTs of these sizes (greedily, the largest that fits),
# each statement holding at most _STATEMENT_CHARS characters of bodies (a prepared statement
# keeps a copy of the values last bound to it until its next use; this bounds that memory).
_STATEMENT_ROWS = (128, 112, 96, 80, 64, 48, 32, 16, 8, 4, 2, 1)
_MAX_STATEMENT_ROWS = _STATEMENT_ROWS[0]
_STATEMENT_CHARS = 131_072


@functools.cache
def _statement_sizes(rows: int) -> tuple[int, ...]:
    """The statement sizes that write ``rows`` rows (1 <= rows <= _MAX_STATEMENT_ROWS)."""
    sizes: list[int] = []
    for size in _STATEMENT_ROWS:
        while rows >= size:
            sizes.append(size)
            rows -= size
    return tuple(sizes)


def _chunks(bodies: list[str]) -> list[int]:
    """Split rows into runs of at most _MAX_STATEMENT_ROWS rows and _STATEMENT_CHARS
    characters of bodies (or a single row); their lengths."""
    count = len(bodies)
    if count <= _MAX_STATEMENT_ROWS and sum(map(len, bodies)) <= _STATEMENT_CHARS:
        return [count] if count else []
    chunks: list[int] = []
    rows = chars = 0
    for body in bodies:
        size = len(body)
        if rows and (rows == _MAX_STATEMENT_ROWS or chars + size > _STATEMENT_CHARS):
            chunks.append(rows)
            rows = chars = 0
        rows += 1
        chars += size
    if rows:
        chunks.append(rows)
    return chunks


# (rows, replace) -> INSERT of that many rows, 6 parameters a row after the qid (?1).
_SQL_INSERT = {
    (rows, replace): _INSERT + ",".join(["(?1, ?, ?, ?, ?, ?, ?)"] * rows) + _ON_CONFLICT[replace]
    for rows in _STATEMENT_ROWS
    for replace in (False, True)
}
# rows -> INSERT of rows that differ only in their body, at consecutive ticks (a batch of the
# service): the qid, partition, first ticks, sfx, expiry and content type once, then the bodies.
_SQL_INSERT_RUN = {
    rows: _INSERT
    + ",".join(f"(?1, ?2, ?3 + {k}, ?4, ?5, ?6, ?{7 + k})" for k in range(rows))
    + _ON_CONFLICT[False]
    for rows in _STATEMENT_ROWS
}
_SQL_DELETE = "DELETE FROM messages WHERE qid = ? AND part = ? AND ticks = ? AND sfx = ?"
_SQL_GET = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages"
    " WHERE qid = ?1 AND part = ?2 AND ticks = ?3 AND sfx = ?4 AND " + _LIVE.format(n=5)
)
_SQL_COUNT = "SELECT count(*) FROM messages WHERE qid = ?1 AND " + _LIVE.format(n=2)


def _read_sql(where: str, order: str) -> str:
    """A read of queue ?1, partition ?2; with a cursor at (?3, ?4), now ?5 and limit ?6,
    without one now ?3 and limit ?4."""
    n = 5 if where else 3
    return (
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE qid = ?1 AND part = ?2{where}"
        f" AND {_LIVE.format(n=n)} ORDER BY {order} LIMIT ?{n + 1}"
    )


# (descending, cursor kind) -> statement; kind: None (no cursor), True (inclusive), False.
_SQL_READ: dict[tuple[bool, bool | None], str] = {
    (False, None): _read_sql("", "ticks, sfx"),
    (False, True): _read_sql(" AND (ticks, sfx) >= (?3, ?4)", "ticks, sfx"),
    (False, False): _read_sql(" AND (ticks, sfx) > (?3, ?4)", "ticks, sfx"),
    (True, None): _read_sql("", "ticks DESC, sfx DESC"),
    (True, True): _read_sql(" AND (ticks, sfx) <= (?3, ?4)", "ticks DESC, sfx DESC"),
    (True, False): _read_sql(" AND (ticks, sfx) < (?3, ?4)", "ticks DESC, sfx DESC"),
}

_SQL_SWEEP_EXPIRED = (
    "DELETE FROM messages WHERE rid IN (SELECT rid FROM messages WHERE expires <= ? LIMIT ?)"
)
_SQL_SWEEP_DEAD = (
    "DELETE FROM messages WHERE rid IN (SELECT rid FROM messages WHERE qid = ? LIMIT ?)"
)
# Ended leases (the partial index messages_claims holds only rows with cexp > 0).
_SQL_SWEEP_LEASES = (
    "SELECT m.rid, m.qid, m.dlv, q.maxd FROM messages m JOIN queues q ON q.qid = m.qid"
    " WHERE m.cexp > 0 AND m.cexp <= ? LIMIT ?"
)
_SQL_SWEEP_DUE = (
    "UPDATE messages SET due = 0 WHERE rid IN"
    " (SELECT rid FROM messages WHERE due > 0 AND due <= ? LIMIT ?)"
)
_SQL_SWEEP_DEDUP = (
    "DELETE FROM dedup WHERE (qid, did) IN (SELECT qid, did FROM dedup WHERE until <= ? LIMIT ?)"
)

# Messages written with every column (delayed, dead-lettered): rare, one row a statement.
_SQL_INSERT_FULL = (
    "INSERT INTO messages (qid, part, ticks, sfx, expires, ctype, body, due, dlv)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_INSERT_FULL_IGNORE = _SQL_INSERT_FULL + _ON_CONFLICT[0]
_SQL_INSERT_FULL_REPLACE = _SQL_INSERT_FULL + _ON_CONFLICT[1]

# --- claims ---
# Available messages of queue ?1, partition ?2 at ?3, oldest first, at most ?4.
_SQL_CANDIDATES = (
    "SELECT rid, ticks, sfx, part, body, ctype, expires, due, dlv FROM messages"
    " WHERE qid = ?1 AND part = ?2 AND expires > ?3 AND due <= ?3 AND cexp <= ?3"
    " ORDER BY ticks, sfx LIMIT ?4"
)
# The same after the position (?5, ?6) (a scan hint, see _valid_hints).
_SQL_CANDIDATES_AFTER = (
    "SELECT rid, ticks, sfx, part, body, ctype, expires, due, dlv FROM messages"
    " WHERE qid = ?1 AND part = ?2 AND (ticks, sfx) > (?5, ?6)"
    " AND expires > ?3 AND due <= ?3 AND cexp <= ?3 ORDER BY ticks, sfx LIMIT ?4"
)
_SQL_FIRST_LEASE_END = "SELECT min(cexp) FROM messages WHERE qid = ? AND cexp > 0"
_SQL_FIRST_DUE = "SELECT min(due) FROM messages WHERE qid = ? AND due > 0"
_SQL_CLAIM = "UPDATE messages SET dlv = dlv + 1, ctok = ?, cexp = ? WHERE rid = ?"
_SQL_DELETE_RID = "DELETE FROM messages WHERE rid = ?"
_SQL_MOVE = (
    "INSERT INTO messages (qid, part, ticks, sfx, expires, ctype, body, due, dlv)"
    " SELECT ?2, CASE WHEN part <= ?3 THEN part ELSE 1 END, ticks, sfx, expires, ctype, body,"
    " 0, dlv FROM messages WHERE rid = ?1 ON CONFLICT DO NOTHING"
)
_CLAIMED = "qid = ? AND part = ? AND ticks = ? AND sfx = ? AND ctok = ? AND cexp > ?"
_SQL_ACK = f"DELETE FROM messages WHERE {_CLAIMED}"
_SQL_CURRENT_CLAIM = (
    "SELECT ctok FROM messages WHERE qid = ?1 AND part = ?2 AND ticks = ?3 AND sfx = ?4"
    " AND ctok > 0 AND cexp > ?5 AND expires > ?5"
)
_SQL_EXTEND = f"UPDATE messages SET cexp = ? WHERE {_CLAIMED}"
_SQL_STATS = (
    "SELECT count(*) FILTER (WHERE due <= ?2 AND cexp <= ?2),"
    " count(*) FILTER (WHERE due <= ?2 AND cexp > ?2),"
    " count(*) FILTER (WHERE due > ?2),"
    " min(ticks) FILTER (WHERE due <= ?2), max(ticks) FILTER (WHERE due <= ?2)"
    " FROM messages WHERE qid = ?1 AND expires > ?2"
)
_SQL_NEXT_DUE = "SELECT min(due) FROM messages WHERE qid = ?1 AND due > 0 AND due > ?2"
_SQL_NEXT_LEASE = "SELECT min(cexp) FROM messages WHERE qid = ?1 AND cexp > 0 AND cexp > ?2"
_SQL_DEDUP_FIND = "SELECT ticks, sfx, part FROM dedup WHERE qid = ? AND did = ? AND until > ?"
_SQL_DEDUP_PUT = (
    "INSERT OR REPLACE INTO dedup (qid, did, ticks, sfx, part, until) VALUES (?, ?, ?, ?, ?, ?)"
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
    qid, app, name, partitions, type_, consistency, principles, created = row[:8]
    delivery, claim_ttl, maxd, dlq, delay, dedup_window, policy, paused = row[8:]
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
            delivery=delivery,
            claim_ttl=claim_ttl,
            max_deliveries=maxd,
            dead_letter_queue=dlq,
            delay=delay,
            dedup_window=dedup_window,
            policy=policy,
            paused=bool(paused),
        ),
    )


def _settings_row(settings: QueueSettings) -> tuple[Any, ...]:
    """The values of _SETTINGS_COLUMNS."""
    return (
        settings.partitions,
        settings.type,
        settings.consistency,
        ",".join(settings.principles),
        settings.delivery,
        settings.claim_ttl,
        settings.max_deliveries,
        settings.dead_letter_queue,
        settings.delay,
        settings.dedup_window,
        settings.policy,
        int(settings.paused),
    )


# (ticks >> 32, sfx) -> the last 24 hex digits of the ids with those (see _messages_of).
_ID_ENDS: dict[tuple[int, int], str] = {}


def _messages_of(rows: list[_Row]) -> list[Message]:
    """Messages of rows of _MESSAGE_COLUMNS, rebuilding each id as uuid1_hex(ticks, suffix)."""
    found: list[Message] = []
    high = -1
    last: int | None = None
    end = ""
    for ticks, sfx, part, body, ctype, expires, dlv in rows:
        if ticks >> 32 != high or sfx != last:  # usually the same for a whole read
            high = ticks >> 32
            last = sfx
            key = (high, sfx)
            end = _ID_ENDS.get(key, "")
            if not end:
                if len(_ID_ENDS) >= 4096:
                    _ID_ENDS.clear()
                end = _ID_ENDS[key] = (
                    f"{high & 0xFFFF:04x}{((high >> 16) & 0x0FFF) | 0x1000:04x}"
                    f"{sfx + _SFX_OFFSET:016x}"
                )
        # The first 8 digits: hex() and a slice cost half of an f-string with a format spec.
        message_id = hex(ticks & 0xFFFFFFFF | 0x100000000)[3:] + end
        found.append(Message(message_id, ticks, part, body, ctype, expires, 0, dlv))
    return found


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Version 2 -> 3: add the work-queue columns (SQLite adds a column with a constant
    default without rewriting the table, so this is quick at any size)."""
    for table, columns in (("queues", _QUEUE_COLUMNS_V3), ("messages", _MESSAGE_COLUMNS_V3)):
        for name, kind in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


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
        self._watcher: sqlite3.Connection | None = None  # for data_version only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_snapshot = False
        self._queues: dict[_Row, Queue] = {}
        # The last 16 hex digits of the last id written, and their sfx: one writer's ids share
        # them, so most writes skip parsing them.
        self._last_suffix: tuple[str | None, int] = (None, 0)
        # Claim scan hints, qid -> partition -> (ticks, sfx): every row at or before that
        # position was unavailable when this process last claimed (see _w_claim). Valid while
        # no other connection committed (the writer's data_version is _hint_version).
        self._hints: dict[int, dict[int, tuple[int, int]]] = {}
        self._hint_version: int | None = None
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
                setup.execute(_SCHEMA[0])  # meta, which holds the version
                rows = setup.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchall()
                if rows:
                    self._check_version(int(rows[0][0]))
                    if int(rows[0][0]) == 2:
                        _migrate_v2(setup)
                for statement in _SCHEMA[1:] + _SCHEMA_V3:
                    setup.execute(statement)
                setup.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
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
        self._watcher = self._connect(self.busy_timeout_ms, read_only=True, cache_kib=64)

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{self.path} has schema version {version}, newer than this Queuey's"
                f" {SCHEMA_VERSION}"
            )
        if version < 2:
            # Version 1 (message ids stored as text) was never released: no migration.
            raise sqlite3.DatabaseError(
                f"{self.path} has schema version {version}, from a pre-release version of"
                f" Queuey; this Queuey needs version {SCHEMA_VERSION} and does not convert"
                " older files: move the file away (or delete it) to start an empty store"
            )

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
        for conn in (self._reader, self._checkpointer, self._watcher, self._writer):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader = self._checkpointer = self._watcher = self._writer = None

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
                return _messages_of(reader.execute(sql, many[0]).fetchall())
            rows: list[_Row] = []
            for params in many:
                rows += reader.execute(sql, params).fetchall()
            return _messages_of(rows)
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
        return int(self._read(_SQL_COUNT, (queue.qid, now_ms))[0][0])

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
            many = [(qid, p, now_ms, limit) for p in partitions if 1 <= p <= top]
        else:
            sfx, inclusive = _cursor_position(cursor, descending)
            sql = _SQL_READ[descending, inclusive]
            at = cursor.ticks
            many = [(qid, p, at, sfx, now_ms, limit) for p in partitions if 1 <= p <= top]
        return self._read_many(sql, many) if many else []

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        qid = queue.qid
        many: list[tuple[Any, ...]] = []
        for partition, message_id in ids:
            ticks = ticks_of(message_id)
            if ticks is not None:
                many.append((qid, partition, ticks, _sfx_of(message_id), now_ms))
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
        if any(m.due_ms or m.deliveries for m in messages):
            sql = _SQL_INSERT_FULL_REPLACE if replace else _SQL_INSERT_FULL_IGNORE
            rows = self._full_rows(qid, messages)
            await self._submit(self._w_write_rows, qid, sql, rows, min(r[2] for r in rows))
            return
        if len(messages) == 1:
            m = messages[0]
            row: list[Any] = [qid, m.partition, m.ticks, self._sfx(m.id[16:]), m.expires_ms]
            row += (m.content_type, m.body)
            await self._submit(self._w_write, qid, [(_SQL_INSERT[1, replace], row)], m.ticks)
            return
        statements = None if replace else self._run_statements(qid, messages)
        if statements is None:
            statements = self._row_statements(qid, messages, replace)
            low = min(m.ticks for m in messages) if messages else 0
        else:
            low = messages[0].ticks if messages else 0  # a run: consecutive, ascending ticks
        await self._submit(self._w_write, qid, statements, low)

    def _full_rows(self, qid: int, messages: Sequence[Message]) -> list[tuple[Any, ...]]:
        """Rows of _SQL_INSERT_FULL."""
        return [
            (qid, m.partition, m.ticks, self._sfx(m.id[16:]), m.expires_ms, m.content_type,
             m.body, m.due_ms, m.deliveries)
            for m in messages
        ]  # fmt: skip

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        rows = self._full_rows(queue.qid, messages)
        return await self._submit(
            self._w_write_unique, queue.qid, rows, list(dedup_ids), now_ms, window_ms
        )

    # --- claims ---------------------------------------------------------------------------

    async def claim_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        limit: int,
        now_ms: int,
        lease_ms: int,
        remove: bool,
    ) -> list[Claim]:
        wanted = [p for p in partitions if 1 <= p <= queue.partitions]
        if not wanted or limit <= 0:
            return []
        token = secrets.randbits(62) + 1
        expires_ms = now_ms + lease_ms
        rows: list[_Row] = await self._submit(
            self._w_claim, queue.qid, wanted, limit, now_ms, token, expires_ms, remove
        )
        claims: list[Claim] = []
        for message, row in zip(
            _messages_of([r[1:7] + (r[8] + 1,) for r in rows]), rows, strict=True
        ):
            message.due_ms = row[7]
            claims.append(Claim(message, token, expires_ms))
        return claims

    def _claim_rows(self, queue: Queue, claims: Sequence[ClaimRef]) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for ref in claims:
            ticks = ticks_of(ref.id)
            if ticks is None:
                rows.append([])
            else:
                rows.append([queue.qid, ref.partition, ticks, _sfx_of(ref.id), ref.token])
        return rows

    async def ack_messages(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> list[bool]:
        if not claims:
            return []
        rows = self._claim_rows(queue, claims)
        return await self._submit(self._w_claimed, _SQL_ACK, [], rows, now_ms)

    async def current_claims(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        found: list[ClaimRef | None] = []
        for partition, message_id in ids:
            ticks = ticks_of(message_id)
            rows = []
            if ticks is not None:
                params = (queue.qid, partition, ticks, _sfx_of(message_id), now_ms)
                rows = self._read(_SQL_CURRENT_CLAIM, params)
            found.append(ClaimRef(partition, message_id, rows[0][0]) if rows else None)
        return found

    async def extend_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int, lease_ms: int
    ) -> list[bool]:
        if not claims:
            return []
        rows = self._claim_rows(queue, claims)
        # A release (lease 0) ends the lease now: the message is available at once.
        return await self._submit(self._w_claimed, _SQL_EXTEND, [now_ms + lease_ms], rows, now_ms)

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        available, claimed, delayed, oldest, newest = self._read(_SQL_STATS, (queue.qid, now_ms))[0]
        rows = self._read("SELECT dlc FROM queues WHERE qid = ?", (queue.qid,))
        dead = int(rows[0][0]) if rows else 0
        return QueueStats(available, claimed, delayed, dead, oldest, newest)

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        times = [
            self._read(sql, (queue.qid, now_ms))[0][0] for sql in (_SQL_NEXT_DUE, _SQL_NEXT_LEASE)
        ]
        return min((t for t in times if t is not None), default=None)

    async def data_version(self) -> int:
        watcher = self._watcher
        if watcher is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is closed.")
        try:
            version: int = watcher.execute("PRAGMA data_version").fetchall()[0][0]
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        return version

    def _sfx(self, tail: str) -> int:
        """The sfx of an id's last 16 digits (those of the previous write, most of the time)."""
        last, sfx = self._last_suffix
        if tail != last:
            if not _HEX16.fullmatch(tail):
                raise ValueError(f"{tail!r} are not the last 16 digits of a message id")
            sfx = int(tail, 16) - _SFX_OFFSET
            self._last_suffix = (tail, sfx)
        return sfx

    def _run_statements(
        self, qid: int, messages: Sequence[Message]
    ) -> list[tuple[str, list[Any]]] | None:
        """The INSERTs of messages that differ only in their bodies, at consecutive ticks in
        one partition (a batch made by the service), binding each body and nothing else a row;
        None if the messages are not such a run."""
        if not messages:
            return []
        first = messages[0]
        partition, ticks = first.partition, first.ticks
        expires, content_type = first.expires_ms, first.content_type
        tail = first.id[16:]
        bodies: list[str] = []
        at = ticks
        for m in messages:
            if (
                m.ticks != at
                or m.partition != partition
                or m.expires_ms != expires
                or m.content_type != content_type
                or m.id[16:] != tail
            ):
                return None
            bodies.append(m.body)
            at += 1
        fixed = [qid, partition, 0, self._sfx(tail), expires, content_type]
        statements: list[tuple[str, list[Any]]] = []
        start = 0
        for rows in _chunks(bodies):
            for size in _statement_sizes(rows):
                fixed[2] = ticks + start
                statements.append((_SQL_INSERT_RUN[size], fixed + bodies[start : start + size]))
                start += size
        return statements

    def _row_statements(
        self, qid: int, messages: Sequence[Message], replace: bool
    ) -> list[tuple[str, list[Any]]]:
        """The INSERTs (or upserts) of any messages, binding every column of every row."""
        rows: list[tuple[Any, ...]] = []
        tail: str | None = None
        sfx = 0
        for m in messages:
            message_id = m.id
            if message_id[16:] != tail:
                tail = message_id[16:]
                sfx = self._sfx(tail)
            rows.append((m.partition, m.ticks, sfx, m.expires_ms, m.content_type, m.body))
        statements: list[tuple[str, list[Any]]] = []
        start = 0
        for count in _chunks([row[5] for row in rows]):
            for size in _statement_sizes(count):
                params: list[Any] = [qid]
                for row in rows[start : start + size]:
                    params += row
                statements.append((_SQL_INSERT[size, replace], params))
                start += size
        return statements

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        qid = queue.qid
        rows = []
        for partition, message_id in ids:
            ticks = ticks_of(message_id)
            if ticks is not None:
                rows.append((qid, partition, ticks, _sfx_of(message_id)))
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
        """BEGIN IMMEDIATE; when another process holds the lock, raise _Busy (``wait`` false:
        the caller moves to the writer thread) or retry with backoff up to the timeout."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if not wait:
                    raise _Busy() from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise sqlite3.OperationalError(
                    f"database is locked (waited {self.busy_timeout_ms} ms)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.005)

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
    @contextlib.contextmanager
    def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
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

    def _w_write(
        self,
        conn: sqlite3.Connection,
        alive: _Alive,
        qid: int,
        statements: list[tuple[str, list[Any]]],
        low_ticks: int,
    ) -> None:
        """Multi-row INSERTs: one statement for many rows costs far less per row than one a
        row (executemany), which opens the table's and indexes' cursors and seeks for each."""
        if not self._is_alive(conn, alive, qid):
            raise QueueNotFound()
        if qid in self._hints:
            self._forget_hints(qid, low_ticks)
        if len(statements) == 1:  # a single statement is atomic by itself
            conn.execute(*statements[0])
        elif statements:
            with self._savepoint(conn):
                for sql, params in statements:
                    conn.execute(sql, params)

    def _w_write_rows(
        self,
        conn: sqlite3.Connection,
        alive: _Alive,
        qid: int,
        sql: str,
        rows: list[tuple[Any, ...]],
        low_ticks: int,
    ) -> None:
        if not self._is_alive(conn, alive, qid):
            raise QueueNotFound()
        if qid in self._hints:
            self._forget_hints(qid, low_ticks)
        with self._savepoint(conn):
            conn.executemany(sql, rows)

    def _w_delete(self, conn: sqlite3.Connection, alive: _Alive, rows: list[Any]) -> None:
        if len(rows) == 1:
            conn.execute(_SQL_DELETE, rows[0])
            return
        with self._savepoint(conn):
            conn.executemany(_SQL_DELETE, rows)

    @staticmethod
    def _w_create_queue(
        conn: sqlite3.Connection,
        alive: _Alive,
        app: str,
        name: str,
        settings: QueueSettings,
        now: float,
    ) -> Queue:
        try:
            cursor = conn.execute(_SQL_INSERT_QUEUE, (app, name, now, *_settings_row(settings)))
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
        conn.execute(_SQL_UPDATE_QUEUE, (*_settings_row(settings), current.qid))
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

    def _w_write_unique(
        self,
        conn: sqlite3.Connection,
        alive: _Alive,
        qid: int,
        rows: list[tuple[Any, ...]],
        dedup_ids: list[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        if not self._is_alive(conn, alive, qid):
            raise QueueNotFound()
        if qid in self._hints and rows:
            self._forget_hints(qid, min(row[2] for row in rows))
        result: list[Message | None] = []
        with self._savepoint(conn):
            for row, dedup_id in zip(rows, dedup_ids, strict=True):
                if dedup_id is not None:
                    found = conn.execute(_SQL_DEDUP_FIND, (qid, dedup_id, now_ms)).fetchall()
                    if found:
                        ticks, sfx, part = found[0]
                        result.append(_messages_of([(ticks, sfx, part, "", "", 0, 0)])[0])
                        continue
                    until = now_ms + window_ms
                    conn.execute(_SQL_DEDUP_PUT, (qid, dedup_id, row[2], row[3], row[1], until))
                conn.execute(_SQL_INSERT_FULL_IGNORE, row)
                result.append(None)
        return result

    def _w_claim(
        self,
        conn: sqlite3.Connection,
        alive: _Alive,
        qid: int,
        partitions: list[int],
        limit: int,
        now_ms: int,
        token: int,
        expires_ms: int,
        remove: bool,
    ) -> list[_Row]:
        """Rows (rid, ticks, sfx, part, body, ctype, expires, due, dlv) claimed, oldest first;
        dlv is the count before this claim."""
        found = conn.execute("SELECT maxd, dlq, app FROM queues WHERE qid = ?", (qid,)).fetchall()
        if not found:
            return []
        maxd, dlq, app = found[0]
        hints = self._valid_hints(conn, qid, now_ms)
        chosen: list[_Row] = []
        taken: set[int] = set()
        with self._savepoint(conn):
            while True:
                candidates: list[_Row] = []
                for partition in partitions:
                    start = hints.get(partition)
                    if start is None:
                        params: tuple[Any, ...] = (qid, partition, now_ms, limit)
                        candidates += conn.execute(_SQL_CANDIDATES, params).fetchall()
                    else:
                        params = (qid, partition, now_ms, limit, *start)
                        candidates += conn.execute(_SQL_CANDIDATES_AFTER, params).fetchall()
                if len(partitions) > 1:
                    candidates.sort(key=lambda row: (row[1], row[2]))
                exhausted = 0
                for row in candidates:
                    if row[0] in taken:
                        continue
                    if maxd and row[8] >= maxd:
                        self._dead_letter(conn, qid, app, dlq, row[0])
                        exhausted += 1
                        continue
                    chosen.append(row)
                    taken.add(row[0])
                    if len(chosen) == limit:
                        break
                # Dead-lettered rows made room: look again (they are gone from the scan).
                if not exhausted or len(chosen) == limit:
                    break
            if remove:
                conn.executemany(_SQL_DELETE_RID, [(row[0],) for row in chosen])
            else:
                conn.executemany(_SQL_CLAIM, [(token, expires_ms, row[0]) for row in chosen])
        # Each partition's chosen rows are the first available ones from where its scan began,
        # so every row up to the last of them is now unavailable: later scans start after it.
        for row in chosen:
            hints[row[3]] = (row[1], row[2])
        return chosen

    def _valid_hints(
        self, conn: sqlite3.Connection, qid: int, now_ms: int
    ) -> dict[int, tuple[int, int]]:
        """The claim scan hints of a queue, emptied when they may skip an available row.

        A row before a hint is unavailable because it was claimed, acknowledged, expired or
        dead-lettered. It can become available again only by a lease ending (the queue's
        earliest lease end is an index lookup), a release, or a write that puts a row there:
        by this process (those drop the hints they affect: _forget_hints, extend_claims, the
        sweep, _dead_letter) or by another connection (the writer's data_version changes).
        Delayed rows that fell due (the earliest due time is an index lookup too) make every
        scan start from the beginning until the sweep marks them due.
        """
        version = conn.execute("PRAGMA data_version").fetchall()[0][0]
        if version != self._hint_version:
            self._hints.clear()
            self._hint_version = version
        hints = self._hints.get(qid)
        if hints is None:
            if len(self._hints) >= 4096:
                self._hints.clear()
            hints = self._hints[qid] = {}
        elif hints:
            lease = conn.execute(_SQL_FIRST_LEASE_END, (qid,)).fetchall()[0][0]
            due = conn.execute(_SQL_FIRST_DUE, (qid,)).fetchall()[0][0]
            if (lease is not None and lease <= now_ms) or (due is not None and due <= now_ms):
                hints.clear()
        return hints

    def _forget_hints(self, qid: int, low_ticks: int) -> None:
        """Rows at ``low_ticks`` or later are written to queue ``qid``: drop the hints that
        may lie past them."""
        hints = self._hints.get(qid)
        if hints:
            for partition in [p for p, (ticks, _) in hints.items() if ticks >= low_ticks]:
                del hints[partition]

    def _dead_letter(
        self, conn: sqlite3.Connection, qid: int, app: str, dlq: str | None, rid: int
    ) -> None:
        """Move an exhausted message to the dead-letter queue (or drop it), counting it."""
        if dlq:
            target = conn.execute(
                "SELECT qid, partitions FROM queues WHERE app = ? AND name = ?", (app, dlq)
            ).fetchall()
            if target:
                conn.execute(_SQL_MOVE, (rid, target[0][0], target[0][1]))
                self._hints.pop(target[0][0], None)
        conn.execute(_SQL_DELETE_RID, (rid,))
        conn.execute("UPDATE queues SET dlc = dlc + 1 WHERE qid = ?", (qid,))

    def _w_claimed(
        self,
        conn: sqlite3.Connection,
        alive: _Alive,
        sql: str,
        head: list[Any],
        rows: list[list[Any]],
        now_ms: int,
    ) -> list[bool]:
        """Run an ack or extend statement for each claim; whether each was current."""
        if sql is _SQL_EXTEND:  # a lease may end sooner than it would have
            for qid in {row[0] for row in rows if row}:
                self._hints.pop(qid, None)
        return [bool(row) and conn.execute(sql, [*head, *row, now_ms]).rowcount > 0 for row in rows]

    def _w_sweep(self, conn: sqlite3.Connection, alive: _Alive, now_ms: int, limit: int) -> int:
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
        if removed < limit:
            removed += self._sweep_leases(conn, now_ms, limit - removed)
        if removed < limit:
            removed += conn.execute(_SQL_SWEEP_DUE, (now_ms, limit - removed)).rowcount
        if removed < limit:
            removed += conn.execute(_SQL_SWEEP_DEDUP, (now_ms, limit - removed)).rowcount
        return removed

    def _sweep_leases(self, conn: sqlite3.Connection, now_ms: int, limit: int) -> int:
        """Dead-letter exhausted messages whose lease ended; forget the other ended leases."""
        rows = conn.execute(_SQL_SWEEP_LEASES, (now_ms, limit)).fetchall()
        if rows:
            self._hints.clear()  # the earliest lease end no longer shows these rows
        for rid, qid, dlv, maxd in rows:
            if maxd and dlv >= maxd:
                app, dlq = conn.execute(
                    "SELECT app, dlq FROM queues WHERE qid = ?", (qid,)
                ).fetchall()[0]
                self._dead_letter(conn, qid, app, dlq, rid)
            else:
                conn.execute("UPDATE messages SET cexp = 0 WHERE rid = ?", (rid,))
        return len(rows)
