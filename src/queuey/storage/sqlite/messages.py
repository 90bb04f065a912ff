"""Messages: how a row stores one, the reads, and the planning and running of inserts.

A message id is not stored as text: its first 16 hex digits follow from ``ticks``, and ``sfx``
holds the last 16 as a signed 64-bit number in the same order (``queuey.storage.keys``);
reads rebuild the id (:func:`messages_of`). Writes are multi-row INSERTs of a few fixed sizes
(:class:`InsertPlanner`); docs/storage-sqlite.md has the measurements behind both.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from queuey.core.errors import QueueNotFound
from queuey.core.models import Message
from queuey.storage.keys import HEX16, SFX_OFFSET, id_end, id_of
from queuey.storage.sqlite.queues import Alive, changed
from queuey.storage.sqlite.reader import Row
from queuey.storage.sqlite.writer import savepoint

if TYPE_CHECKING:  # claims imports this module
    from queuey.storage.sqlite.claims import ClaimHints

_MESSAGE_COLUMNS = "ticks, sfx, part, body, ctype, expires, dlv"  # see messages_of
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
# Messages written with every column (delayed, dead-lettered): rare, one row a statement.
_SQL_INSERT_FULL = (
    "INSERT INTO messages (qid, part, ticks, sfx, expires, ctype, body, due, dlv)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_INSERT_FULL = (_SQL_INSERT_FULL + _ON_CONFLICT[0], _SQL_INSERT_FULL + _ON_CONFLICT[1])
SQL_DELETE = "DELETE FROM messages WHERE qid = ? AND part = ? AND ticks = ? AND sfx = ?"
SQL_DELETE_RID = "DELETE FROM messages WHERE rid = ?"
_SQL_PURGE_COUNT = "SELECT count(*) FROM messages WHERE qid = ? AND expires > ?"
_SQL_PURGE = "DELETE FROM messages WHERE qid = ?"
SQL_GET = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages"
    " WHERE qid = ?1 AND part = ?2 AND ticks = ?3 AND sfx = ?4 AND " + _LIVE.format(n=5)
)
# A copy's scan of queue ?1, partition ?2 after (?3, ?4): unexpired at ?5, delayed and claimed
# rows included, with their due time last (see scanned_of).
SQL_SCAN = (
    f"SELECT {_MESSAGE_COLUMNS}, due FROM messages WHERE qid = ?1 AND part = ?2"
    " AND (ticks, sfx) > (?3, ?4) AND expires > ?5"
    " AND EXISTS (SELECT 1 FROM queues WHERE qid = ?1) ORDER BY ticks, sfx LIMIT ?6"
)
# An application's live messages (due or not) and their bodies' bytes in UTF-8.
SQL_USAGE = (
    "SELECT count(*), coalesce(sum(length(CAST(m.body AS BLOB))), 0)"
    " FROM queues q JOIN messages m ON m.qid = q.qid WHERE q.app = ? AND m.expires > ?"
)
_SQL_DEDUP_FIND = "SELECT ticks, sfx, part FROM dedup WHERE qid = ? AND did = ? AND until > ?"
_SQL_DEDUP_PUT = (
    "INSERT OR REPLACE INTO dedup (qid, did, ticks, sfx, part, until) VALUES (?, ?, ?, ?, ?, ?)"
)


def _read_sql(where: str, order: str) -> str:
    """A read of queue ?1, partition ?2; with a cursor at (?3, ?4), now ?5 and limit ?6,
    without one now ?3 and limit ?4."""
    n = 5 if where else 3
    return (
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE qid = ?1 AND part = ?2{where}"
        f" AND {_LIVE.format(n=n)} ORDER BY {order} LIMIT ?{n + 1}"
    )


# (descending, cursor kind) -> statement; kind: None (no cursor), True (inclusive), False.
SQL_READ: dict[tuple[bool, bool | None], str] = {
    (False, None): _read_sql("", "ticks, sfx"),
    (False, True): _read_sql(" AND (ticks, sfx) >= (?3, ?4)", "ticks, sfx"),
    (False, False): _read_sql(" AND (ticks, sfx) > (?3, ?4)", "ticks, sfx"),
    (True, None): _read_sql("", "ticks DESC, sfx DESC"),
    (True, True): _read_sql(" AND (ticks, sfx) <= (?3, ?4)", "ticks DESC, sfx DESC"),
    (True, False): _read_sql(" AND (ticks, sfx) < (?3, ?4)", "ticks DESC, sfx DESC"),
}

# --- reading rows back --------------------------------------------------------------------------


def messages_of(rows: list[Row]) -> list[Message]:
    """Messages of rows of _MESSAGE_COLUMNS, rebuilding each id from its ticks and suffix (the
    ids' last 24 digits once per run of rows that share them: a read's usually all do)."""
    found: list[Message] = []
    high = last = -1
    end = ""
    for ticks, sfx, part, body, ctype, expires, dlv in rows:
        if ticks >> 32 != high or sfx != last:
            high, last = ticks >> 32, sfx
            end = id_end(high, sfx)
        found.append(Message(id_of(ticks, end), ticks, part, body, ctype, expires, 0, dlv))
    return found


def scanned_of(rows: list[Row]) -> list[Message]:
    """Messages of rows of SQL_SCAN: :func:`messages_of` with their due times."""
    found = messages_of([row[:-1] for row in rows])
    return [
        dataclasses.replace(message, due_ms=row[-1]) if row[-1] else message
        for message, row in zip(found, rows, strict=True)
    ]


# --- planning inserts ---------------------------------------------------------------------------

Statements = list[tuple[str, list[Any]]]


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


def _sizes(bodies: list[str]) -> list[int]:
    """The row counts of the statements that write rows of these bodies, in order."""
    return [size for rows in _chunks(bodies) for size in _statement_sizes(rows)]


class InsertPlanner:
    """Turns messages into the statements that insert them, binding as little as it can."""

    def __init__(self) -> None:
        # The last 16 hex digits of the last id written, and their sfx: one writer's ids share
        # them, so most writes skip parsing them.
        self._last_suffix: tuple[str | None, int] = (None, 0)

    def sfx(self, tail: str) -> int:
        """The sfx of an id's last 16 digits (ValueError if they are not 16 hex digits)."""
        last, sfx = self._last_suffix
        if tail != last:
            if not HEX16.fullmatch(tail):
                raise ValueError(f"{tail!r} are not the last 16 digits of a message id")
            sfx = int(tail, 16) - SFX_OFFSET
            self._last_suffix = (tail, sfx)
        return sfx

    def statements(
        self, qid: int, messages: Sequence[Message], replace: bool
    ) -> tuple[Statements, int]:
        """The INSERTs (upserts if ``replace``) of messages without a due time or deliveries,
        and the lowest ticks they write."""
        if len(messages) == 1:
            m = messages[0]
            row: list[Any] = [qid, m.partition, m.ticks, self.sfx(m.id[16:]), m.expires_ms]
            row += (m.content_type, m.body)
            return [(_SQL_INSERT[1, replace], row)], m.ticks
        statements = None if replace else self._run_statements(qid, messages)
        if statements is not None:  # a run: consecutive, ascending ticks
            return statements, messages[0].ticks if messages else 0
        low = min(m.ticks for m in messages) if messages else 0
        return self._row_statements(qid, messages, replace), low

    def full_rows(self, qid: int, messages: Sequence[Message]) -> list[tuple[Any, ...]]:
        """Rows of SQL_INSERT_FULL."""
        return [
            (qid, m.partition, m.ticks, self.sfx(m.id[16:]), m.expires_ms, m.content_type,
             m.body, m.due_ms, m.deliveries)
            for m in messages
        ]  # fmt: skip

    def _run_statements(self, qid: int, messages: Sequence[Message]) -> Statements | None:
        """The INSERTs of messages that differ only in their bodies, at consecutive ticks in
        one partition (a batch made by the service), binding each body and nothing else a row;
        None if the messages are not such a run."""
        if not messages:
            return []
        bodies = _run_bodies(messages)
        if bodies is None:
            return None
        first = messages[0]
        fixed: list[Any] = [qid, first.partition, 0, self.sfx(first.id[16:]), first.expires_ms]
        fixed.append(first.content_type)
        statements: Statements = []
        start = 0
        for size in _sizes(bodies):
            fixed[2] = first.ticks + start
            statements.append((_SQL_INSERT_RUN[size], fixed + bodies[start : start + size]))
            start += size
        return statements

    def _row_statements(self, qid: int, messages: Sequence[Message], replace: bool) -> Statements:
        """The INSERTs (or upserts) of any messages, binding every column of every row."""
        rows: list[tuple[Any, ...]] = []
        tail: str | None = None
        sfx = 0
        for m in messages:
            message_id = m.id
            if message_id[16:] != tail:
                tail = message_id[16:]
                sfx = self.sfx(tail)
            rows.append((m.partition, m.ticks, sfx, m.expires_ms, m.content_type, m.body))
        statements: Statements = []
        start = 0
        for size in _sizes([row[5] for row in rows]):
            params: list[Any] = [qid]
            for row in rows[start : start + size]:
                params += row
            statements.append((_SQL_INSERT[size, replace], params))
            start += size
        return statements


def _run_bodies(messages: Sequence[Message]) -> list[str] | None:
    """The bodies of messages that differ only in them, at consecutive ticks; else None."""
    first = messages[0]
    partition, expires, content_type = first.partition, first.expires_ms, first.content_type
    tail = first.id[16:]
    bodies: list[str] = []
    at = first.ticks
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
    return bodies


# --- the writer's operations: run inside the group's transaction -------------------------------


def write(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    qid: int,
    statements: Statements,
    low_ticks: int,
) -> None:
    """Multi-row INSERTs: one statement for many rows costs far less per row than one a
    row (executemany), which opens the table's and indexes' cursors and seeks for each."""
    if not changed(conn, alive, qid):
        raise QueueNotFound()
    hints.written(qid, low_ticks)  # the rows may land before a claim's scan hint
    if len(statements) == 1:  # a single statement is atomic by itself
        conn.execute(*statements[0])
    elif statements:
        with savepoint(conn):
            for sql, params in statements:
                conn.execute(sql, params)


def write_rows(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    qid: int,
    sql: str,
    rows: list[tuple[Any, ...]],
    low_ticks: int,
) -> None:
    """Rows of SQL_INSERT_FULL, all or none."""
    if not changed(conn, alive, qid):
        raise QueueNotFound()
    hints.written(qid, low_ticks)
    with savepoint(conn):
        conn.executemany(sql, rows)


def write_unique(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    qid: int,
    rows: list[tuple[Any, ...]],
    dedup_ids: list[str | None],
    now_ms: int,
    window_ms: int,
) -> list[Message | None]:
    """Rows of SQL_INSERT_FULL; a row whose dedup id was written within the window is not,
    and the message written then stands for it (its id, ticks and partition)."""
    if not changed(conn, alive, qid):
        raise QueueNotFound()
    if rows:
        hints.written(qid, min(row[2] for row in rows))
    result: list[Message | None] = []
    with savepoint(conn):
        for row, dedup_id in zip(rows, dedup_ids, strict=True):
            if dedup_id is not None:
                found = conn.execute(_SQL_DEDUP_FIND, (qid, dedup_id, now_ms)).fetchall()
                if found:
                    ticks, sfx, part = found[0]
                    result.append(messages_of([(ticks, sfx, part, "", "", 0, 0)])[0])
                    continue
                until = now_ms + window_ms
                conn.execute(_SQL_DEDUP_PUT, (qid, dedup_id, row[2], row[3], row[1], until))
            conn.execute(SQL_INSERT_FULL[0], row)
            result.append(None)
    return result


def delete(conn: sqlite3.Connection, alive: Alive, rows: list[Any]) -> None:
    """Delete messages by key (rows of one queue)."""
    if len(rows) == 1:
        deleted = conn.execute(SQL_DELETE, rows[0]).rowcount
    else:
        with savepoint(conn):
            deleted = conn.executemany(SQL_DELETE, rows).rowcount
    if deleted > 0:
        changed(conn, alive, rows[0][0])


def purge(conn: sqlite3.Connection, alive: Alive, qid: int, now_ms: int) -> int:
    """Delete every message (and so every claim) of the queue; how many were unexpired."""
    changed(conn, alive, qid)
    with savepoint(conn):
        [(count,)] = conn.execute(_SQL_PURGE_COUNT, (qid, now_ms)).fetchall()
        conn.execute(_SQL_PURGE, (qid,))
    return int(count)
