"""The tables and indexes, the schema version kept in ``meta``, and the migration from 2 to 3."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from queuey.storage.sqlite import changes

SCHEMA_VERSION = 3

# Columns of the work-queue settings and state (api.md Part 2), added in version 3; a version 2
# file gets them with their defaults (see _migrate_v2).
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
# Columns added within version 3: a file without them gets them at start-up (see _add_columns).
# ``ver`` moves on every commit that can change the queue's counts (queues.changed): counts
# kept by any process sharing the file stay valid while it stays (storage/counts.py).
# ``end_marker`` grows each time the queue's consumers are ended (queues.end_consumers).
_ADDED_V3 = (
    ("queues", "ver", "INTEGER NOT NULL DEFAULT 0"),
    ("queues", "end_marker", "INTEGER NOT NULL DEFAULT 0"),
)
_MESSAGE_COLUMNS_V3 = (
    ("due", "INTEGER NOT NULL DEFAULT 0"),  # epoch ms when a delayed message becomes due
    ("dlv", "INTEGER NOT NULL DEFAULT 0"),  # deliveries (claims given)
    ("ctok", "INTEGER NOT NULL DEFAULT 0"),  # token of the last claim
    ("cexp", "INTEGER NOT NULL DEFAULT 0"),  # when that claim's lease ends (0: no claim)
)


def _columns(columns: tuple[tuple[str, str], ...]) -> str:
    return "".join(f",\n        {name} {kind}" for name, kind in columns)


_META = """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID"""
_TABLES = (
    f"""CREATE TABLE IF NOT EXISTS queues (
        qid INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        partitions INTEGER NOT NULL,
        type TEXT NOT NULL,
        consistency TEXT NOT NULL,
        principles TEXT NOT NULL,
        created REAL NOT NULL{_columns(_QUEUE_COLUMNS_V3)},
        ver INTEGER NOT NULL DEFAULT 0,
        end_marker INTEGER NOT NULL DEFAULT 0,
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
_TABLES_V3 = (
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
    # The queues that send their dead letters to one queue (a redrive's default target).
    "CREATE INDEX IF NOT EXISTS queues_dlq ON queues (app, dlq) WHERE dlq IS NOT NULL",
    changes.SQL_CREATE,  # added within version 3: a file without it gets it at start-up
)
SQL_VERSION = "SELECT value FROM meta WHERE key = 'schema_version'"


def prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Put the file in WAL mode and create (or migrate) the schema, in one transaction.

    Raises sqlite3.DatabaseError for a file of a version this code cannot use.
    """
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _create(conn, path)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _create(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(_META)
    rows = conn.execute(SQL_VERSION).fetchall()
    if rows:
        version = int(rows[0][0])
        _check_version(path, version)
        if version == 2:
            _migrate_v2(conn)
    for statement in _TABLES + _TABLES_V3:
        conn.execute(statement)
    _add_columns(conn)
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def _add_columns(conn: sqlite3.Connection) -> None:
    """Add the columns of _ADDED_V3 that the file lacks."""
    for table, name, kind in _ADDED_V3:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _check_version(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"{path} has schema version {version}, newer than this Queuey's {SCHEMA_VERSION}"
        )
    if version < 2:
        # Version 1 (message ids stored as text) was never released: no migration.
        raise sqlite3.DatabaseError(
            f"{path} has schema version {version}, from a pre-release version of"
            f" Queuey; this Queuey needs version {SCHEMA_VERSION} and does not convert"
            " older files: move the file away (or delete it) to start an empty store"
        )


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Version 2 -> 3: add the work-queue columns (SQLite adds a column with a constant
    default without rewriting the table, so this is quick at any size)."""
    for table, columns in (("queues", _QUEUE_COLUMNS_V3), ("messages", _MESSAGE_COLUMNS_V3)):
        for name, kind in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
