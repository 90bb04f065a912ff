"""Queues: their rows, and the writer's operations that create, update and delete them.

``qid`` is ``INTEGER PRIMARY KEY AUTOINCREMENT`` so a qid is never handed out twice;
``UNIQUE(app, name)`` makes creation atomic across processes and serves listings as an index
range (``name >= offset``). Deleting a queue only moves its qid to ``dead_queues`` (the sweep
reclaims its messages); reads and counts ignore a qid that is no longer in ``queues``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound
from queuey.core.models import Queue, QueueSettings
from queuey.storage.sqlite.reader import Row

_QUEUE_COLUMNS = (
    "qid, app, name, partitions, type, consistency, principles, created,"
    " delivery, claim_ttl, maxd, dlq, delay, dedup_window, policy, paused, end_marker"
)
SQL_GET_QUEUE = f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name = ?"
SQL_LIST_QUEUES = (
    f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?"
)
# Every application's queues by (app, name), from the start or after a position (the index of
# UNIQUE (app, name) serves both).
SQL_SCAN_QUEUES = (
    f"SELECT {_QUEUE_COLUMNS} FROM queues ORDER BY app, name LIMIT ?",
    f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE (app, name) > (?, ?) ORDER BY app, name LIMIT ?",
)
SQL_LIST_NAMES = "SELECT name FROM queues WHERE app = ? AND name >= ? ORDER BY name LIMIT ?"
SQL_SENDERS = "SELECT name FROM queues WHERE app = ? AND dlq = ? ORDER BY name"
_SQL_ALIVE = "SELECT 1 FROM queues WHERE qid = ?"
_SQL_CHANGED = "UPDATE queues SET ver = ver + 1 WHERE qid = ?"
_SQL_END_CONSUMERS = "UPDATE queues SET end_marker = end_marker + 1 WHERE app = ? AND name = ?"
# A queue's change marker and dead-letter count (what its kept counts are checked against).
SQL_COUNTED = "SELECT ver, dlc FROM queues WHERE qid = ?"
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

# The writer's scratch (one transaction): qid -> whether that queue exists, ("changed", qid)
# once the queue's change marker moved, and what other modules keep there.
Alive = dict[Any, Any]


def queue_of(row: Row) -> Queue:
    """The Queue of a row of _QUEUE_COLUMNS."""
    qid, app, name, partitions, type_, consistency, principles, created = row[:8]
    delivery, claim_ttl, maxd, dlq, delay, dedup_window, policy, paused, end_marker = row[8:]
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
        end_marker=end_marker,
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


class QueueCache:
    """Queues by their rows: equal rows share one (immutable) Queue, built once."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._queues: dict[Row, Queue] = {}

    def of(self, row: Row) -> Queue:
        queue = self._queues.get(row)
        if queue is None:
            if len(self._queues) >= self._capacity:
                self._queues.clear()
            queue = self._queues[row] = queue_of(row)
        return queue


# --- the writer's operations: run inside the group's transaction -------------------------------


def is_alive(conn: sqlite3.Connection, alive: Alive, qid: int) -> bool:
    known = alive.get(qid)
    if known is None:
        known = alive[qid] = bool(conn.execute(_SQL_ALIVE, (qid,)).fetchall())
    return known


def changed(conn: sqlite3.Connection, alive: Alive, qid: int) -> bool:
    """Move the queue's change marker (``ver``), once a transaction: the counts every process
    keeps of it are stale from this commit on. Whether the queue exists (the marker is in its
    row, so the same statement tells). Call it outside a savepoint: one rolled back would undo
    the move that the scratch remembers."""
    mark = ("changed", qid)
    if mark not in alive or not alive.get(qid, True):
        alive[mark] = True
        alive[qid] = move_marker(conn, qid)
    return bool(alive[qid])


def move_marker(conn: sqlite3.Connection, qid: int) -> bool:
    """Move the queue's change marker now (inside a savepoint too); whether the queue exists."""
    return conn.execute(_SQL_CHANGED, (qid,)).rowcount > 0


def create_queue(
    conn: sqlite3.Connection,
    alive: Alive,
    app: str,
    name: str,
    settings: QueueSettings,
    now: float,
) -> Queue:
    try:
        cursor = conn.execute(_SQL_INSERT_QUEUE, (app, name, now, *_settings_row(settings)))
    except sqlite3.IntegrityError:
        # In the same transaction as the failed insert: the queue that won.
        rows = conn.execute(SQL_GET_QUEUE, (app, name)).fetchall()
        raise QueueExists(queue_of(rows[0]) if rows else None) from None
    qid = cursor.lastrowid
    assert qid is not None
    alive[qid] = True
    return Queue(app=app, name=name, qid=qid, created=now, settings=settings)


def update_queue(
    conn: sqlite3.Connection, alive: Alive, app: str, name: str, settings: QueueSettings
) -> Queue:
    rows = conn.execute(SQL_GET_QUEUE, (app, name)).fetchall()
    if not rows:
        raise QueueNotFound()
    current = queue_of(rows[0])
    if settings.partitions < current.partitions:
        raise InvalidUpdate()
    conn.execute(_SQL_UPDATE_QUEUE, (*_settings_row(settings), current.qid))
    return replace(current, settings=settings)


def end_consumers(conn: sqlite3.Connection, alive: Alive, app: str, name: str) -> Queue:
    if not conn.execute(_SQL_END_CONSUMERS, (app, name)).rowcount:
        raise QueueNotFound()
    return queue_of(conn.execute(SQL_GET_QUEUE, (app, name)).fetchall()[0])


def delete_queue(conn: sqlite3.Connection, alive: Alive, app: str, name: str) -> bool:
    found = conn.execute("SELECT qid FROM queues WHERE app = ? AND name = ?", (app, name))
    rows = found.fetchall()
    if not rows:
        return False
    qid = rows[0][0]
    conn.execute("DELETE FROM queues WHERE qid = ?", (qid,))
    conn.execute("INSERT OR IGNORE INTO dead_queues (qid) VALUES (?)", (qid,))
    alive[qid] = False
    return True
