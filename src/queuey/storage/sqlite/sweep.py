"""The sweep: reclaims what no read can see any more, in bounded batches.

In order, each step only while the limit is not reached: expired messages (an index on
``expires`` finds them among live ones), the messages of deleted queues (``dead_queues``),
ended leases (dead-lettering exhausted messages, forgetting the others' leases), delayed
messages that fell due, expired dedup entries, and the change log's old rows.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from queuey.core.observer import Observer
from queuey.storage.sqlite import changes
from queuey.storage.sqlite.claims import ClaimHints, dead_letter
from queuey.storage.sqlite.queues import Alive, changed

_SQL_SWEEP_EXPIRED = (
    "DELETE FROM messages WHERE rid IN (SELECT rid FROM messages WHERE expires <= ? LIMIT ?)"
    " RETURNING qid"
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
    " (SELECT rid FROM messages WHERE due > 0 AND due <= ? LIMIT ?) RETURNING qid"
)
_SQL_SWEEP_DEDUP = (
    "DELETE FROM dedup WHERE (qid, did) IN (SELECT qid, did FROM dedup WHERE until <= ? LIMIT ?)"
)


def sweep(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    observer: Observer,
    now_ms: int,
    limit: int,
) -> int:
    """A writer's operation: reclaim at most ``limit`` rows; how many. The queues whose rows
    it changed get their change marker moved (the counts at ``now_ms`` stay, but not at a time
    before it, which another process's clock may show)."""
    removed = _sweep_expired(conn, alive, observer, now_ms, limit)
    if removed < limit:
        removed += _sweep_dead_queues(conn, limit - removed)
    if removed < limit:
        removed += _sweep_leases(conn, alive, hints, observer, now_ms, limit - removed)
    if removed < limit:
        removed += _changing(conn, alive, _SQL_SWEEP_DUE, now_ms, limit - removed)
    if removed < limit:
        removed += conn.execute(_SQL_SWEEP_DEDUP, (now_ms, limit - removed)).rowcount
    if removed < limit:
        removed += changes.prune(conn, limit - removed)
    return removed


def _sweep_expired(
    conn: sqlite3.Connection, alive: Alive, observer: Observer, now_ms: int, limit: int
) -> int:
    """Delete expired messages, counting them by application."""
    rows = conn.execute(_SQL_SWEEP_EXPIRED, (now_ms, limit)).fetchall()
    by_qid = Counter(qid for (qid,) in rows)
    for qid in by_qid:
        changed(conn, alive, qid)
    if by_qid:
        marks = ",".join("?" * len(by_qid))
        found = conn.execute(f"SELECT qid, app FROM queues WHERE qid IN ({marks})", list(by_qid))
        for qid, app in found:  # a deleted queue's messages are not counted: it has no app
            observer.event(app, "expired", by_qid[qid])
    return by_qid.total()


def _changing(conn: sqlite3.Connection, alive: Alive, sql: str, now_ms: int, limit: int) -> int:
    """Run a sweep statement that returns the qid of each row it changed; how many."""
    qids = [qid for (qid,) in conn.execute(sql, (now_ms, limit)).fetchall()]
    for qid in set(qids):
        changed(conn, alive, qid)
    return len(qids)


def _sweep_dead_queues(conn: sqlite3.Connection, limit: int) -> int:
    """Delete messages of deleted queues, forgetting a queue once none of its are left."""
    removed = 0
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


def _sweep_leases(
    conn: sqlite3.Connection,
    alive: Alive,
    hints: ClaimHints,
    observer: Observer,
    now_ms: int,
    limit: int,
) -> int:
    """Dead-letter exhausted messages whose lease ended; forget the other ended leases."""
    rows = conn.execute(_SQL_SWEEP_LEASES, (now_ms, limit)).fetchall()
    if rows:
        hints.clear()  # the earliest lease end no longer shows these rows
    for qid in {row[1] for row in rows}:
        changed(conn, alive, qid)
    for rid, qid, dlv, maxd in rows:
        if maxd and dlv >= maxd:
            [(app, dlq)] = conn.execute("SELECT app, dlq FROM queues WHERE qid = ?", (qid,))
            dead_letter(conn, hints, observer, app, dlq, qid, rid)
        else:
            conn.execute("UPDATE messages SET cexp = 0 WHERE rid = ?", (rid,))
    return len(rows)
