"""Claims: the writer's claim, ack and extend operations, dead letters, and the scan hints.

A claim is one operation of the writer, so it is atomic with the other writes of its group and
with every other process (``BEGIN IMMEDIATE``). It scans each partition's available rows oldest
first; :class:`ClaimHints` lets the scan start after the rows this process last found
unavailable instead of from the queue's first row.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

from queuey.core.ids import ticks_of
from queuey.core.models import Claim, ClaimRef, Queue
from queuey.core.observer import Observer
from queuey.storage.keys import sfx_of
from queuey.storage.sqlite.messages import SQL_DELETE_RID, messages_of
from queuey.storage.sqlite.queues import Alive, changed, move_marker
from queuey.storage.sqlite.reader import Row
from queuey.storage.sqlite.writer import savepoint

_CANDIDATE_COLUMNS = "rid, ticks, sfx, part, body, ctype, expires, due, dlv"  # see claim
# Available messages of queue ?1, partition ?2 at ?3, oldest first, at most ?4.
_SQL_CANDIDATES = (
    f"SELECT {_CANDIDATE_COLUMNS} FROM messages"
    " WHERE qid = ?1 AND part = ?2 AND expires > ?3 AND due <= ?3 AND cexp <= ?3"
    " ORDER BY ticks, sfx LIMIT ?4"
)
# The same after the position (?5, ?6) (a scan hint).
_SQL_CANDIDATES_AFTER = (
    f"SELECT {_CANDIDATE_COLUMNS} FROM messages"
    " WHERE qid = ?1 AND part = ?2 AND (ticks, sfx) > (?5, ?6)"
    " AND expires > ?3 AND due <= ?3 AND cexp <= ?3 ORDER BY ticks, sfx LIMIT ?4"
)
_SQL_FIRST_LEASE_END = "SELECT min(cexp) FROM messages WHERE qid = ? AND cexp > 0"
_SQL_FIRST_DUE = "SELECT min(due) FROM messages WHERE qid = ? AND due > 0"
_SQL_CLAIM = "UPDATE messages SET dlv = dlv + 1, ctok = ?, cexp = ? WHERE rid = ?"
_SQL_MOVE = (
    "INSERT INTO messages (qid, part, ticks, sfx, expires, ctype, body, due, dlv)"
    " SELECT ?2, CASE WHEN part <= ?3 THEN part ELSE 1 END, ticks, sfx, expires, ctype, body,"
    " 0, dlv FROM messages WHERE rid = ?1 ON CONFLICT DO NOTHING"
)
_CLAIMED = "qid = ? AND part = ? AND ticks = ? AND sfx = ? AND ctok = ? AND cexp > ?"
SQL_ACK = f"DELETE FROM messages WHERE {_CLAIMED}"
SQL_EXTEND = f"UPDATE messages SET cexp = ? WHERE {_CLAIMED}"
# The claim token of message (?1, ?2, ?3, ?4) if its lease and its life go on after ?5.
SQL_CURRENT_CLAIM = (
    "SELECT ctok FROM messages WHERE qid = ?1 AND part = ?2 AND ticks = ?3 AND sfx = ?4"
    " AND ctok > 0 AND cexp > ?5 AND expires > ?5"
)
# Un-claim: no lease, and the claim's delivery is not counted.
SQL_UNCLAIM = f"UPDATE messages SET cexp = 0, dlv = max(dlv - 1, 0) WHERE {_CLAIMED}"
# A work queue's state at ?2: available, claimed, delayed, and the span of the due messages;
# then when that state next changes by the clock alone: the earliest expiry, due time and
# lease end to come among the messages counted.
SQL_STATS = (
    "SELECT count(*) FILTER (WHERE due <= ?2 AND cexp <= ?2),"
    " count(*) FILTER (WHERE due <= ?2 AND cexp > ?2),"
    " count(*) FILTER (WHERE due > ?2),"
    " min(ticks) FILTER (WHERE due <= ?2), max(ticks) FILTER (WHERE due <= ?2),"
    " min(expires), min(due) FILTER (WHERE due > ?2), min(cexp) FILTER (WHERE cexp > ?2)"
    " FROM messages WHERE qid = ?1 AND expires > ?2"
)
SQL_NEXT_DUE = "SELECT min(due) FROM messages WHERE qid = ?1 AND due > 0 AND due > ?2"
SQL_NEXT_LEASE = "SELECT min(cexp) FROM messages WHERE qid = ?1 AND cexp > 0 AND cexp > ?2"

Position = tuple[int, int]  # (ticks, sfx)


class ClaimHints:
    """Where each partition's claim scan may start: qid -> partition -> (ticks, sfx).

    Every row at or before a hint was unavailable (claimed, acknowledged, expired or
    dead-lettered) when this process last claimed. A row there can become available again
    only by a lease ending, a release, or a write that puts a row there: by this process
    (which reports it: :meth:`written`, :meth:`forget`, :meth:`clear`) or by another
    connection (the transaction's ``data_version`` changes, and :meth:`start` drops every
    hint). Delayed rows that fell due make every scan start from the beginning until the sweep
    marks them due.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._queues: dict[int, dict[int, Position]] = {}
        self._version: int | None = None

    def positions(self, qid: int) -> dict[int, Position]:
        """A copy of the queue's hints."""
        return dict(self._queues.get(qid, {}))

    def start(self, conn: sqlite3.Connection, qid: int, now_ms: int) -> dict[int, Position]:
        """The queue's hints for a claim at ``now_ms`` in ``conn``'s transaction, emptied when
        they may skip an available row (read them, and report the claim with :meth:`passed`)."""
        version = conn.execute("PRAGMA data_version").fetchall()[0][0]
        if version != self._version:
            self._queues.clear()
            self._version = version
        hints = self._queues.get(qid)
        if hints is None:
            if len(self._queues) >= self._capacity:
                self._queues.clear()
            hints = self._queues[qid] = {}
        elif hints and _available_again(conn, qid, now_ms):
            hints.clear()
        return hints

    def passed(self, qid: int, rows: list[Row]) -> None:
        """A claim took ``rows`` (of claim's columns): each partition's chosen rows are the first
        available ones from where its scan began, so every row up to the last of them is now
        unavailable and later scans start after it."""
        hints = self._queues.get(qid)
        if hints is not None:
            for row in rows:
                hints[row[3]] = (row[1], row[2])

    def written(self, qid: int, low_ticks: int) -> None:
        """Rows at ``low_ticks`` or later are written to the queue: drop the hints that may lie
        past them."""
        hints = self._queues.get(qid)
        if hints:
            for partition in [p for p, (ticks, _) in hints.items() if ticks >= low_ticks]:
                del hints[partition]

    def forget(self, qid: int) -> None:
        """Rows of the queue anywhere may have become available."""
        self._queues.pop(qid, None)

    def clear(self) -> None:
        """Rows of any queue may have become available."""
        self._queues.clear()


def _available_again(conn: sqlite3.Connection, qid: int, now_ms: int) -> bool:
    """Whether a lease of the queue ended or a delayed row fell due (two index lookups)."""
    lease = conn.execute(_SQL_FIRST_LEASE_END, (qid,)).fetchall()[0][0]
    due = conn.execute(_SQL_FIRST_DUE, (qid,)).fetchall()[0][0]
    return (lease is not None and lease <= now_ms) or (due is not None and due <= now_ms)


def claims_of(rows: list[Row], token: int, expires_ms: int) -> list[Claim]:
    """The claims of rows of claim's columns (their dlv is the count before this claim)."""
    found = messages_of([row[1:7] + (row[8] + 1,) for row in rows])
    return [
        Claim(dataclasses.replace(message, due_ms=row[7]) if row[7] else message, token, expires_ms)
        for message, row in zip(found, rows, strict=True)
    ]


def claim_refs(queue: Queue, claims: Sequence[ClaimRef]) -> list[list[Any]]:
    """The key and token of each claim, or [] for an id that is not one."""
    rows: list[list[Any]] = []
    for ref in claims:
        ticks = ticks_of(ref.id)
        if ticks is None:
            rows.append([])
        else:
            rows.append([queue.qid, ref.partition, ticks, sfx_of(ref.id), ref.token])
    return rows


# --- the writer's operations: run inside the group's transaction -------------------------------


def claim(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    observer: Observer,
    qid: int,
    partitions: list[int],
    limit: int,
    now_ms: int,
    token: int,
    expires_ms: int,
    remove: bool,
) -> list[Row]:
    """Rows (rid, ticks, sfx, part, body, ctype, expires, due, dlv) claimed, oldest first;
    dlv is the count before this claim."""
    found = conn.execute("SELECT maxd, dlq, app FROM queues WHERE qid = ?", (qid,)).fetchall()
    if not found:
        return []
    maxd, dlq, app = found[0]
    starts = hints.start(conn, qid, now_ms)
    with savepoint(conn):
        dead_letters = (observer, app, dlq)
        chosen = _choose(conn, hints, qid, partitions, limit, now_ms, starts, maxd, dead_letters)
        if remove:
            conn.executemany(SQL_DELETE_RID, [(row[0],) for row in chosen])
        else:
            conn.executemany(_SQL_CLAIM, [(token, expires_ms, row[0]) for row in chosen])
    if chosen:
        changed(conn, alive, qid)
    hints.passed(qid, chosen)
    return chosen


def _choose(
    conn: sqlite3.Connection,
    hints: ClaimHints,
    qid: int,
    partitions: list[int],
    limit: int,
    now_ms: int,
    starts: dict[int, Position],
    maxd: int,
    dead_letters: tuple[Observer, str, str | None],
) -> list[Row]:
    """The first ``limit`` available rows, dead-lettering the exhausted ones met on the way."""
    chosen: list[Row] = []
    taken: set[int] = set()
    while True:
        exhausted = 0
        for row in _candidates(conn, qid, partitions, limit, now_ms, starts):
            if row[0] in taken:
                continue
            if maxd and row[8] >= maxd:
                dead_letter(conn, hints, *dead_letters, qid, row[0])
                exhausted += 1
                continue
            chosen.append(row)
            taken.add(row[0])
            if len(chosen) == limit:
                break
        # Dead-lettered rows made room: look again (they are gone from the scan).
        if not exhausted or len(chosen) == limit:
            return chosen


def _candidates(
    conn: sqlite3.Connection,
    qid: int,
    partitions: list[int],
    limit: int,
    now_ms: int,
    starts: dict[int, Position],
) -> list[Row]:
    """Up to ``limit`` available rows of each partition from its hint, oldest first."""
    candidates: list[Row] = []
    for partition in partitions:
        start = starts.get(partition)
        if start is None:
            params: tuple[Any, ...] = (qid, partition, now_ms, limit)
            candidates += conn.execute(_SQL_CANDIDATES, params).fetchall()
        else:
            params = (qid, partition, now_ms, limit, *start)
            candidates += conn.execute(_SQL_CANDIDATES_AFTER, params).fetchall()
    if len(partitions) > 1:
        candidates.sort(key=lambda row: (row[1], row[2]))
    return candidates


def dead_letter(
    conn: sqlite3.Connection,
    hints: ClaimHints,
    observer: Observer,
    app: str,
    dlq: str | None,
    qid: int,
    rid: int,
) -> None:
    """Move an exhausted message to the dead-letter queue (or drop it), counting it."""
    observer.event(app, "dead_lettered", 1)
    if dlq:
        target = conn.execute(
            "SELECT qid, partitions FROM queues WHERE app = ? AND name = ?", (app, dlq)
        ).fetchall()
        if target:
            conn.execute(_SQL_MOVE, (rid, target[0][0], target[0][1]))
            hints.forget(target[0][0])
            move_marker(conn, target[0][0])
    conn.execute(SQL_DELETE_RID, (rid,))
    conn.execute("UPDATE queues SET dlc = dlc + 1, ver = ver + 1 WHERE qid = ?", (qid,))


def settle(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    sql: str,
    head: list[Any],
    rows: list[list[Any]],
    now_ms: int,
) -> list[bool]:
    """Run an ack, extend or unclaim statement for each claim; whether each was current."""
    if sql is not SQL_ACK:  # a lease may end sooner than it would have
        for qid in {row[0] for row in rows if row}:
            hints.forget(qid)
    done = [bool(row) and conn.execute(sql, [*head, *row, now_ms]).rowcount > 0 for row in rows]
    for qid in {row[0] for row, current in zip(rows, done, strict=True) if current}:
        changed(conn, alive, qid)
    return done
