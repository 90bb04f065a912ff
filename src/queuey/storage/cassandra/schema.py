"""The tables and the prepared statements of the Cassandra back-end (the data model is
described in ``docs/storage-cassandra.md``)."""

from __future__ import annotations

from typing import Any

from queuey.storage.cassandra.settings import CassandraSettings

NAME_SHARDS = 16  # partitions of an application's queue listing
INDEX_SHARDS = 4  # partitions of each hour of the expiry index (and of pending moves)
DEAD_SHARDS = 4  # partitions of the deleted queues awaiting the sweep
HOUR_MS = 3_600_000  # the expiry index is partitioned by hour
CHANGE_TTL_S = 60  # seconds a row of the change log lives (changes.py)
SENDERS = "dead_letter_senders"  # the table of which queues send dead letters where


def replication(settings: CassandraSettings) -> str:
    if settings.replication:
        factors = ", ".join(f"'{dc}': {n}" for dc, n in settings.replication)
        return f"{{'class': 'NetworkTopologyStrategy', {factors}}}"
    if settings.local_dc:
        return (
            f"{{'class': 'NetworkTopologyStrategy', "
            f"'{settings.local_dc}': {settings.replication_factor}}}"
        )
    return f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.replication_factor}}}"


# Columns added since the first schema (the work-queue contract's, and the queues' end marker),
# per (keyspace, table): ALTER TABLE adds them to tables created before (their rows are not
# rewritten; a queue's row without an end marker reads as 0).
ADDED_COLUMNS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("meta", "queues"): (
        ("delivery", "text"),
        ("claim_ttl", "int"),
        ("max_deliveries", "int"),
        ("dead_letter_queue", "text"),
        ("delay", "int"),
        ("dedup_window", "int"),
        ("policy", "text"),
        ("paused", "boolean"),
        ("end_marker", "bigint"),  # grows each time the queue's consumers are ended
    ),
    ("msgs", "messages"): (
        ("due", "bigint"),  # when a delayed message falls due (epoch ms), 0: at once
        ("dlv", "int"),  # deliveries: claims given
        ("ctok", "bigint"),  # token of the last claim (0: none; negative: being dead-lettered)
        ("cexp", "bigint"),  # when that claim's lease ends (epoch ms)
    ),
    ("msgs", "expiry"): (("ctok", "bigint"), ("app", "text"), ("name", "text")),
}


def _added(keyspace: str, table: str) -> str:
    return "".join(f", {name} {kind}" for name, kind in ADDED_COLUMNS[keyspace, table])


def tables(settings: CassandraSettings, meta: str, msgs: str) -> list[str]:
    strategy = replication(settings)
    twcs = (
        "compaction = {'class': 'TimeWindowCompactionStrategy', "
        "'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}"
    )
    # While a node that died is not yet declared down (gossip takes several seconds), a read
    # is not held up by it: a replica that has not answered within 50 ms (or the 99th
    # percentile, if lower) is doubled by a read from another one, and no read waits for a
    # blocking read repair, which waits for the dead node's write timeout (measured: 5 s per
    # read for ~15 s after a kill). Quorum writes and reads still overlap, so an acknowledged
    # write is always read back; time-window compaction also wants no read repair, which would
    # mix old cells into new windows.
    fast = "speculative_retry = 'MIN(99p,50ms)' AND read_repair = 'NONE'"
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {meta} WITH replication = {strategy}",
        f"CREATE KEYSPACE IF NOT EXISTS {msgs} WITH replication = {strategy}",
        f"""CREATE TABLE IF NOT EXISTS {meta}.queues (
            app text, name text, qid bigint, partitions int, type text, consistency text,
            principles frozen<list<text>>, created double{_added("meta", "queues")},
            PRIMARY KEY ((app, name))) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {meta}.queue_names (
            app text, shard int, name text, PRIMARY KEY ((app, shard), name))
            WITH {fast}""",
        # The queues that send their dead letters to a queue (a redrive's default target).
        f"""CREATE TABLE IF NOT EXISTS {meta}.{SENDERS} (
            app text, dlq text, name text, seen boolean, PRIMARY KEY ((app, dlq), name))
            WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {meta}.dead_queues (
            shard int, qid bigint, PRIMARY KEY ((shard), qid)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.buckets (
            qid bigint, bucket bigint, PRIMARY KEY ((qid), bucket)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.messages (
            qid bigint, bucket bigint, part int, ticks bigint, sfx bigint, expires bigint,
            ctype text, body text, mark uuid static{_added("msgs", "messages")},
            PRIMARY KEY ((qid, bucket), part, ticks, sfx))
            WITH {twcs} AND gc_grace_seconds = 86400 AND {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.expiry (
            shard int, hour bigint, expires bigint, qid bigint, bucket bigint, wid uuid,
            keys frozen<list<frozen<tuple<int, bigint, bigint>>>>{_added("msgs", "expiry")},
            PRIMARY KEY ((shard, hour), expires, qid, bucket, wid))
            WITH {twcs} AND gc_grace_seconds = 86400 AND {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.expiry_hours (
            shard int, hour bigint, PRIMARY KEY ((shard), hour)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.wakeups (
            qid bigint, at bigint, PRIMARY KEY ((qid), at))
            WITH gc_grace_seconds = 3600 AND {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.dead_letters (
            qid bigint, bucket bigint, part int, ticks bigint, sfx bigint,
            PRIMARY KEY ((qid), bucket, part, ticks, sfx)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.moves (
            shard int, qid bigint, bucket bigint, part int, ticks bigint, sfx bigint,
            mtok bigint, since bigint, target bigint, tpart int,
            PRIMARY KEY ((shard), qid, bucket, part, ticks, sfx, mtok))
            WITH gc_grace_seconds = 3600 AND {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.floors (
            qid bigint, part int, ticks bigint, sfx bigint, touched uuid,
            PRIMARY KEY ((qid), part)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.dedup (
            qid bigint, did text, until bigint, part int, ticks bigint, sfx bigint,
            stored boolean, since bigint, PRIMARY KEY ((qid, did)))
            WITH gc_grace_seconds = 3600 AND {fast}""",
        # The change log (changes.py): one partition per second of the writers' clocks.
        f"""CREATE TABLE IF NOT EXISTS {msgs}.changes (
            bucket bigint, app text, name text, at uuid, PRIMARY KEY ((bucket), app, name))
            WITH default_time_to_live = {CHANGE_TTL_S} AND gc_grace_seconds = 60
            AND compaction = {{'class': 'TimeWindowCompactionStrategy',
            'compaction_window_unit': 'MINUTES', 'compaction_window_size': 5}} AND {fast}""",
    ]


SETTINGS_COLUMNS = (
    "partitions, type, consistency, principles, delivery, claim_ttl, max_deliveries,"
    " dead_letter_queue, delay, dedup_window, policy, paused"
)
# A queue's row as the store reads it (queues._queue_of).
QUEUE_COLUMNS = f"qid, created, {SETTINGS_COLUMNS}, end_marker"
# A message row to the claim code: its key, everything a claim returns, and the claim state.
CLAIM_COLUMNS = "part, ticks, sfx, body, ctype, expires, due, dlv, ctok, cexp"
_WHERE_KEY = "qid = ? AND bucket = ? AND part = ? AND ticks = ? AND sfx = ?"
_IN_KEYS = "qid = ? AND bucket = ? AND (part, ticks, sfx) IN ?"


def statements(meta: str, msgs: str) -> dict[str, str]:
    read_columns = "ticks, sfx, body, ctype, expires, due, dlv"
    settings_marks = ", ".join("?" * 12)
    statements = {
        "q_get": f"SELECT {QUEUE_COLUMNS} FROM {meta}.queues WHERE app = ? AND name = ?",
        "q_create": f"INSERT INTO {meta}.queues (app, name, qid, created, {SETTINGS_COLUMNS})"
        f" VALUES (?, ?, ?, ?, {settings_marks}) IF NOT EXISTS",
        "q_update": f"UPDATE {meta}.queues SET partitions = ?, type = ?, consistency = ?,"
        " principles = ?, delivery = ?, claim_ttl = ?, max_deliveries = ?,"
        " dead_letter_queue = ?, delay = ?, dedup_window = ?, policy = ?, paused = ?"
        " WHERE app = ? AND name = ? IF qid = ? AND partitions <= ?",
        "q_delete": f"DELETE FROM {meta}.queues WHERE app = ? AND name = ? IF qid = ?",
        # A row made before the end marker has none: the condition then binds null.
        "q_end": f"UPDATE {meta}.queues SET end_marker = ?"
        " WHERE app = ? AND name = ? IF qid = ? AND end_marker = ?",
        # Every queue in token order (a copy of the store pages through them by token).
        "q_scan_first": f"SELECT token(app, name), app, name, {QUEUE_COLUMNS}"
        f" FROM {meta}.queues LIMIT ?",
        "q_scan": f"SELECT token(app, name), app, name, {QUEUE_COLUMNS}"
        f" FROM {meta}.queues WHERE token(app, name) > ? LIMIT ?",
        "n_insert": f"INSERT INTO {meta}.queue_names (app, shard, name) VALUES (?, ?, ?)",
        "n_delete": f"DELETE FROM {meta}.queue_names WHERE app = ? AND shard = ? AND name = ?",
        "n_list": f"SELECT name FROM {meta}.queue_names"
        " WHERE app = ? AND shard = ? AND name >= ? LIMIT ?",
        "s_insert": f"INSERT INTO {meta}.{SENDERS} (app, dlq, name, seen) VALUES (?, ?, ?, true)",
        "s_list": f"SELECT name, WRITETIME(seen) FROM {meta}.{SENDERS} WHERE app = ? AND dlq = ?",
        "s_delete": f"DELETE FROM {meta}.{SENDERS} USING TIMESTAMP ?"
        " WHERE app = ? AND dlq = ? AND name = ?",
        "d_insert": f"INSERT INTO {meta}.dead_queues (shard, qid) VALUES (?, ?)",
        "d_list": f"SELECT qid FROM {meta}.dead_queues WHERE shard = ? LIMIT 16",
        "d_delete": f"DELETE FROM {meta}.dead_queues WHERE shard = ? AND qid = ?",
        "b_insert": f"INSERT INTO {msgs}.buckets (qid, bucket) VALUES (?, ?)",
        "b_asc": f"SELECT bucket FROM {msgs}.buckets WHERE qid = ? AND bucket >= ? LIMIT ?",
        "b_desc": f"SELECT bucket FROM {msgs}.buckets WHERE qid = ? AND bucket <= ?"
        " ORDER BY bucket DESC LIMIT ?",
        "b_all": f"SELECT bucket FROM {msgs}.buckets WHERE qid = ?",
        "b_delete": f"DELETE FROM {msgs}.buckets WHERE qid = ? AND bucket = ?",
        "m_insert": f"INSERT INTO {msgs}.messages"
        " (qid, bucket, part, ticks, sfx, expires, ctype, body, due, dlv, ctok, cexp)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "m_mark": f"UPDATE {msgs}.messages SET mark = ? WHERE qid = ? AND bucket = ?",
        "m_mark_read": f"SELECT mark FROM {msgs}.messages WHERE qid = ? AND bucket = ? LIMIT 1",
        "m_get": f"SELECT part, {read_columns} FROM {msgs}.messages WHERE {_IN_KEYS}",
        "m_keys": f"SELECT part, ticks, sfx, expires, dlv, ctok, cexp FROM {msgs}.messages"
        f" WHERE {_IN_KEYS}",
        "m_rows": f"SELECT {CLAIM_COLUMNS} FROM {msgs}.messages WHERE {_IN_KEYS}",
        # A copy's scan of one queue partition of a bucket, claimed and delayed rows included.
        "m_copy": f"SELECT {read_columns} FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND part = ? AND (ticks, sfx) > (?, ?) LIMIT ?",
        "m_count": f"SELECT COUNT(*) FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due <= ? ALLOW FILTERING",
        "m_usage": f"SELECT part, ticks, sfx, body FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND (part, ticks, sfx) > (?, ?, ?) AND expires > ?"
        " LIMIT ? ALLOW FILTERING",
        "m_delete": f"DELETE FROM {msgs}.messages WHERE {_WHERE_KEY}",
        "m_purge": f"DELETE FROM {msgs}.messages WHERE qid = ? AND bucket = ?",
        "m_scan": f"SELECT part, ticks, sfx FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? LIMIT ?",
        "m_delete_upto": f"DELETE FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND (part, ticks, sfx) <= (?, ?, ?)",
        "m_drop": f"DELETE FROM {msgs}.messages WHERE qid = ? AND bucket = ?",
        # Claims, acks, extensions and dead-letter moves: conditional on the claim columns
        # (and on the expiry, which a missing row does not have).
        "c_claim": f"UPDATE {msgs}.messages USING TTL ? SET ctok = ?, cexp = ?, dlv = ?"
        f" WHERE {_WHERE_KEY} IF expires = ? AND ctok = ? AND cexp = ?",
        "c_take": f"DELETE FROM {msgs}.messages"
        f" WHERE {_WHERE_KEY} IF expires = ? AND ctok = ? AND cexp = ?",
        "c_ack": f"DELETE FROM {msgs}.messages WHERE {_WHERE_KEY} IF ctok = ? AND cexp > ?",
        "c_extend": f"UPDATE {msgs}.messages USING TTL ? SET cexp = ?"
        f" WHERE {_WHERE_KEY} IF ctok = ? AND cexp > ?",
        "c_unclaim": f"UPDATE {msgs}.messages USING TTL ? SET cexp = ?, dlv = ?"
        f" WHERE {_WHERE_KEY} IF ctok = ? AND cexp > ?",
        "c_moved": f"DELETE FROM {msgs}.messages WHERE {_WHERE_KEY} IF ctok = ?",
        "f_scan": f"SELECT ticks, sfx, expires, ctok FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND part = ? AND (ticks, sfx) >= (?, ?) LIMIT ?",
        # The counts of a bucket, the span of the due messages, and when the counts next
        # change by the clock alone (the earliest expiry, lease end and due time).
        "s_available": "SELECT COUNT(*), MIN(ticks), MAX(ticks), MIN(expires)"
        f" FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due <= ? AND cexp <= ?"
        " ALLOW FILTERING",
        "s_claimed": "SELECT COUNT(*), MIN(ticks), MAX(ticks), MIN(expires), MIN(cexp)"
        f" FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due <= ? AND cexp > ?"
        " ALLOW FILTERING",
        "s_delayed": f"SELECT COUNT(*), MIN(expires), MIN(due) FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due > ? ALLOW FILTERING",
        "w_insert": f"INSERT INTO {msgs}.wakeups (qid, at) VALUES (?, ?) USING TTL ?",
        "w_next": f"SELECT at FROM {msgs}.wakeups WHERE qid = ? AND at > ? LIMIT 1",
        "w_drop": f"DELETE FROM {msgs}.wakeups WHERE qid = ?",
        "dl_insert": f"INSERT INTO {msgs}.dead_letters (qid, bucket, part, ticks, sfx)"
        " VALUES (?, ?, ?, ?, ?)",
        "dl_get": f"SELECT ticks FROM {msgs}.dead_letters WHERE {_WHERE_KEY}",
        "dl_count": f"SELECT COUNT(*) FROM {msgs}.dead_letters WHERE qid = ?",
        "dl_drop": f"DELETE FROM {msgs}.dead_letters WHERE qid = ?",
        "mv_insert": f"INSERT INTO {msgs}.moves"
        " (shard, qid, bucket, part, ticks, sfx, since, mtok, target, tpart)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "mv_list": f"SELECT shard, qid, bucket, part, ticks, sfx, since, mtok, target, tpart"
        f" FROM {msgs}.moves WHERE shard = ? LIMIT 100",
        "mv_delete": f"DELETE FROM {msgs}.moves WHERE shard = ? AND qid = ? AND bucket = ?"
        " AND part = ? AND ticks = ? AND sfx = ? AND mtok = ?",
        "fl_read": f"SELECT part, ticks, sfx, touched FROM {msgs}.floors WHERE qid = ?",
        "fl_create": f"INSERT INTO {msgs}.floors (qid, part, ticks, sfx, touched)"
        " VALUES (?, ?, ?, ?, ?) IF NOT EXISTS",
        "fl_move": f"UPDATE {msgs}.floors SET ticks = ?, sfx = ?, touched = ?"
        " WHERE qid = ? AND part = ? IF touched = ?",
        "fl_drop": f"DELETE FROM {msgs}.floors WHERE qid = ?",
        "dd_insert": f"INSERT INTO {msgs}.dedup (qid, did, until, part, ticks, sfx, stored, since)"
        " VALUES (?, ?, ?, ?, ?, ?, false, ?) IF NOT EXISTS USING TTL ?",
        "dd_take": f"UPDATE {msgs}.dedup USING TTL ?"
        " SET until = ?, part = ?, ticks = ?, sfx = ?, stored = false, since = ?"
        " WHERE qid = ? AND did = ? IF until = ? AND ticks = ? AND sfx = ? AND stored = ?",
        "dd_confirm": f"UPDATE {msgs}.dedup USING TTL ? SET stored = true"
        " WHERE qid = ? AND did = ? IF part = ? AND ticks = ? AND sfx = ?",
        "dd_release": f"DELETE FROM {msgs}.dedup WHERE qid = ? AND did = ?"
        " IF part = ? AND ticks = ? AND sfx = ?",
        "x_insert": f"INSERT INTO {msgs}.expiry (shard, hour, expires, qid, bucket, wid, keys)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "x_lease": f"INSERT INTO {msgs}.expiry"
        " (shard, hour, expires, qid, bucket, wid, keys, ctok, app, name)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "x_read": f"SELECT expires, qid, bucket, wid, keys, ctok, app, name, TTL(keys)"
        f" FROM {msgs}.expiry WHERE shard = ? AND hour = ? AND expires <= ? LIMIT ?",
        "x_keys": f"UPDATE {msgs}.expiry USING TTL ? SET keys = ? WHERE shard = ? AND hour = ?"
        " AND expires = ? AND qid = ? AND bucket = ? AND wid = ?",
        "x_delete_upto": f"DELETE FROM {msgs}.expiry WHERE shard = ? AND hour = ?"
        " AND (expires, qid, bucket, wid) <= (?, ?, ?, ?)",
        "x_drop": f"DELETE FROM {msgs}.expiry WHERE shard = ? AND hour = ?",
        "h_insert": f"INSERT INTO {msgs}.expiry_hours (shard, hour) VALUES (?, ?)",
        "h_read": f"SELECT hour FROM {msgs}.expiry_hours WHERE shard = ? AND hour <= ?",
        "h_delete": f"DELETE FROM {msgs}.expiry_hours WHERE shard = ? AND hour = ?",
        "ch_insert": f"INSERT INTO {msgs}.changes (bucket, app, name, at) VALUES (?, ?, ?, ?)",
        "ch_read": f"SELECT bucket, app, name, at FROM {msgs}.changes WHERE bucket IN ? LIMIT ?",
        "ping": "SELECT release_version FROM system.local",
    }
    # Reads of one queue partition of a bucket: (descending, cursor kind) -> statement, where
    # the kind is None (no cursor), True (inclusive) or False (exclusive). Claim candidates
    # (available messages) of one queue partition of a bucket: by cursor kind, ascending.
    for descending in (False, True):
        order = " ORDER BY part DESC, ticks DESC, sfx DESC" if descending else ""
        for kind in (None, True, False):
            statements[f"r_{descending}_{kind}"] = (
                f"SELECT {read_columns} FROM {msgs}.messages"
                f" WHERE qid = ? AND bucket = ? AND part = ?{_after(kind, descending)}"
                f" AND expires > ? AND due <= ?{order} LIMIT ? ALLOW FILTERING"
            )
    for kind in (None, True, False):
        statements[f"c_scan_{kind}"] = (
            f"SELECT {CLAIM_COLUMNS} FROM {msgs}.messages"
            f" WHERE qid = ? AND bucket = ? AND part = ?{_after(kind, False)}"
            " AND expires > ? AND due <= ? AND cexp <= ? LIMIT ? ALLOW FILTERING"
        )
    return statements


def _after(kind: bool | None, descending: bool) -> str:
    if kind is None:
        return ""
    op = ("<" if descending else ">") + ("=" if kind else "")
    return f" AND (ticks, sfx) {op} (?, ?)"


# Conditional statements (lightweight transactions): the driver must never send one again by
# itself, as a second attempt is not the same statement.
NOT_IDEMPOTENT = frozenset(
    {
        "q_create", "q_update", "q_delete", "q_end", "c_claim", "c_take", "c_ack", "c_extend",
        "c_unclaim", "c_moved",
        "fl_create", "fl_move", "dd_insert", "dd_take", "dd_confirm", "dd_release",
    }
)  # fmt: skip


def create(session: Any, settings: CassandraSettings, keyspaces: dict[str, str]) -> None:
    """Create the keyspaces and tables (``keyspaces``: ``meta`` and ``msgs`` to their quoted
    names), add the work-queue columns to tables created without them, and fill the table of
    dead-letter senders when it is new to an existing keyspace."""
    meta = keyspaces["meta"]
    had_senders = bool(
        session.execute(
            "SELECT table_name FROM system_schema.tables"
            " WHERE keyspace_name = %s AND table_name = %s",
            (meta.strip('"'), SENDERS),
        ).all()
    )
    for cql in tables(settings, meta, keyspaces["msgs"]):
        session.execute(cql, timeout=60)
    for (keyspace, table), columns in ADDED_COLUMNS.items():
        quoted = keyspaces[keyspace]
        rows = session.execute(
            "SELECT column_name FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = %s",
            (quoted.strip('"'), table),
        )
        present = {row[0] for row in rows}
        for name, kind in columns:
            if name not in present:
                session.execute(f"ALTER TABLE {quoted}.{table} ADD {name} {kind}", timeout=60)
    if not had_senders:
        fill_senders(session, meta)


def fill_senders(session: Any, meta: str) -> None:
    """Record the dead-letter queue of every queue made before the senders' table (one walk
    of the queues, once)."""
    from cassandra.query import SimpleStatement

    walk = SimpleStatement(
        f"SELECT app, name, dead_letter_queue FROM {meta}.queues", fetch_size=1000
    )
    insert = session.prepare(
        f"INSERT INTO {meta}.{SENDERS} (app, dlq, name, seen) VALUES (?, ?, ?, true)"
    )
    for app, name, dlq in session.execute(walk, timeout=60):
        if dlq:
            session.execute(insert, (app, dlq, name), timeout=60)
