"""CassandraStorage: Apache Cassandra 5 through the ``cassandra-driver`` (native protocol v5).

Keyspaces (``database`` of ``[storage]`` and of ``[metadata]``, by default ``MessageStore`` and
``MetadataStore``) and tables, created at :meth:`open` when ``create_schema`` is on:

Metadata keyspace

* ``queues``, PRIMARY KEY ``((app, name))``: one row per queue, found by point lookups only.
  Creation is a lightweight transaction (``INSERT ... IF NOT EXISTS``), so of two servers
  creating one name exactly one wins; the new queue's ``qid`` is a random 63-bit number, never
  seen before in practice. Updates are conditional on the qid and on the stored partitions
  (``IF qid = ? AND partitions <= ?``), so partitions never shrink even under concurrent
  updates; deletes are conditional on the qid. The row holds every setting, the work-queue
  ones included (``delivery``, ``claim_ttl``, ``max_deliveries``, ``dead_letter_queue``,
  ``delay``, ``dedup_window``, ``policy``, ``paused``).
* ``queue_names``, PRIMARY KEY ``((app, shard), name)``: the listing. ``shard`` is the CRC-32 of
  the name modulo ``NAME_SHARDS`` (16), so millions of queues of one application are spread
  over 16 partitions instead of one huge one. A page (names ``>= offset``, sorted) is 16
  concurrent slices ``name >= offset LIMIT limit`` merged in order: the cost is the same at any
  offset (16 small slices, at most 16 x limit names read for limit returned), the price of an
  order that hash-spread shards do not keep by themselves. ``offset`` is the cursor, stable
  under concurrent creations and deletions. A listing row is written together with the
  creating transaction and deleted after the deleting one, so an existing queue is always
  listed; a failure between the two steps can leave a name listed without a queue, which
  :meth:`list_queues` leaves out.
* ``dead_queues``, PRIMARY KEY ``((shard), qid)``: deleted queues whose messages the sweep has
  yet to reclaim.

Message keyspace

* ``messages``, PRIMARY KEY ``((qid, bucket), part, ticks, sfx)``: time-bucketed partitions.
  ``bucket`` is ``ticks >> 32`` (the id's ``time_mid`` and ``time_hi``: a new bucket every
  2^32 x 100 ns, about 7 minutes), so a queue's partitions stay small however long it lives.
  Rows are clustered by the message's TimeUUID stored as its two halves, ``ticks`` and
  ``sfx`` (see :mod:`queuey.storage.keys`): Cassandra's ``timeuuid`` comparator orders the
  ids of one tick by their low half as signed bytes, which is not Queuey's (ticks, id) order.
  Every queue partition (``part``) of a bucket lives in the same Cassandra partition, so one
  write call within a bucket is a single-partition batch: atomic and isolated. A write that
  spans several queue partitions also sets the static column ``mark``; a read of several
  queue partitions reads ``mark`` before and after its per-partition slices and reads again if
  it changed (up to 4 times), so it sees all of such a write or none of it. The price: a
  queue's partitions do not spread its load over the cluster within a bucket (its buckets do,
  over time), and a bucket partition holds ~7 minutes of the queue's messages. Each row
  carries ``expires`` (epoch ms) and is written ``USING TTL``: Cassandra drops it by itself
  shortly after it expires. Time-window compaction (1-hour windows) then drops whole SSTables
  of expired messages without compacting them. Reads filter on ``expires > now`` and ``due <=
  now`` (the time the caller passes), so the service's clock, not Cassandra's, decides what is
  live; TTLs only reclaim space (they are sized with the wall clock too, see :func:`ttl_until`).
  Work-queue columns, always written (0 for a new message), so that conditions and filters
  never meet null: ``due`` (when a delayed message falls due), ``dlv`` (deliveries), ``ctok``
  (token of the last claim; negative while the message is being dead-lettered) and ``cexp``
  (when that claim's lease ends; the largest bigint while dead-lettered). A claim's cells are
  written with a TTL that lasts as long as the message, so they never outlive it by more than
  seconds; a row left with only those cells has no ``expires`` and is never live.
* ``buckets``, PRIMARY KEY ``((qid), bucket)``: the buckets a queue has written, so reads walk
  only buckets that hold messages (never empty partitions, never tombstones of earlier ones).
  Each server process writes a bucket's row once (it remembers the ones it wrote).
* ``expiry``, PRIMARY KEY ``((shard, hour), expires, qid, bucket, wid)``: for each group of
  messages of one write that expire together, where they are (``keys``). The sweep reads it
  from the oldest hour up to now and deletes the listed messages that are still there and
  expired; then it deletes the index rows it is done with by one range deletion, and whole
  hours once past. Its rows have a TTL two seconds *shorter* than their messages' (at least
  ``MIN_TTL``): in production Cassandra removes the messages and their index rows by itself
  and the sweep finds nothing to do but messages whose TTL was under a minute, messages made
  dead by a PUT, and deleted queues. ``expiry_hours``, PRIMARY KEY ``((shard), hour)``, lists
  the hours that have index rows. A claim adds rows of its own (``ctok`` the claim's token,
  ``app`` and ``name`` its queue, ``expires`` the lease end): the sweep finds ended leases
  there without any claim call on the queue, dead-letters the messages that are exhausted and
  forgets the others (one unit each); a row whose message was acknowledged, claimed again or
  extended since is dropped for nothing. When the sweep's budget ends within a row, the row
  keeps the keys it has left.
* ``wakeups``, PRIMARY KEY ``((qid), at)``: when a delayed message falls due or a lease ends,
  per queue (:meth:`next_change_ms` is its first row after now). Rows are never deleted one by
  one (their TTL ends soon after ``at``); leases of acknowledged claims stay listed, so a
  long-polling waiter may wake for nothing, never too late.
* ``dead_letters``, PRIMARY KEY ``((qid), bucket, part, ticks, sfx)``: one row per message the
  queue dead-lettered, so the count (``COUNT(*)`` of the queue's partition) is exact even when
  a move is done again: a counter column would count a retried move twice.
* ``moves``, PRIMARY KEY ``((shard), qid, bucket, part, ticks, sfx, mtok)``: dead-letter moves
  in progress, each under its mover's token (see Dead letters).
* ``dedup``, PRIMARY KEY ``((qid, did))``: a dedup id's message (``part``, ``ticks``,
  ``sfx``), until when it counts (``until``, by the caller's clock), whether that message is
  stored (``stored``) and since when the id is taken (``since``); TTL only reclaims space.
* ``floors``, PRIMARY KEY ``((qid), part)``: each queue partition's claim floor (see Claims)
  and its version ``touched``.

Claims. A claim walks the queue's buckets in order from the partitions' claim floors, reads
the available messages of each partition (``expires > now AND due <= now AND cexp <= now``,
filtered by Cassandra) and merges them oldest (ticks, id) first. It takes them with
lightweight transactions conditional on the claim columns it read: ``UPDATE ... USING TTL
<the message's> SET ctok = <token>, cexp = <lease end>, dlv = <read> + 1 IF expires = <read> AND
ctok = <read> AND cexp = <read>`` (with at-most-once delivery, the same condition on a
``DELETE``). A condition that fails means another claim took the message: the claim moves on
to the next one. Acks are ``DELETE ... IF ctok = <token> AND cexp > now``, extensions
``UPDATE ... SET cexp = ? IF ctok = <token> AND cexp > now`` (after a read, for the TTL), so a
claim that is no longer current changes nothing. Transactions on one Cassandra partition
serialize on it (Paxos), so a process never sends several at once for one partition: whatever
its claims, acks, extensions and moves have waiting is sent as one conditional batch (one
Paxos round); a batch that fails answers False for the statements whose conditions failed and
is sent again without them. When a transaction's outcome is unknown (a timeout), the next
attempt settles it: its Paxos round completes the earlier one, and the values it answers with
show whether that one was applied (an at-most-once claim is then counted as not made: the
message is lost, as at-most-once allows). Claim reads use the queue's read level; the
transactions SERIAL (LOCAL_SERIAL) and the queue's write level for their commit.

Claim floors. Acknowledged messages leave tombstones, and a claim reading from a bucket's first
row would read through all of them (measured on one node: 10,000 before the first available
message add 20 ms to a claim, 50,000 add 200 ms, 100,000 1.5 s; with its default
``tombstone_failure_threshold`` Cassandra refuses a read that meets more than 100,000). Each
queue partition has a floor: no row below it is, or can become, available. Claims start there;
each process reads the floors at most every FLOOR_REFRESH_S and then moves them up past what is
gone, expired or being dead-lettered (never past a claimed or delayed message, nor past
FLOOR_MARGIN_MS before now, as messages stamped since may still be on their way), with a
transaction conditional on the floor's ``touched`` version. Writes of messages that may land
below a floor lower it after they are stored (and change ``touched``, so a raise from a scan
that missed them fails): PUTs, dead-letter copies (they keep their old ids), writes slower than
FLOOR_SLOW_S, and writes below this process's floor. A new process starts at the shared floors.
With floors, a claim costs the same (5 ms on one node) with 100,000 acknowledged messages
before it. A message held by a long claim stops the floor until it is acknowledged or its lease
ends: claims read past the tombstones after it meanwhile.

Dead letters, exactly once across servers and crashes. A mover records the move in ``moves``
(its token, the target queue and partition), then wins it with a transaction on the source
row (``ctok`` = minus its token, ``cexp`` = forever: no claim takes it), writes the copy to the
dead-letter queue and its ``dead_letters`` row in one logged batch (both or neither; no copy
when the dead-letter queue holds that id already), lowers the target's claim floor, deletes
the source (conditional on its token) and then its ``moves`` row. A mover that lost the race
deletes its own ``moves`` row. The sweep finishes moves recorded more than MOVE_GRACE_MS ago
whose source row still carries their token: copy and count unless the count row shows they
were made (so a copy consumed meanwhile is not made again), then the deletes.

Deduplicated posts. The dedup row is taken (``INSERT ... IF NOT EXISTS``, or a transaction
over a row whose window ended, conditional on what was read) before the messages are written,
and marked ``stored`` after; a post that fails gives its ids back. A post that finds an id
taken answers "duplicate" only when the message is marked stored or found stored: never with
a message that was not stored. An id taken by a post still writing is waited for (about two
seconds, then 503); one taken more than DEDUP_STALE_MS ago by a post that stored nothing is
taken over. The window is measured on the caller's clock (``until``), never on Cassandra TTLs;
rows past their window are left to their TTL (the sweep has nothing to forget).

Change notification: Cassandra has no cheap signal of another server's writes, so
:meth:`data_version` changes every 50 ms (long-polling waiters look again at that pace:
measured 6-51 ms, median 25 ms, from a post through another server to the answer) and at once
after this process's writes.

Every write and read also looks up the queue row, so nothing is written to, and nothing read
from, a queue that another server deleted (its ``qid`` is gone); a write that must not
replace (``replace=False``) first reads which of its ids are stored. A write is then one
batch request: its messages with their bucket and expiry-index rows.

Consistency (per queue, as the original): ``weak`` reads and writes at ONE; ``strong`` at
QUORUM (LOCAL_QUORUM with ``multi_dc``); ``very_strong`` at QUORUM (EACH_QUORUM with
``multi_dc``). Queue metadata is read and written at QUORUM (LOCAL_QUORUM), lightweight
transactions with SERIAL (LOCAL_SERIAL); when no quorum answers, a ``weak`` queue is still
served from one replica. Every driver failure (unavailable replicas, timeouts, no host, a
value that cannot be encoded) becomes :class:`StorageUnavailable` in one place (``_submit``
and ``_reject``). Statements other than lightweight transactions are idempotent, so the driver
sends them again to another node when one dies mid-request. The tables double a read that a
replica has not answered within 50 ms and do no blocking read repair (see ``_schema``), so a
node that died holds no request up while gossip has yet to declare it down.

Async: the driver's event loop (libev) runs in its own thread; ``execute_async`` callbacks
resolve asyncio futures with ``call_soon_threadsafe``. Statements are prepared once at open.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import secrets
import time
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from queuey.config import CassandraSettings
from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound, StorageUnavailable
from queuey.core.ids import UUID_EPOCH_OFFSET, ticks_from_ns, ticks_of, uuid1_hex
from queuey.core.models import (
    Claim,
    ClaimRef,
    Cursor,
    Message,
    Queue,
    QueueSettings,
    QueueStats,
)
from queuey.storage.keys import SFX_MIN, SFX_OFFSET, cursor_position, sfx_of

log = logging.getLogger("queuey.cassandra")

NAME_SHARDS = 16  # partitions of an application's queue listing
INDEX_SHARDS = 4  # partitions of each hour of the expiry index (and of pending moves)
DEAD_SHARDS = 4
MIN_TTL = 60  # seconds: Cassandra keeps even a message dead on arrival this long
MAX_TTL = 630_720_000  # Cassandra's largest TTL (20 years)
HOUR_MS = 3_600_000
BUCKET_PAGE = 32  # buckets asked for at once when a read walks a queue's buckets
INDEX_PAGE = 100  # expiry index rows, and message keys of one row, handled at once
MOVING_CEXP = (1 << 63) - 1  # the lease end of a message being dead-lettered: never available
CAS_BATCH = 100  # conditional statements of one Cassandra partition run as one batch
CAS_TRIES = 4  # attempts of one conditional statement (lost races, unknown outcomes)
MOVE_GRACE_MS = 60_000  # a dead-letter move still pending after this is completed by the sweep
DEDUP_STALE_MS = 60_000  # a dedup id claimed by a post that stored nothing for this long is free
DEDUP_POLL_S = 0.05
DEDUP_TRIES = 40  # about two seconds of waiting for another post of the same dedup id
FLOOR_MARGIN_MS = 2_000  # claim scans never skip messages stamped within this of now
FLOOR_REFRESH_S = 1.0  # how often a process reads (and tries to raise) a claim floor
FLOOR_SLOW_S = 0.5  # a write that took longer lowers the claim floors below its messages
FLOOR_TRIES = 8
FLOOR_SCAN = 64  # rows one floor query looks at
FLOOR_BUCKETS = 4  # buckets one floor refresh walks at most
TAKEN_S = 1.0  # how long a process passes over rows it just claimed when they show up again
_TICKS_PER_MS = 10_000
_MARK_RETRIES = 4
_NAMED = "named"  # the execution profile whose rows are dicts (conditional statements)

_Row = tuple[Any, ...]
_Key = tuple[int, int, int]  # (part, ticks, sfx)
_BOTTOM = (-(1 << 63), SFX_MIN)  # a claim floor below every message
_Named = dict[str, Any]

# Read CL, write CL for (consistency, multi_dc).
_LEVELS = {
    ("weak", False): ("ONE", "ONE"),
    ("weak", True): ("ONE", "ONE"),
    ("strong", False): ("QUORUM", "QUORUM"),
    ("strong", True): ("LOCAL_QUORUM", "LOCAL_QUORUM"),
    ("very_strong", False): ("QUORUM", "QUORUM"),
    ("very_strong", True): ("EACH_QUORUM", "EACH_QUORUM"),
}


def _ticks_ms(ticks: int) -> int:
    return (ticks - UUID_EPOCH_OFFSET) // _TICKS_PER_MS


def ttl_until(at_ms: int, since_ms: int) -> int:
    """Cassandra TTL (s) of a cell that must last until ``at_ms`` (epoch ms), written at
    ``since_ms`` by the caller's clock. Cassandra counts TTLs on its own wall clock, so the
    time left is counted from the earlier of ``since_ms`` and the wall clock (a caller's clock
    ahead of the wall, like a delayed message's own time, never shortens it), with room for
    whole-second rounding. Only space depends on it: what is live is decided by the times
    stored in the rows."""
    start = min(since_ms, time.time_ns() // 1_000_000)
    seconds = math.ceil((at_ms - start) / 1000) + 2
    return min(max(seconds, MIN_TTL), MAX_TTL)


def message_ttl(expires_ms: int, ticks: int) -> int:
    """Cassandra TTL (s) of a message row: past its expiry, counted from the message's own
    time (or the wall clock, when that is earlier)."""
    return ttl_until(expires_ms, _ticks_ms(ticks))


def index_ttl(expires_ms: int, ticks: int) -> int:
    """Cassandra TTL (s) of an expiry index row: gone before its messages expire, unless they
    live less than about a minute, so the sweep leaves messages to Cassandra's own TTL."""
    seconds = (expires_ms - _ticks_ms(ticks)) // 1000 - 2
    return min(max(seconds, MIN_TTL), MAX_TTL)


def name_shard(name: str) -> int:
    return zlib.crc32(name.encode()) % NAME_SHARDS


def _message(
    part: int,
    ticks: int,
    sfx: int,
    body: str,
    ctype: str,
    expires: int,
    due: int | None = 0,
    dlv: int | None = 0,
) -> Message:
    message_id = uuid1_hex(ticks, f"{sfx + SFX_OFFSET:016x}")
    return Message(message_id, ticks, part, body, ctype, expires, due or 0, dlv or 0)


def _unavailable(exc: BaseException, what: str = "") -> StorageUnavailable:
    during = f" ({what})" if what else ""
    error = StorageUnavailable(f"Back-end storage unavailable{during}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _replication(settings: CassandraSettings) -> str:
    if settings.replication:
        factors = ", ".join(f"'{dc}': {n}" for dc, n in settings.replication)
        return f"{{'class': 'NetworkTopologyStrategy', {factors}}}"
    if settings.local_dc:
        return (
            f"{{'class': 'NetworkTopologyStrategy', "
            f"'{settings.local_dc}': {settings.replication_factor}}}"
        )
    return f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.replication_factor}}}"


# Columns added by the work-queue contract, per (keyspace, table): ALTER TABLE adds them to
# tables created before (their rows are not rewritten).
_ADDED_COLUMNS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("meta", "queues"): (
        ("delivery", "text"),
        ("claim_ttl", "int"),
        ("max_deliveries", "int"),
        ("dead_letter_queue", "text"),
        ("delay", "int"),
        ("dedup_window", "int"),
        ("policy", "text"),
        ("paused", "boolean"),
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
    return "".join(f", {name} {kind}" for name, kind in _ADDED_COLUMNS[keyspace, table])


def _schema(settings: CassandraSettings, meta: str, msgs: str) -> list[str]:
    replication = _replication(settings)
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
        f"CREATE KEYSPACE IF NOT EXISTS {meta} WITH replication = {replication}",
        f"CREATE KEYSPACE IF NOT EXISTS {msgs} WITH replication = {replication}",
        f"""CREATE TABLE IF NOT EXISTS {meta}.queues (
            app text, name text, qid bigint, partitions int, type text, consistency text,
            principles frozen<list<text>>, created double{_added("meta", "queues")},
            PRIMARY KEY ((app, name))) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {meta}.queue_names (
            app text, shard int, name text, PRIMARY KEY ((app, shard), name))
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
    ]


_SETTINGS_COLUMNS = (
    "partitions, type, consistency, principles, delivery, claim_ttl, max_deliveries,"
    " dead_letter_queue, delay, dedup_window, policy, paused"
)
# A message row to the claim code: its key, everything a claim returns, and the claim state.
_CLAIM_COLUMNS = "part, ticks, sfx, body, ctype, expires, due, dlv, ctok, cexp"
_WHERE_KEY = "qid = ? AND bucket = ? AND part = ? AND ticks = ? AND sfx = ?"
_IN_KEYS = "qid = ? AND bucket = ? AND (part, ticks, sfx) IN ?"


def _statements(meta: str, msgs: str) -> dict[str, str]:
    read_columns = "ticks, sfx, body, ctype, expires, due, dlv"
    settings_marks = ", ".join("?" * 12)
    statements = {
        "q_get": f"SELECT qid, created, {_SETTINGS_COLUMNS}"
        f" FROM {meta}.queues WHERE app = ? AND name = ?",
        "q_create": f"INSERT INTO {meta}.queues (app, name, qid, created, {_SETTINGS_COLUMNS})"
        f" VALUES (?, ?, ?, ?, {settings_marks}) IF NOT EXISTS",
        "q_update": f"UPDATE {meta}.queues SET partitions = ?, type = ?, consistency = ?,"
        " principles = ?, delivery = ?, claim_ttl = ?, max_deliveries = ?,"
        " dead_letter_queue = ?, delay = ?, dedup_window = ?, policy = ?, paused = ?"
        " WHERE app = ? AND name = ? IF qid = ? AND partitions <= ?",
        "q_delete": f"DELETE FROM {meta}.queues WHERE app = ? AND name = ? IF qid = ?",
        "n_insert": f"INSERT INTO {meta}.queue_names (app, shard, name) VALUES (?, ?, ?)",
        "n_delete": f"DELETE FROM {meta}.queue_names WHERE app = ? AND shard = ? AND name = ?",
        "n_list": f"SELECT name FROM {meta}.queue_names"
        " WHERE app = ? AND shard = ? AND name >= ? LIMIT ?",
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
        "m_rows": f"SELECT {_CLAIM_COLUMNS} FROM {msgs}.messages WHERE {_IN_KEYS}",
        "m_count": f"SELECT COUNT(*) FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due <= ? ALLOW FILTERING",
        "m_delete": f"DELETE FROM {msgs}.messages WHERE {_WHERE_KEY}",
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
        "c_moved": f"DELETE FROM {msgs}.messages WHERE {_WHERE_KEY} IF ctok = ?",
        "f_scan": f"SELECT ticks, sfx, expires, ctok FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND part = ? AND (ticks, sfx) >= (?, ?) LIMIT ?",
        "s_available": f"SELECT COUNT(*), MIN(ticks), MAX(ticks) FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due <= ? AND cexp <= ?"
        " ALLOW FILTERING",
        "s_claimed": f"SELECT COUNT(*), MIN(ticks), MAX(ticks) FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? AND due <= ? AND cexp > ?"
        " ALLOW FILTERING",
        "s_delayed": f"SELECT COUNT(*) FROM {msgs}.messages"
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
            f"SELECT {_CLAIM_COLUMNS} FROM {msgs}.messages"
            f" WHERE qid = ? AND bucket = ? AND part = ?{_after(kind, False)}"
            " AND expires > ? AND due <= ? AND cexp <= ? LIMIT ? ALLOW FILTERING"
        )
    return statements


def _after(kind: bool | None, descending: bool) -> str:
    if kind is None:
        return ""
    op = ("<" if descending else ">") + ("=" if kind else "")
    return f" AND (ticks, sfx) {op} (?, ?)"


@dataclass(eq=False)
class _Op:
    """One conditional statement on one message row, run by its partition's combiner.

    ``holds`` says whether the statement's condition holds for the row's current values (None:
    no row); ``applied`` whether those values show the statement took effect (asked when an
    earlier attempt's outcome is unknown)."""

    key: _Key
    statement: str
    params: tuple[Any, ...]
    holds: Callable[[_Named | None], bool]
    applied: Callable[[_Named | None], bool]
    future: asyncio.Future[bool]
    tries: int = 0
    unsure: bool = False


@dataclass(eq=False)
class _Move:
    """A dead-letter move of one message: ``token`` marks the source row as this move's."""

    qid: int
    bucket: int
    row: _Row  # the source row (_CLAIM_COLUMNS) as last seen
    token: int
    target: int  # the dead-letter queue's qid, 0 without one
    tpart: int

    @property
    def key(self) -> _Key:
        return (self.row[0], self.row[1], self.row[2])


@dataclass(eq=False)
class _ClaimJob:
    """One claim call in progress."""

    queue: Queue
    token: int
    now_ms: int
    cexp: int
    need: int
    remove: bool
    read_level: str
    write_level: str
    claims: list[Claim]
    leased: dict[int, list[tuple[_Key, int]]]  # bucket -> (key, expires) claimed
    moves: list[_Move]


@dataclass(eq=False)
class _Floor:
    """This process's copy of a queue partition's claim floor (its ``floors`` row): where
    claim scans start, as no row below ``position`` can become available."""

    position: tuple[int, int] | None  # None: no floor yet, scans start at the first bucket
    touched: uuid.UUID | None  # the row's version (None: no row)
    checked: float  # event-loop time it was read or set


class CassandraStorage:
    name = "cassandra"
    shared = True

    def __init__(self, settings: CassandraSettings, metadata_keyspace: str = "MetadataStore"):
        self.settings = settings
        self.nodes = 1
        self.base_delay = settings.base_delay
        self._meta = f'"{metadata_keyspace}"'
        self._msgs = f'"{settings.keyspace}"'
        self._keyspaces = {"meta": metadata_keyspace, "msgs": settings.keyspace}
        self._cluster: Any = None
        self._session: Any = None
        self._prepared: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._levels: dict[str, Any] = {}
        self._known_buckets: set[tuple[int, int]] = set()
        self._known_hours: set[tuple[int, int]] = set()
        # Conditional statements waiting for their partition's combiner: (qid, bucket) -> ops.
        self._pending: dict[tuple[int, int], list[_Op]] = {}
        self._runners: set[asyncio.Task[None]] = set()
        # Rows this process's claims are trying to take right now, per qid; and the ones they
        # took lately (lease end, event-loop time), which a claim's candidates read before may
        # still show as available: passed over rather than failing a conditional batch.
        self._inflight: dict[int, set[_Key]] = {}
        self._taken: dict[int, dict[_Key, tuple[int, float]]] = {}
        self._floors: dict[tuple[int, int], _Floor] = {}
        self._changes = 0  # writes this process made (data_version)

    # --- life cycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._connect)
        except StorageUnavailable:
            raise
        except Exception as exc:
            await self.close()
            raise _unavailable(exc) from exc

    def _connect(self) -> None:
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.connection import DefaultEndPoint
        from cassandra.io.libevreactor import LibevConnection
        from cassandra.policies import (
            DCAwareRoundRobinPolicy,
            ExponentialReconnectionPolicy,
            TokenAwarePolicy,
        )
        from cassandra.query import dict_factory, tuple_factory

        from cassandra import ConsistencyLevel

        settings = self.settings

        def profile(row_factory: Callable[..., Any]) -> Any:
            return ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(
                    DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
                ),
                request_timeout=settings.request_timeout,
                row_factory=row_factory,
                consistency_level=ConsistencyLevel.LOCAL_QUORUM
                if settings.multi_dc
                else ConsistencyLevel.QUORUM,
                serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL
                if settings.multi_dc
                else ConsistencyLevel.SERIAL,
            )

        auth = None
        if settings.username is not None and settings.password is not None:
            auth = PlainTextAuthProvider(username=settings.username, password=settings.password)
        self._cluster = Cluster(
            contact_points=[DefaultEndPoint(host, port) for host, port in settings.hosts],
            connection_class=LibevConnection,
            execution_profiles={
                EXEC_PROFILE_DEFAULT: profile(tuple_factory),
                _NAMED: profile(dict_factory),
            },
            auth_provider=auth,
            connect_timeout=settings.connect_timeout,
            control_connection_timeout=settings.connect_timeout,
            max_schema_agreement_wait=30,
            reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=10.0),
        )
        session = self._cluster.connect()
        session.default_fetch_size = None  # every query is bounded by LIMIT: no paging
        self._session = session
        if settings.create_schema:
            for cql in _schema(settings, self._meta, self._msgs):
                session.execute(cql, timeout=60)
            self._add_columns(session)
        self._prepared = {
            key: session.prepare(cql) for key, cql in _statements(self._meta, self._msgs).items()
        }
        for key, prepared in self._prepared.items():
            # Safe to send again to another node when one dies mid-request (the driver does
            # not retry otherwise); lightweight transactions are not.
            prepared.is_idempotent = key not in _NOT_IDEMPOTENT
        self._levels = {name: getattr(ConsistencyLevel, name) for name in _LEVEL_NAMES}
        self.nodes = max(1, len(self._cluster.metadata.all_hosts()))

    def _add_columns(self, session: Any) -> None:
        """Add the work-queue columns to tables created without them."""
        for (keyspace, table), columns in _ADDED_COLUMNS.items():
            rows = session.execute(
                "SELECT column_name FROM system_schema.columns"
                " WHERE keyspace_name = %s AND table_name = %s",
                (self._keyspaces[keyspace], table),
            )
            present = {row[0] for row in rows}
            quoted = self._meta if keyspace == "meta" else self._msgs
            for name, kind in columns:
                if name not in present:
                    session.execute(f"ALTER TABLE {quoted}.{table} ADD {name} {kind}", timeout=60)

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    async def ping(self) -> None:
        await self._execute("ping", (), "ONE")

    # --- running statements ------------------------------------------------------------------

    def _bind(self, key: str, params: Sequence[Any], level: str | None) -> Any:
        bound = self._prepared[key].bind(params)
        if level is not None:
            bound.consistency_level = self._levels[level]
        return bound

    def _execute(
        self, key: str, params: Sequence[Any], level: str | None = None
    ) -> asyncio.Future[list[_Row]]:
        """Run a prepared statement; the future's result is its rows (StorageUnavailable on
        any failure)."""
        return self._submit(lambda: self._bind(key, params, level), key)

    def _named(
        self, key: str, params: Sequence[Any], level: str | None = None
    ) -> asyncio.Future[list[_Named]]:
        """:meth:`_execute` with rows as dicts (conditional statements answer with columns
        that depend on the outcome)."""
        return self._submit(lambda: self._bind(key, params, level), key, named=True)

    def _batch(
        self, statements: list[tuple[str, Sequence[Any]]], level: str, logged: bool
    ) -> asyncio.Future[list[_Row]]:
        if len(statements) == 1:
            key, params = statements[0]
            return self._execute(key, params, level)
        return self._submit(lambda: self._build_batch(statements, level, logged), "batch")

    def _build_batch(
        self,
        statements: list[tuple[str, Sequence[Any]]],
        level: str,
        logged: bool,
        idempotent: bool = True,
    ) -> Any:
        from cassandra.query import BatchStatement, BatchType

        kind = BatchType.LOGGED if logged else BatchType.UNLOGGED
        batch = BatchStatement(batch_type=kind, consistency_level=self._levels[level])
        batch.is_idempotent = idempotent  # plain rows with fixed keys and values; not CAS
        for key, params in statements:
            batch.add(self._prepared[key], params)
        return batch

    def _submit(
        self, build: Callable[[], Any], what: str = "", named: bool = False
    ) -> asyncio.Future[Any]:
        loop = self._loop
        if loop is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is not open.")
        future: asyncio.Future[Any] = loop.create_future()
        session = self._session
        if session is None:
            future.set_exception(StorageUnavailable("Back-end storage unavailable: closed."))
            return future
        try:
            if named:
                response = session.execute_async(build(), execution_profile=_NAMED)
            else:
                response = session.execute_async(build())
        except Exception as exc:  # a value the driver cannot encode, no connection...
            future.set_exception(_unavailable(exc, what))
            return future

        def done(rows: Any) -> None:
            loop.call_soon_threadsafe(_resolve, future, list(rows or ()))

        def failed(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_reject, future, exc, what)

        response.add_callbacks(done, failed)
        return future

    def _levels_of(self, queue: Queue) -> tuple[str, str]:
        key = (queue.settings.consistency, self.settings.multi_dc)
        return _LEVELS.get(key, _LEVELS["strong", self.settings.multi_dc])

    @property
    def _meta_level(self) -> str:
        return "LOCAL_QUORUM" if self.settings.multi_dc else "QUORUM"

    # --- queues ------------------------------------------------------------------------------

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        qid = secrets.randbits(63) or 1
        params = (app, name, qid, now, *_settings_row(settings))
        # The listing row goes with the transaction, not after it: a name of this app is then
        # listed whenever its queue exists (at worst a failed creation leaves a listed name
        # without a queue, which list_queues leaves out).
        listed = self._execute("n_insert", (app, name_shard(name), name), self._meta_level)
        try:
            rows, _ = await asyncio.gather(
                self._execute("q_create", params, self._meta_level), listed
            )
            applied = bool(rows and rows[0][0])
        except StorageUnavailable as error:
            if not _is_cas_timeout(error):
                raise
            # The outcome is unknown: a serial read says whether this creation won.
            found = await self._execute("q_get", (app, name), self._serial_level)
            if not found:
                raise
            applied = found[0][0] == qid
        if not applied:
            raise QueueExists()
        return Queue(app=app, name=name, qid=qid, created=now, settings=settings)

    @property
    def _serial_level(self) -> str:
        return "LOCAL_SERIAL" if self.settings.multi_dc else "SERIAL"

    async def get_queue(self, app: str, name: str) -> Queue | None:
        try:
            rows = await self._execute("q_get", (app, name), self._meta_level)
        except StorageUnavailable as error:
            if not _too_few_replicas(error):
                raise  # a timeout: the request has had its time
            # No quorum alive: a weak queue may still be served by one replica.
            rows = await self._execute("q_get", (app, name), "ONE")
            if not rows or rows[0][4] != "weak":
                raise
        return _queue_of(app, name, rows[0]) if rows else None

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        for _ in range(16):
            current = await self.get_queue(app, name)
            if current is None:
                raise QueueNotFound()
            if settings.partitions < current.partitions:
                raise InvalidUpdate()
            params = (*_settings_row(settings), app, name, current.qid, settings.partitions)
            rows = await self._execute("q_update", params, self._meta_level)
            if rows and rows[0][0]:
                return Queue(
                    app=app, name=name, qid=current.qid, created=current.created,
                    settings=settings,
                )  # fmt: skip
        raise StorageUnavailable("Back-end storage unavailable: the queue keeps changing.")

    async def delete_queue(self, app: str, name: str) -> bool:
        for _ in range(16):
            current = await self.get_queue(app, name)
            if current is None:
                return False
            rows = await self._execute("q_delete", (app, name, current.qid), self._meta_level)
            if rows and rows[0][0]:
                await asyncio.gather(
                    self._execute("n_delete", (app, name_shard(name), name), self._meta_level),
                    self._execute(
                        "d_insert", (current.qid % DEAD_SHARDS, current.qid), self._meta_level
                    ),
                )
                self._changes += 1
                return True
        raise StorageUnavailable("Back-end storage unavailable: the queue keeps changing.")

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        names = await self.list_queue_names(app, offset, limit)
        queues = await asyncio.gather(*(self.get_queue(app, name) for name in names))
        return [queue for queue in queues if queue is not None]

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        start = offset or ""
        slices = await asyncio.gather(
            *(
                self._execute("n_list", (app, shard, start, limit), self._meta_level)
                for shard in range(NAME_SHARDS)
            )
        )
        merged = heapq.merge(*([row[0] for row in rows] for rows in slices))
        return [name for name, _ in zip(merged, range(limit), strict=False)]

    async def _alive(self, queue: Queue, level: str) -> bool:
        """Whether ``queue`` (this incarnation: its qid) still exists."""
        return await self._current(queue, level) is not None

    async def _current(self, queue: Queue, level: str) -> Queue | None:
        """``queue`` with its current settings, or None if this incarnation is gone."""
        rows = await self._execute("q_get", (queue.app, queue.name), level)
        if not rows or rows[0][0] != queue.qid:
            return None
        return _queue_of(queue.app, queue.name, rows[0])

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        level = self._levels_of(queue)[0]
        alive, buckets = await asyncio.gather(
            self._alive(queue, level), self._execute("b_all", (queue.qid,), level)
        )
        if not alive:
            return 0
        counts = await asyncio.gather(
            *(self._execute("m_count", (queue.qid, b, now_ms, now_ms), level) for (b,) in buckets)
        )
        return sum(rows[0][0] for rows in counts if rows)

    # --- messages ----------------------------------------------------------------------------

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False
    ) -> None:
        batch = list(messages)  # all or nothing: take every message before writing any
        read_level, write_level = self._levels_of(queue)
        qid = queue.qid
        started = asyncio.get_running_loop().time()
        by_bucket: dict[int, dict[_Key, Message]] = {}
        for message in batch:
            ticks = message.ticks
            keys = by_bucket.setdefault(ticks >> 32, {})
            key = (message.partition, ticks, sfx_of(message.id))
            if replace or key not in keys:
                keys[key] = message  # within one call the last (replace) or first wins
        checks = [
            self._execute("m_keys", (qid, bucket, list(keys)), read_level)
            for bucket, keys in by_bucket.items()
        ]
        alive, existing = await asyncio.gather(
            self._alive(queue, read_level), asyncio.gather(*checks)
        )
        if not alive:
            raise QueueNotFound()
        # A message already stored stays as it is; a replaced one keeps its claim state (a
        # claim made between this read and the write is lost: the message is delivered again).
        kept: dict[_Key, tuple[int, int, int]] = {}
        for bucket, rows in zip(by_bucket, existing, strict=False):
            for part, ticks, sfx, expires, dlv, ctok, cexp in rows:
                if expires is None:  # claim cells that outlived their message: no message
                    continue
                if replace:
                    kept[part, ticks, sfx] = (dlv or 0, ctok or 0, cexp or 0)
                else:
                    by_bucket[bucket].pop((part, ticks, sfx), None)
        by_bucket = {bucket: keys for bucket, keys in by_bucket.items() if keys}
        if not by_bucket:
            return
        statements = self._register(qid, by_bucket) + self._row_statements(qid, by_bucket, kept)
        # One bucket is one Cassandra partition: there an unlogged batch is atomic and
        # isolated (the registry, index and wake-up rows in the same request are bookkeeping
        # that the sweep and Cassandra's TTL tolerate missing). Across buckets only the batch
        # log makes the write all or nothing.
        await self._batch(statements, write_level, logged=len(by_bucket) > 1)
        self._wrote(qid, by_bucket)
        # Messages that may land below a claim floor: replaced ones (a PUT can create one with
        # an old id, or revive an expired one), those of a slow write, and any below this
        # process's floors.
        slow = asyncio.get_running_loop().time() - started > FLOOR_SLOW_S
        await self._lower_floors(qid, by_bucket, write_level, every=replace or slow)

    def _register(
        self, qid: int, by_bucket: dict[int, dict[_Key, Message]]
    ) -> list[tuple[str, Sequence[Any]]]:
        """The bucket, expiry-index and wake-up rows of a write (bucket and hour rows only the
        first time this process writes them)."""
        shard = qid % INDEX_SHARDS
        writes: list[tuple[str, Sequence[Any]]] = [
            ("b_insert", (qid, bucket))
            for bucket in by_bucket
            if (qid, bucket) not in self._known_buckets
        ]
        hours: set[int] = set()
        dues: dict[int, int] = {}
        for bucket, keys in by_bucket.items():
            groups: dict[int, list[_Key]] = {}
            latest: dict[int, int] = {}
            for key, message in keys.items():
                groups.setdefault(message.expires_ms, []).append(key)
                latest[message.expires_ms] = max(latest.get(message.expires_ms, 0), key[1])
                if message.due_ms > 0:
                    dues[message.due_ms] = min(dues.get(message.due_ms, key[1]), key[1])
            for expires, group in groups.items():
                hour = expires // HOUR_MS
                hours.add(hour)
                ttl = index_ttl(expires, latest[expires])
                writes.append(
                    ("x_insert", (shard, hour, expires, qid, bucket, _unique(), group, ttl))
                )
        writes += [
            ("h_insert", (shard, hour)) for hour in hours if (shard, hour) not in self._known_hours
        ]
        writes += [
            ("w_insert", (qid, due, ttl_until(due, _ticks_ms(ticks))))
            for due, ticks in dues.items()
        ]
        return writes

    def _wrote(self, qid: int, by_bucket: dict[int, dict[_Key, Message]]) -> None:
        """Messages were written to ``qid``: remember their bucket and index rows."""
        if len(self._known_buckets) > 100_000:
            self._known_buckets.clear()
        if len(self._known_hours) > 100_000:
            self._known_hours.clear()
        self._known_buckets.update((qid, bucket) for bucket in by_bucket)
        shard = qid % INDEX_SHARDS
        for keys in by_bucket.values():
            self._known_hours.update((shard, m.expires_ms // HOUR_MS) for m in keys.values())
        self._changes += 1

    def _row_statements(
        self,
        qid: int,
        by_bucket: dict[int, dict[_Key, Message]],
        kept: dict[_Key, tuple[int, int, int]],
    ) -> list[tuple[str, Sequence[Any]]]:
        """The INSERTs of messages; the claim columns are always written (0 for a new row),
        so conditions and filters on them never meet null."""
        statements: list[tuple[str, Sequence[Any]]] = []
        for bucket, keys in by_bucket.items():
            parts = {part for part, _, _ in keys}
            if len(parts) > 1:  # readers of several partitions notice this write
                statements.append(("m_mark", (_unique(), qid, bucket)))
            for key, m in keys.items():
                part, ticks, sfx = key
                dlv, ctok, cexp = kept.get(key, (m.deliveries, 0, 0))
                params = (
                    qid, bucket, part, ticks, sfx, m.expires_ms, m.content_type, m.body,
                    m.due_ms, dlv, ctok, cexp, message_ttl(m.expires_ms, ticks),
                )  # fmt: skip
                statements.append(("m_insert", params))
        return statements

    async def read_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        parts = [p for p in partitions if 1 <= p <= queue.partitions]
        if not parts or limit <= 0:
            return []
        level = self._levels_of(queue)[0]
        alive, found = await asyncio.gather(
            self._alive(queue, level),
            self._read(queue.qid, parts, cursor, descending, limit, now_ms, level),
        )
        if not alive:
            return []
        out: list[Message] = []
        for part in parts:
            out += found.get(part, [])
        return out

    async def _read(
        self,
        qid: int,
        parts: list[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
        now_ms: int,
        level: str,
    ) -> dict[int, list[Message]]:
        found: dict[int, list[Message]] = {part: [] for part in parts}
        first = None if cursor is None else cursor.ticks >> 32
        position: tuple[int, int, bool] | None = None
        if cursor is not None:
            sfx, inclusive = cursor_position(cursor, descending)
            position = (cursor.ticks, sfx, inclusive)
        start = first if first is not None else ((1 << 63) - 1 if descending else -(1 << 63))
        while True:
            key = "b_desc" if descending else "b_asc"
            buckets = [row[0] for row in await self._execute(key, (qid, start, BUCKET_PAGE), level)]
            for bucket in buckets:
                active = [part for part in parts if len(found[part]) < limit]
                if not active:
                    return found
                at = position if bucket == first else None
                rows = await self._read_bucket(
                    qid, bucket, active, at, descending, limit, found, now_ms, level
                )
                for part, messages in rows.items():
                    found[part] += messages
            if len(buckets) < BUCKET_PAGE:
                return found
            start = buckets[-1] - 1 if descending else buckets[-1] + 1

    async def _read_bucket(
        self,
        qid: int,
        bucket: int,
        parts: list[int],
        position: tuple[int, int, bool] | None,
        descending: bool,
        limit: int,
        found: dict[int, list[Message]],
        now_ms: int,
        level: str,
    ) -> dict[int, list[Message]]:
        """The messages of ``parts`` in one bucket; with several parts, as of one moment with
        respect to writes that span parts (the static ``mark`` is the same before and after)."""
        kind = None if position is None else position[2]
        key = f"r_{descending}_{kind}"
        several = len(parts) > 1
        result: dict[int, list[Message]] = {}
        for _ in range(_MARK_RETRIES):
            before = await self._mark(qid, bucket, level) if several else None
            queries = []
            for part in parts:
                params: list[Any] = [qid, bucket, part]
                if position is not None:
                    params += position[:2]
                params += [now_ms, now_ms, limit - len(found[part])]
                queries.append(self._execute(key, params, level))
            replies = await asyncio.gather(*queries)
            result = {
                part: [_message(part, *row) for row in rows]
                for part, rows in zip(parts, replies, strict=True)
            }
            if not several or await self._mark(qid, bucket, level) == before:
                return result
        log.debug("read of %d partitions kept racing writes; answering the last one", len(parts))
        return result

    async def _mark(self, qid: int, bucket: int, level: str) -> object:
        rows = await self._execute("m_mark_read", (qid, bucket), level)
        return rows[0][0] if rows else None

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        wanted = _keys_by_bucket(ids)
        if not wanted:
            return []
        level = self._levels_of(queue)[0]
        alive, replies = await asyncio.gather(
            self._alive(queue, level),
            asyncio.gather(
                *(
                    self._execute("m_get", (queue.qid, bucket, keys), level)
                    for bucket, keys in wanted.items()
                )
            ),
        )
        if not alive:
            return []
        found: dict[_Key, Message] = {}
        for rows in replies:
            for part, ticks, sfx, body, ctype, expires, due, dlv in rows:
                if expires is not None and expires > now_ms and (due or 0) <= now_ms:
                    found[part, ticks, sfx] = _message(
                        part, ticks, sfx, body, ctype, expires, due, dlv
                    )
        ordered = [key for keys in wanted.values() for key in keys]
        order = {key: i for i, key in enumerate(_keys_in_order(ids))}
        ordered.sort(key=order.__getitem__)
        return [found[key] for key in ordered if key in found]

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        level = self._levels_of(queue)[1]
        await asyncio.gather(
            *(
                self._batch(
                    [("m_delete", (queue.qid, bucket, *key)) for key in keys], level, logged=False
                )
                for bucket, keys in _keys_by_bucket(ids).items()
            )
        )
        self._changes += 1

    # --- deduplicated writes -------------------------------------------------------------------

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        batch, ids = list(messages), list(dedup_ids)
        read_level, write_level = self._levels_of(queue)
        if not await self._alive(queue, read_level):
            raise QueueNotFound()
        until = now_ms + window_ms
        firsts: dict[str, Message] = {}
        for message, dedup_id in zip(batch, ids, strict=True):
            if dedup_id is not None:
                firsts.setdefault(dedup_id, message)
        outcomes = await asyncio.gather(
            *(
                self._dedup_claim(queue, dedup_id, message, now_ms, until)
                for dedup_id, message in firsts.items()
            ),
            return_exceptions=True,
        )
        owned = [d for d, outcome in zip(firsts, outcomes, strict=True) if outcome is None]
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            await self._dedup_release(queue, owned, firsts)
            raise failure
        earlier = {
            d: outcome
            for d, outcome in zip(firsts, outcomes, strict=True)
            if isinstance(outcome, Message)
        }
        result: list[Message | None] = []
        stored: list[Message] = []
        for message, dedup_id in zip(batch, ids, strict=True):
            first = None if dedup_id is None else earlier.get(dedup_id, firsts[dedup_id])
            if first is None or first is message:
                stored.append(message)
                result.append(None)
            else:
                result.append(first)
        try:
            await self.write_messages(queue, stored)
        except BaseException:
            await self._dedup_release(queue, owned, firsts)
            raise
        confirms = await asyncio.gather(
            *(
                self._named(
                    "dd_confirm",
                    (ttl_until(until, now_ms), queue.qid, d, *_key_of(firsts[d])),
                    write_level,
                )
                for d in owned
            ),
            return_exceptions=True,
        )
        for outcome in confirms:
            if isinstance(outcome, StorageUnavailable):
                # The message is stored: a later post with the id finds it and is a duplicate.
                log.debug("a dedup id stays unconfirmed: %s", outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return result

    async def _dedup_claim(
        self, queue: Queue, dedup_id: str, message: Message, now_ms: int, until: int
    ) -> Message | None:
        """Make ``dedup_id`` this message's (None), or return the message that has it.

        A dedup row names its message and says whether that message is stored. It is taken
        (lightweight transaction) before the message is written and marked stored after, so
        "duplicate" is answered only for a message that is stored: marked so, or found. A row
        whose message is not there yet belongs to a post in progress: waited for, and taken
        over once older than DEDUP_STALE_MS (its post failed without releasing it)."""
        level = self._levels_of(queue)[1]
        key = _key_of(message)
        ttl = ttl_until(until, now_ms)
        for _ in range(DEDUP_TRIES):
            try:
                rows = await self._named(
                    "dd_insert", (queue.qid, dedup_id, until, *key, now_ms, ttl), level
                )
            except StorageUnavailable as error:
                if not _unknown_outcome(error):
                    raise
                continue  # the next attempt shows whether this one took the id
            row = rows[0]
            if row["[applied]"] or (row["part"], row["ticks"], row["sfx"]) == key:
                return None
            first = _message(row["part"], row["ticks"], row["sfx"], "", "", 0)
            stored = bool(row["stored"])
            free = row["until"] <= now_ms
            if not free and not stored:
                stored = await self._stored(queue, _key_of(first))
                free = not stored and (row["since"] or 0) <= now_ms - DEDUP_STALE_MS
            if free:
                params = (
                    ttl, until, *key, now_ms, queue.qid, dedup_id,
                    row["until"], row["ticks"], row["sfx"], row["stored"],
                )  # fmt: skip
                try:
                    taken = await self._named("dd_take", params, level)
                except StorageUnavailable as error:
                    if not _unknown_outcome(error):
                        raise
                    continue
                if taken[0]["[applied]"]:
                    return None
                continue
            if stored:
                return first
            await asyncio.sleep(DEDUP_POLL_S)  # another post of this id is being written
        raise StorageUnavailable(
            "Back-end storage unavailable: another post with this dedup id is being stored."
        )

    async def _stored(self, queue: Queue, key: _Key) -> bool:
        level = self._levels_of(queue)[0]
        rows = await self._execute("m_keys", (queue.qid, key[1] >> 32, [key]), level)
        return any(row[3] is not None for row in rows)

    async def _dedup_release(
        self, queue: Queue, owned: list[str], firsts: dict[str, Message]
    ) -> None:
        """Give back dedup ids taken by a post that failed (best effort: an id left taken is
        free again after DEDUP_STALE_MS)."""
        level = self._levels_of(queue)[1]
        await asyncio.gather(
            *(self._named("dd_release", (queue.qid, d, *_key_of(firsts[d])), level) for d in owned),
            return_exceptions=True,
        )

    # --- claims --------------------------------------------------------------------------------

    async def claim_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        limit: int,
        now_ms: int,
        lease_ms: int,
        remove: bool,
    ) -> list[Claim]:
        parts = sorted({p for p in partitions if 1 <= p <= queue.partitions})
        if not parts or limit <= 0:
            return []
        read_level, write_level = self._levels_of(queue)
        current = await self._current(queue, read_level)
        if current is None:
            return []
        qid = queue.qid
        loop_now = asyncio.get_running_loop().time()
        due = []
        for part in parts:
            floor = self._floors.get((qid, part))
            if floor is None or loop_now - floor.checked >= FLOOR_REFRESH_S:
                due.append(part)
        if due:
            await self._load_floors(qid, parts, read_level, loop_now)
        starts = {part: self._floors[qid, part].position for part in parts}
        raising = [self._floors[qid, part] for part in due]
        job = _ClaimJob(
            queue=current, token=secrets.randbits(62) + 1, now_ms=now_ms,
            cexp=now_ms + lease_ms, need=limit, remove=remove, read_level=read_level,
            write_level=write_level, claims=[], leased={}, moves=[],
        )  # fmt: skip
        outcomes = await asyncio.gather(
            self._claim_walk(job, starts),
            self._raise_floors(qid, due, raising, now_ms, read_level, write_level),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        writes: list[Awaitable[Any]] = [self._finish_move(move, write_level) for move in job.moves]
        if job.leased and not remove:
            writes.append(self._lease_index(current, job.token, job.cexp, job.leased, now_ms))
        await asyncio.gather(*writes)
        if job.claims or job.moves:
            self._changes += 1
        job.claims.sort(key=lambda c: (c.message.ticks, sfx_of(c.message.id)))
        return job.claims

    async def _claim_walk(self, job: _ClaimJob, starts: dict[int, tuple[int, int] | None]) -> None:
        """Claim over the queue's buckets in order, each from the parts' floors on."""
        qid = job.queue.qid
        known = [s[0] >> 32 for s in starts.values() if s is not None]
        start = min(known) if len(known) == len(starts) else -(1 << 63)
        while job.need > 0:
            rows = await self._execute("b_asc", (qid, start, BUCKET_PAGE), job.read_level)
            buckets = [row[0] for row in rows]
            for bucket in buckets:
                here: dict[int, tuple[int, int, bool] | None] = {}
                for part, floor in starts.items():
                    if floor is None or floor[0] >> 32 < bucket:
                        here[part] = None
                    elif floor[0] >> 32 == bucket:
                        here[part] = (floor[0], floor[1], True)
                if here:
                    await self._claim_bucket(job, bucket, here)
                if job.need <= 0:
                    return
            if len(buckets) < BUCKET_PAGE:
                return
            start = buckets[-1] + 1

    async def _claim_bucket(
        self, job: _ClaimJob, bucket: int, cursors: dict[int, tuple[int, int, bool] | None]
    ) -> None:
        """Claim from one bucket, oldest (ticks, id) first over its parts, until ``job.need``
        messages are claimed or the bucket has no more available ones."""
        qid = job.queue.qid
        buffers: dict[int, deque[_Row]] = {part: deque() for part in cursors}
        more = set(cursors)  # parts whose rows past their buffer are not read yet
        maxd = job.queue.settings.max_deliveries
        while job.need > 0:
            refill = [part for part in sorted(more) if not buffers[part]]
            if refill:
                inflight = self._inflight.get(qid, ())
                fetch = min(job.need + len(inflight), 1000)
                replies = await asyncio.gather(
                    *(self._candidates(job, bucket, p, cursors[p], fetch) for p in refill)
                )
                for part, rows in zip(refill, replies, strict=True):
                    buffers[part].extend(rows)
                    if len(rows) < fetch:
                        more.discard(part)
                    if rows:
                        cursors[part] = (rows[-1][1], rows[-1][2], False)
                continue
            chosen: list[_Row] = []
            exhausted: list[_Row] = []
            inflight = self._inflight.get(qid, ())
            taken = self._taken.get(qid, {})
            loop_now = asyncio.get_running_loop().time()
            while len(chosen) < job.need:
                heads = [part for part, rows in buffers.items() if rows]
                if not heads:
                    break
                part = min(heads, key=lambda p: buffers[p][0][1:3])
                row = buffers[part].popleft()
                took = taken.get(row[:3])
                if row[:3] in inflight:
                    pass  # another claim of this process is taking it
                elif took is not None and took[0] > job.now_ms and loop_now - took[1] < TAKEN_S:
                    pass  # another claim of this process took it since it was read
                elif maxd > 0 and (row[7] or 0) >= maxd:
                    exhausted.append(row)
                else:
                    chosen.append(row)
                if not buffers[part] and part in more:
                    break  # its next rows may come before the other parts' heads
            if not chosen and not exhausted:
                if not more:
                    return
                continue
            await self._take(job, bucket, chosen, exhausted)

    def _candidates(
        self,
        job: _ClaimJob,
        bucket: int,
        part: int,
        cursor: tuple[int, int, bool] | None,
        limit: int,
    ) -> asyncio.Future[list[_Row]]:
        """Available messages of one part of a bucket from ``cursor`` on (_CLAIM_COLUMNS)."""
        params: list[Any] = [job.queue.qid, bucket, part]
        kind = None
        if cursor is not None:
            params += cursor[:2]
            kind = cursor[2]
        now = job.now_ms
        params += [now, now, now, limit]
        return self._execute(f"c_scan_{kind}", params, job.read_level)

    async def _take(
        self, job: _ClaimJob, bucket: int, chosen: list[_Row], exhausted: list[_Row]
    ) -> None:
        """Claim ``chosen`` and start moving ``exhausted`` to the dead-letter queue, in one
        conditional batch; a row whose claim columns changed since it was read is someone
        else's now and is passed over."""
        qid = job.queue.qid
        inflight = self._inflight.setdefault(qid, set())
        keys = [row[:3] for row in chosen + exhausted]
        inflight.update(keys)
        try:
            moves = await self._prepare_moves(job.queue, bucket, exhausted, job.now_ms)
            ops = [self._claim_op(job, bucket, row) for row in chosen]
            ops += [self._move_op(move, job.now_ms) for move in moves]
            results = await self._cas(qid, bucket, ops, job.write_level)
        finally:
            inflight.difference_update(keys)
            if not inflight and self._inflight.get(qid) is inflight:
                del self._inflight[qid]
        taken = self._taken.setdefault(qid, {})
        loop_now = asyncio.get_running_loop().time()
        if len(taken) > 4096:
            for key in [k for k, (_, at) in taken.items() if loop_now - at >= TAKEN_S]:
                del taken[key]
        for row, ok in zip(chosen, results, strict=False):
            if ok:
                taken[row[:3]] = (job.cexp, loop_now)
                part, ticks, sfx, body, ctype, expires, due, dlv = row[:8]
                message = _message(part, ticks, sfx, body, ctype, expires, due, (dlv or 0) + 1)
                job.claims.append(Claim(message, job.token, job.cexp))
                job.need -= 1
                job.leased.setdefault(bucket, []).append((row[:3], expires))
        failed: list[_Move] = []
        for move, ok in zip(moves, results[len(chosen) :], strict=True):
            (job.moves if ok else failed).append(move)
        await asyncio.gather(*(self._drop_move(move, job.write_level) for move in failed))

    def _claim_op(self, job: _ClaimJob, bucket: int, row: _Row) -> _Op:
        part, ticks, sfx, _, _, expires, _, dlv, ctok, cexp = row
        where = (job.queue.qid, bucket, part, ticks, sfx)
        if job.remove:  # at most once: the claim deletes the message
            return self._op(
                row[:3], "c_take", (*where, expires, ctok, cexp),
                _unchanged(expires, ctok, cexp), _never,
            )  # fmt: skip
        params = (
            ttl_until(expires, job.now_ms), job.token, job.cexp, (dlv or 0) + 1,
            *where, expires, ctok, cexp,
        )  # fmt: skip
        return self._op(
            row[:3], "c_claim", params, _unchanged(expires, ctok, cexp), _tokened(job.token)
        )

    async def _lease_index(
        self,
        queue: Queue,
        token: int,
        cexp: int,
        leased: dict[int, list[tuple[_Key, int]]],
        now_ms: int,
    ) -> None:
        """Index the leases of one claim: where the sweep finds them when they end (rows of
        the expiry index with the claim's token, at ``cexp``) and the queue's wake-up time."""
        qid = queue.qid
        level = self._levels_of(queue)[1]
        shard, hour = qid % INDEX_SHARDS, cexp // HOUR_MS
        wid = uuid.UUID(int=token)
        writes = []
        for bucket, items in leased.items():
            keys = [key for key, _ in items]
            ttl = ttl_until(max(expires for _, expires in items), now_ms)
            params = (shard, hour, cexp, qid, bucket, wid, keys, token, queue.app, queue.name, ttl)
            writes.append(self._execute("x_lease", params, level))
        if (shard, hour) not in self._known_hours:
            writes.append(self._execute("h_insert", (shard, hour), level))
        if cexp > now_ms:
            writes.append(self._execute("w_insert", (qid, cexp, ttl_until(cexp, now_ms)), level))
        await asyncio.gather(*writes)
        self._known_hours.add((shard, hour))

    async def _load_floors(self, qid: int, parts: list[int], level: str, loop_now: float) -> None:
        """Read the queue's claim floors into this process's copies."""
        rows = await self._execute("fl_read", (qid,), level)
        if len(self._floors) > 100_000:
            self._floors.clear()
        found = {
            part: _Floor((ticks, sfx), touched, loop_now) for part, ticks, sfx, touched in rows
        }
        for part in parts:
            self._floors[qid, part] = found.get(part) or _Floor(None, None, loop_now)
        for part, floor in found.items():
            self._floors[qid, part] = floor

    async def _raise_floors(
        self,
        qid: int,
        parts: list[int],
        floors: list[_Floor],
        now_ms: int,
        read_level: str,
        write_level: str,
    ) -> None:
        """Move the claim floors of ``parts`` up to their first row that is or may become
        available, so claims do not read again through the tombstones of acknowledged
        messages (and a process that starts, or has not claimed from the queue for a while,
        starts where the others are).

        A floor skips only rows that are gone or can never be available again (expired, or
        being dead-lettered): claimed and delayed rows stop it, and so does the time
        FLOOR_MARGIN_MS before now, as messages stamped since may still be on their way.
        Every message that may land below a floor lowers it once written (_lower_floors):
        replaced ones (PUT), dead-letter copies, those of a slow write. The row's ``touched``
        version makes a raise conditional on nothing having lowered the floor since it was
        read, so a raise never passes a message written meanwhile. This is an optimisation:
        when it fails, claims go on from the floors they have."""
        if not parts:
            return
        margin = (ticks_from_ns((now_ms - FLOOR_MARGIN_MS) * 1_000_000), SFX_MIN)
        try:
            found = await asyncio.gather(
                *(
                    self._first_live(qid, part, floor.position, now_ms, margin, read_level)
                    for part, floor in zip(parts, floors, strict=True)
                )
            )
            moves = []
            for part, floor, first in zip(parts, floors, found, strict=True):
                position = min(first, margin)
                if floor.position is None or position > floor.position:
                    moves.append(self._move_floor(qid, part, floor, position, write_level))
            await asyncio.gather(*moves)
        except StorageUnavailable as error:
            log.debug("claim floors of queue %d not raised: %s", qid, error)
            for part in parts:
                self._floors.pop((qid, part), None)

    async def _move_floor(
        self, qid: int, part: int, floor: _Floor, position: tuple[int, int], level: str
    ) -> bool:
        """Set a claim floor if its row is still as ``floor`` saw it; whether it was set (this
        process's copy follows the row: it is set, or dropped to be read again)."""
        touched = uuid.uuid4()
        if floor.touched is None:
            params: tuple[Any, ...] = (qid, part, *position, touched)
            rows = await self._named("fl_create", params, level)
        else:
            params = (*position, touched, qid, part, floor.touched)
            rows = await self._named("fl_move", params, level)
        applied = bool(rows and rows[0]["[applied]"])
        if applied and self._floors.get((qid, part)) is floor:
            floor.position, floor.touched = position, touched
        else:
            self._floors.pop((qid, part), None)
        return applied

    async def _lower_floors(
        self, qid: int, by_bucket: dict[int, dict[_Key, Message]], level: str, every: bool
    ) -> None:
        """Lower the claim floors of ``qid`` to the messages just written (of every part
        written when ``every``, else of the parts written below this process's floors)."""
        lowest: dict[int, tuple[int, int]] = {}
        for keys in by_bucket.values():
            for part, ticks, sfx in keys:
                if part not in lowest or (ticks, sfx) < lowest[part]:
                    lowest[part] = (ticks, sfx)
        if not every:
            for part, key in list(lowest.items()):
                floor = self._floors.get((qid, part))
                if floor is None or floor.position is None or key >= floor.position:
                    del lowest[part]
        for _ in range(FLOOR_TRIES):
            if not lowest:
                return
            rows = await self._execute("fl_read", (qid,), level)
            loop_now = asyncio.get_running_loop().time()
            current = {part: _Floor((t, s), v, loop_now) for part, t, s, v in rows}
            parts = list(lowest)
            moves = []
            for part in parts:
                floor = current.get(part) or _Floor(None, None, loop_now)
                # Without a floor there is nothing to lower, but a claim may be making the
                # first one from a scan that missed these messages: a floor at the bottom
                # makes that creation fail.
                position = _BOTTOM if floor.position is None else min(lowest[part], floor.position)
                moves.append(self._move_floor(qid, part, floor, position, level))
            moved = await asyncio.gather(*moves, return_exceptions=True)
            for part, outcome in zip(parts, moved, strict=True):
                if outcome is True:
                    del lowest[part]
                elif isinstance(outcome, BaseException) and not isinstance(
                    outcome, StorageUnavailable
                ):
                    raise outcome
                self._floors.pop((qid, part), None)
        raise StorageUnavailable("Back-end storage unavailable: the claim floors keep changing.")

    async def _first_live(
        self,
        qid: int,
        part: int,
        start: tuple[int, int] | None,
        now_ms: int,
        margin: tuple[int, int],
        level: str,
    ) -> tuple[int, int]:
        """The position of the first row of ``part`` from ``start`` on that is or may become
        available, or as far as a few queries got."""
        position = start
        first = start[0] >> 32 if start is not None else -(1 << 63)
        buckets = await self._execute("b_asc", (qid, first, FLOOR_BUCKETS), level)
        for (bucket,) in buckets:
            lowest = (bucket << 32, SFX_MIN)
            if position is None or position < lowest:
                position = lowest
            rows = await self._execute("f_scan", (qid, bucket, part, *position, FLOOR_SCAN), level)
            for ticks, sfx, expires, ctok in rows:
                if expires is not None and expires > now_ms and (ctok or 0) >= 0:
                    return (ticks, sfx)
                position = (ticks, sfx)  # expired, or being dead-lettered
            if len(rows) == FLOOR_SCAN:
                return position
            end = ((bucket + 1) << 32, SFX_MIN)
            if end > margin:
                return margin  # the bucket may still get messages
            position = end
        if len(buckets) == FLOOR_BUCKETS and position is not None:
            return position
        return margin

    async def ack_messages(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> list[bool]:
        level = self._levels_of(queue)[1]
        ops: list[_Op | None] = []
        groups: dict[int, list[_Op]] = {}
        for ref in claims:
            key = _ref_key(ref)
            if key is None:
                ops.append(None)
                continue
            bucket = key[1] >> 32
            params = (queue.qid, bucket, *key, ref.token, now_ms)
            op = self._op(key, "c_ack", params, _holding(ref.token, now_ms), _gone)
            groups.setdefault(bucket, []).append(op)
            ops.append(op)
        await asyncio.gather(
            *(self._cas(queue.qid, b, group, level) for b, group in groups.items())
        )
        self._changes += 1
        done = [op is not None and op.future.result() for op in ops]
        taken = self._taken.get(queue.qid)
        if taken:
            for acked, ok in zip(ops, done, strict=True):
                if ok and acked is not None:
                    taken.pop(acked.key, None)
        return done

    async def current_claims(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        level = self._levels_of(queue)[0]
        wanted = _keys_by_bucket(ids)
        alive, replies = await asyncio.gather(
            self._alive(queue, level),
            asyncio.gather(
                *(self._execute("m_keys", (queue.qid, b, ks), level) for b, ks in wanted.items())
            ),
        )
        tokens: dict[_Key, int] = {}
        for rows in replies if alive else []:
            for part, ticks, sfx, expires, _, ctok, cexp in rows:
                # A negative token marks a dead-letter move in progress, not a claim.
                live = expires is not None and expires > now_ms
                if live and (ctok or 0) > 0 and (cexp or 0) > now_ms:
                    tokens[part, ticks, sfx] = ctok
        found: list[ClaimRef | None] = []
        for partition, message_id in ids:
            key = _ref_key(ClaimRef(partition, message_id, 0))
            token = tokens.get(key) if key is not None else None
            found.append(None if token is None else ClaimRef(partition, message_id, token))
        return found

    async def extend_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int, lease_ms: int
    ) -> list[bool]:
        read_level, write_level = self._levels_of(queue)
        cexp = now_ms + lease_ms
        keys = [_ref_key(ref) for ref in claims]
        wanted: dict[int, list[_Key]] = {}
        for key in keys:
            if key is not None:
                wanted.setdefault(key[1] >> 32, []).append(key)
        replies = await asyncio.gather(
            *(self._execute("m_keys", (queue.qid, b, ks), read_level) for b, ks in wanted.items())
        )
        state = {row[:3]: row for rows in replies for row in rows}
        ops: list[_Op | None] = []
        groups: dict[int, list[_Op]] = {}
        for ref, key in zip(claims, keys, strict=True):
            row = state.get(key) if key is not None else None
            # Only a current claim can be extended: no conditional statement for the others.
            if key is None or row is None or row[3] is None or row[5] != ref.token:
                ops.append(None)
                continue
            if (row[6] or 0) <= now_ms:
                ops.append(None)
                continue
            bucket = key[1] >> 32
            params = (ttl_until(row[3], now_ms), cexp, queue.qid, bucket, *key, ref.token, now_ms)
            op = self._op(
                key, "c_extend", params, _holding(ref.token, now_ms), _tokened(ref.token, cexp)
            )
            groups.setdefault(bucket, []).append(op)
            ops.append(op)
        await asyncio.gather(
            *(self._cas(queue.qid, b, group, write_level) for b, group in groups.items())
        )
        done = [op is not None and op.future.result() for op in ops]
        taken = self._taken.get(queue.qid, {})
        leases: dict[int, dict[int, list[tuple[_Key, int]]]] = {}
        for ref, key, ok in zip(claims, keys, done, strict=True):
            if ok and key is not None:
                if key in taken:  # a release makes it available to this process at once too
                    taken[key] = (cexp, taken[key][1])
                by_bucket = leases.setdefault(ref.token, {})
                by_bucket.setdefault(key[1] >> 32, []).append((key, state[key][3]))
        await asyncio.gather(
            *(
                self._lease_index(queue, token, cexp, leased, now_ms)
                for token, leased in leases.items()
            )
        )
        self._changes += 1
        return done

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        level = self._levels_of(queue)[0]
        qid, now = queue.qid, now_ms
        alive, buckets, dead = await asyncio.gather(
            self._alive(queue, level),
            self._execute("b_all", (qid,), level),
            self._execute("dl_count", (qid,), level),
        )
        dead_lettered = dead[0][0] if dead else 0
        if not alive:
            return QueueStats(0, 0, 0, dead_lettered, None, None)
        queries = []
        for (bucket,) in buckets:
            queries += [
                self._execute("s_available", (qid, bucket, now, now, now), level),
                self._execute("s_claimed", (qid, bucket, now, now, now), level),
                self._execute("s_delayed", (qid, bucket, now, now), level),
            ]
        replies = await asyncio.gather(*queries)
        counts = [0, 0, 0]
        lows: list[int] = []
        highs: list[int] = []
        for index, rows in enumerate(replies):
            row = rows[0]
            counts[index % 3] += row[0]
            if index % 3 < 2 and row[1] is not None:
                lows.append(row[1])
                highs.append(row[2])
        available, claimed, delayed = counts
        return QueueStats(
            available, claimed, delayed, dead_lettered, min(lows, default=None),
            max(highs, default=None),
        )  # fmt: skip

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        # Lease ends of claims acknowledged since are still listed: a waiter may wake for
        # nothing, never too late.
        rows = await self._execute("w_next", (queue.qid, now_ms), self._levels_of(queue)[0])
        return int(rows[0][0]) if rows else None

    async def data_version(self) -> int:
        # Cassandra has no cheap signal of another server's writes: the number changes every
        # 50 ms, so waiters look again at that pace, and at once after this process's writes.
        return (int(time.monotonic() * 20) << 32) + self._changes

    # --- dead letters --------------------------------------------------------------------------

    async def _prepare_moves(
        self, queue: Queue, bucket: int, rows: list[_Row], now_ms: int
    ) -> list[_Move]:
        """Record the moves of exhausted messages before the conditional statements that start
        them, so the sweep completes a move whose server stopped half-way."""
        if not rows:
            return []
        name = queue.settings.dead_letter_queue
        target = await self.get_queue(queue.app, name) if name else None
        level = self._levels_of(queue)[1]
        moves = []
        for row in rows:
            part = row[0]
            tpart = part if target is not None and part <= target.partitions else 1
            token = secrets.randbits(62) + 1
            moves.append(_Move(queue.qid, bucket, row, token, target.qid if target else 0, tpart))
        await asyncio.gather(
            *(
                self._execute(
                    "mv_insert",
                    (
                        m.qid % INDEX_SHARDS,
                        m.qid,
                        bucket,
                        *m.key,
                        now_ms,
                        m.token,
                        m.target,
                        m.tpart,
                        ttl_until(m.row[5], now_ms),
                    ),  # fmt: skip
                    level,
                )
                for m in moves
            )
        )
        return moves

    def _move_op(self, move: _Move, now_ms: int) -> _Op:
        """The conditional statement that wins a move: the row as seen gets the move's
        (negative) token and a lease that never ends."""
        part, ticks, sfx, _, _, expires, _, dlv, ctok, cexp = move.row
        params = (
            ttl_until(expires, now_ms), -move.token, MOVING_CEXP, dlv or 0,
            move.qid, move.bucket, part, ticks, sfx, expires, ctok, cexp,
        )  # fmt: skip
        return self._op(
            move.key, "c_claim", params, _unchanged(expires, ctok, cexp), _tokened(-move.token)
        )

    async def _finish_move(self, move: _Move, level: str, recovering: bool = False) -> None:
        """Copy a won move's message to the dead-letter queue and count it (one logged batch:
        both or neither), then delete the source row and the pending move. A recovery skips
        the copy when the count shows it was made."""
        part, ticks, sfx, body, ctype, expires, _, dlv = move.row[:8]
        where = (move.qid, move.bucket, part, ticks, sfx)
        copied: dict[int, dict[_Key, Message]] = {}
        counted = recovering and bool(await self._execute("dl_get", where, level))
        if not counted:
            statements: list[tuple[str, Sequence[Any]]] = [("dl_insert", where)]
            if move.target:
                key = (move.tpart, ticks, sfx)
                present = await self._execute("m_keys", (move.target, move.bucket, [key]), level)
                if not any(row[3] is not None for row in present):
                    copy = _message(move.tpart, ticks, sfx, body, ctype, expires, 0, dlv)
                    copied = {move.bucket: {key: copy}}
                    statements = [
                        *self._register(move.target, copied),
                        *self._row_statements(move.target, copied, {}),
                        *statements,
                    ]
            await self._batch(statements, level, logged=True)
        if move.target:  # the copy has the message's old id: below the claim floors
            key = (move.tpart, ticks, sfx)
            copy = _message(move.tpart, ticks, sfx, body, ctype, expires, 0, dlv)
            await self._lower_floors(move.target, {move.bucket: {key: copy}}, level, every=True)
        op = self._op(move.key, "c_moved", (*where, -move.token), _tokened(-move.token), _gone)
        await self._cas(move.qid, move.bucket, [op], level)
        await self._drop_move(move, level)
        if copied:
            self._wrote(move.target, copied)
        self._changes += 1

    def _drop_move(self, move: _Move, level: str) -> asyncio.Future[list[_Row]]:
        params = (move.qid % INDEX_SHARDS, move.qid, move.bucket, *move.key, move.token)
        return self._execute("mv_delete", params, level)

    # --- conditional statements ----------------------------------------------------------------

    def _op(
        self,
        key: _Key,
        statement: str,
        params: tuple[Any, ...],
        holds: Callable[[_Named | None], bool],
        applied: Callable[[_Named | None], bool],
    ) -> _Op:
        loop = self._loop
        if loop is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is not open.")
        return _Op(key, statement, params, holds, applied, loop.create_future())

    async def _cas(self, qid: int, bucket: int, ops: list[_Op], level: str) -> list[bool]:
        """Run conditional statements on rows of one Cassandra partition; per statement,
        whether it was applied.

        Lightweight transactions on one partition serialize on it (Paxos), so concurrent ones
        from this process are not sent side by side to contend: the partition's combiner runs
        whatever is waiting as one conditional batch (one Paxos round), and when the batch is
        not applied because some conditions failed, answers False for those and runs the
        rest again."""
        if not ops:
            return []
        group = (qid, bucket)
        pending = self._pending.get(group)
        if pending is None:
            pending = self._pending[group] = []
            task = asyncio.get_running_loop().create_task(self._cas_run(group, pending, level))
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)
        pending.extend(ops)
        return list(await asyncio.gather(*(op.future for op in ops)))

    async def _cas_run(self, group: tuple[int, int], pending: list[_Op], level: str) -> None:
        try:
            while pending:
                batch: list[_Op] = []
                rest: list[_Op] = []
                seen: set[_Key] = set()
                for op in pending:  # one statement per row and batch
                    if op.key in seen or len(batch) >= CAS_BATCH:
                        rest.append(op)
                    else:
                        seen.add(op.key)
                        batch.append(op)
                pending[:] = rest
                pending[:0] = await self._cas_batch(batch, level)
        except BaseException as exc:
            error = exc if isinstance(exc, StorageUnavailable) else _unavailable(exc)
            for op in pending:
                _fail(op.future, error)
            pending.clear()
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._pending.get(group) is pending:
                del self._pending[group]

    async def _cas_batch(self, batch: list[_Op], level: str) -> list[_Op]:
        """Run one conditional batch; the statements to run again."""
        statements: list[tuple[str, Sequence[Any]]] = [(op.statement, op.params) for op in batch]
        try:
            rows: list[_Named] = await self._submit(
                lambda: self._build_batch(statements, level, logged=False, idempotent=False),
                "conditional batch",
                named=True,
            )
        except StorageUnavailable as error:
            if not _unknown_outcome(error):
                for op in batch:
                    _fail(op.future, error)
                return []
            # Maybe applied: the next attempt's Paxos round completes it if so, and its answer
            # shows whether it was.
            again = []
            for op in batch:
                op.unsure = True
                op.tries += 1
                if op.tries >= CAS_TRIES:
                    _fail(op.future, error)
                else:
                    again.append(op)
            return again
        except BaseException as exc:
            for op in batch:
                _fail(op.future, exc)
            raise
        if rows and rows[0].get("[applied]"):
            for op in batch:
                _settle(op.future, True)
            return []
        # Not applied: the statements whose conditions failed answer False, the others run
        # again without them (a statement is not charged for the others' failures).
        found = {(r["part"], r["ticks"], r["sfx"]): r for r in rows if "part" in r}
        again = []
        failed = False
        for op in batch:
            row = found.get(op.key)
            if op.unsure and op.applied(row):
                _settle(op.future, True)
            elif not op.holds(row):
                _settle(op.future, False)
                failed = True
            else:
                again.append(op)
        if not failed:  # every condition held as answered, yet nothing was applied
            changing = StorageUnavailable("Back-end storage unavailable: the rows keep changing.")
            for op in again:
                op.tries += 1
                if op.tries >= CAS_TRIES:
                    _fail(op.future, changing)
            again = [op for op in again if not op.future.done()]
        return again

    # --- sweep -------------------------------------------------------------------------------

    async def sweep(self, now_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        removed = 0
        queues: dict[tuple[str, str], Queue | None] = {}
        for shard in range(INDEX_SHARDS):
            removed += await self._sweep_index(shard, now_ms, limit - removed, queues)
            if removed >= limit:
                return removed
        for shard in range(INDEX_SHARDS):
            removed += await self._sweep_moves(shard, now_ms, limit - removed)
            if removed >= limit:
                return removed
        for shard in range(DEAD_SHARDS):
            removed += await self._sweep_dead(shard, limit - removed)
            if removed >= limit:
                return removed
        return removed

    async def _sweep_index(
        self, shard: int, now_ms: int, budget: int, queues: dict[tuple[str, str], Queue | None]
    ) -> int:
        """Handle up to ``budget`` messages listed in the shard's index rows due by now, oldest
        first: delete expired messages, dead-letter exhausted messages whose lease ended, and
        forget the other ended leases."""
        level = self._meta_level
        now_hour = now_ms // HOUR_MS
        removed = 0
        hours = await self._execute("h_read", (shard, now_hour), level)
        for (hour,) in hours:
            rows = await self._execute("x_read", (shard, hour, now_ms, 1000), level)
            done: _Row | None = None
            finished = True
            for index, (expires, qid, bucket, wid, keys, ctok, app, name, ttl) in enumerate(rows):
                room = budget - removed
                listed = [tuple(key) for key in keys]
                if ctok is None:
                    acted, rest = await self._sweep_expired(qid, bucket, listed, now_ms, room)
                else:
                    queue = queues.get((app, name))
                    if (app, name) not in queues:
                        queue = queues[app, name] = await self.get_queue(app, name)
                    acted, rest = await self._sweep_lease(
                        queue, qid, bucket, listed, ctok, now_ms, room
                    )
                removed += acted
                if rest:  # the budget ran out within this row: it keeps what is left
                    params = (ttl or MIN_TTL, rest, shard, hour, expires, qid, bucket, wid)
                    await self._execute("x_keys", params, level)
                    finished = False
                    break
                done = (expires, qid, bucket, wid)
                if removed >= budget:
                    finished = index == len(rows) - 1
                    break
            if done is not None and (hour < now_hour and finished and len(rows) < 1000):
                await self._execute("x_drop", (shard, hour), level)
                await self._execute("h_delete", (shard, hour), level)
            elif done is not None:
                await self._execute("x_delete_upto", (shard, hour, *done), level)
            elif not rows and hour < now_hour:
                await self._execute("h_delete", (shard, hour), level)
            if removed >= budget or not finished:
                break
        return removed

    async def _sweep_expired(
        self, qid: int, bucket: int, keys: list[_Key], now_ms: int, room: int
    ) -> tuple[int, list[_Key]]:
        """Delete up to ``room`` of the listed messages that are still there and expired; the
        expired ones left."""
        level = self._meta_level
        live = await self._execute("m_keys", (qid, bucket, keys), level)
        dead = [row[:3] for row in live if row[3] is None or row[3] <= now_ms]
        take = dead[:room]
        if take:
            deletes: list[tuple[str, Sequence[Any]]] = [
                ("m_delete", (qid, bucket, *key)) for key in take
            ]
            await self._batch(deletes, level, logged=False)
        return len(take), dead[room:]

    async def _sweep_lease(
        self,
        queue: Queue | None,
        qid: int,
        bucket: int,
        keys: list[_Key],
        token: int,
        now_ms: int,
        room: int,
    ) -> tuple[int, list[_Key]]:
        """Handle up to ``room`` of the listed messages whose lease (of the claim ``token``)
        ended: dead-letter the exhausted ones, forget the others; the ones not looked at."""
        if queue is None or queue.qid != qid:
            return 0, []  # a deleted queue: its messages are reclaimed with it
        level = self._levels_of(queue)[1]
        rows = await self._execute("m_rows", (qid, bucket, keys), self._meta_level)
        by_key = {row[:3]: row for row in rows}
        maxd = queue.settings.max_deliveries
        acted = 0
        rest: list[_Key] = []
        exhausted: list[_Row] = []
        for index, key in enumerate(keys):
            if acted >= room:
                rest = keys[index:]
                break
            row = by_key.get(key)
            if row is None or row[8] != token or row[5] is None or row[5] <= now_ms:
                continue  # gone, claimed again, or expired (the expiry's business)
            if not 0 < (row[9] or 0) <= now_ms:
                continue  # extended
            acted += 1
            if maxd > 0 and (row[7] or 0) >= maxd:
                exhausted.append(row)
        moves = await self._prepare_moves(queue, bucket, exhausted, now_ms)
        results = await self._cas(qid, bucket, [self._move_op(m, now_ms) for m in moves], level)
        await asyncio.gather(
            *(
                self._finish_move(move, level) if ok else self._drop_move(move, level)
                for move, ok in zip(moves, results, strict=True)
            )
        )
        return acted, rest

    async def _sweep_moves(self, shard: int, now_ms: int, budget: int) -> int:
        """Complete (or forget) up to ``budget`` dead-letter moves pending for more than
        MOVE_GRACE_MS: their server stopped between winning the move and finishing it."""
        level = self._meta_level
        done = 0
        for row in await self._execute("mv_list", (shard,), level):
            _, qid, bucket, part, ticks, sfx, since, token, target, tpart = row
            if done >= budget:
                break
            if (since or 0) > now_ms - MOVE_GRACE_MS:
                continue
            found = await self._execute("m_rows", (qid, bucket, [(part, ticks, sfx)]), level)
            source = found[0] if found else (part, ticks, sfx, "", "", 0, 0, 0, 0, 0)
            move = _Move(qid, bucket, source, token, target or 0, tpart or 1)
            if found and source[8] == -token:
                await self._finish_move(move, level, recovering=True)
            else:  # never won, or finished but for this row
                await self._drop_move(move, level)
            done += 1
        return done

    async def _sweep_dead(self, shard: int, budget: int) -> int:
        """Delete up to ``budget`` messages of deleted queues, a bucket at a time."""
        level = self._meta_level
        removed = 0
        for (qid,) in await self._execute("d_list", (shard,), level):
            for (bucket,) in await self._execute("b_all", (qid,), level):
                rows = await self._execute("m_scan", (qid, bucket, budget - removed + 1), level)
                if len(rows) > budget - removed:  # more than the budget: part of the bucket
                    rows = rows[: budget - removed]
                    await self._execute("m_delete_upto", (qid, bucket, *rows[-1]), level)
                    return removed + len(rows)
                removed += len(rows)
                await self._execute("m_drop", (qid, bucket), level)
                await self._execute("b_delete", (qid, bucket), level)
                if removed >= budget:
                    return removed
            await asyncio.gather(
                self._execute("w_drop", (qid,), level),
                self._execute("dl_drop", (qid,), level),
                self._execute("fl_drop", (qid,), level),
            )
            await self._execute("d_delete", (shard, qid), level)
        return removed


_NOT_IDEMPOTENT = frozenset(
    {
        "q_create", "q_update", "q_delete", "c_claim", "c_take", "c_ack", "c_extend", "c_moved",
        "fl_create", "fl_move", "dd_insert", "dd_take", "dd_confirm", "dd_release",
    }
)  # fmt: skip
_LEVEL_NAMES = ("ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL")


# Unique values for index rows and marks: a random 64-bit prefix per process and a counter
# (os.urandom for every write cost ~10% of a single-message post, waiting for the GIL).
_UNIQUE_PREFIX = secrets.randbits(64) << 64
_UNIQUE_COUNTER = itertools.count()


def _unique() -> uuid.UUID:
    return uuid.UUID(int=_UNIQUE_PREFIX | next(_UNIQUE_COUNTER) & 0xFFFFFFFFFFFFFFFF)


def _resolve(future: asyncio.Future[list[Any]], rows: list[Any]) -> None:
    if not future.done():
        future.set_result(rows)


def _reject(future: asyncio.Future[list[Any]], exc: BaseException, what: str) -> None:
    if not future.done():
        future.set_exception(_unavailable(exc, what))


def _too_few_replicas(error: StorageUnavailable) -> bool:
    """Whether Cassandra refused the request at once because too few replicas are alive."""
    from cassandra.cluster import NoHostAvailable

    from cassandra import Unavailable

    cause = error.__cause__
    if isinstance(cause, NoHostAvailable) and cause.errors:
        return all(isinstance(e, Unavailable) for e in cause.errors.values())
    return isinstance(cause, Unavailable)


def _settle(future: asyncio.Future[bool], applied: bool) -> None:
    if not future.done():
        future.set_result(applied)


def _fail(future: asyncio.Future[bool], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _is_cas_timeout(error: StorageUnavailable) -> bool:
    cause = error.__cause__
    return type(cause).__name__ == "WriteTimeout" and "CAS" in str(cause)


def _unknown_outcome(error: StorageUnavailable) -> bool:
    """Whether a failed conditional statement may have been applied all the same."""
    return _is_cas_timeout(error) or type(error.__cause__).__name__ == "OperationTimedOut"


# Conditions of the conditional statements, checked on the values a batch that was not applied
# answers with (None: no such row), and what shows that a statement was applied.


def _unchanged(expires: int, ctok: int, cexp: int) -> Callable[[_Named | None], bool]:
    def holds(row: _Named | None) -> bool:
        return row is not None and (row["expires"], row["ctok"], row["cexp"]) == (
            expires, ctok, cexp,
        )  # fmt: skip

    return holds


def _holding(token: int, now_ms: int) -> Callable[[_Named | None], bool]:
    def holds(row: _Named | None) -> bool:
        return row is not None and row["ctok"] == token and (row["cexp"] or 0) > now_ms

    return holds


def _tokened(token: int, cexp: int | None = None) -> Callable[[_Named | None], bool]:
    def applied(row: _Named | None) -> bool:
        return row is not None and row["ctok"] == token and cexp in (None, row["cexp"])

    return applied


def _gone(row: _Named | None) -> bool:
    return row is None


def _never(row: _Named | None) -> bool:
    return False  # an at-most-once claim that may have been applied counts as not: lost


def _settings_row(settings: QueueSettings) -> tuple[Any, ...]:
    return (
        settings.partitions, settings.type, settings.consistency, list(settings.principles),
        settings.delivery, settings.claim_ttl, settings.max_deliveries,
        settings.dead_letter_queue, settings.delay, settings.dedup_window, settings.policy,
        settings.paused,
    )  # fmt: skip


def _queue_of(app: str, name: str, row: _Row) -> Queue:
    qid, created, partitions, type_, consistency, principles, *rest = row
    delivery, claim_ttl, max_deliveries, dlq, delay, dedup_window, policy, paused = rest
    default = QueueSettings()
    settings = QueueSettings(
        partitions=partitions,
        type=type_,
        consistency=consistency,
        principles=tuple(principles or ()),
        delivery=delivery or default.delivery,
        claim_ttl=default.claim_ttl if claim_ttl is None else claim_ttl,
        max_deliveries=max_deliveries or 0,
        dead_letter_queue=dlq,
        delay=delay or 0,
        dedup_window=default.dedup_window if dedup_window is None else dedup_window,
        policy=policy or default.policy,
        paused=bool(paused),
    )
    return Queue(app=app, name=name, qid=qid, created=created, settings=settings)


def _key_of(message: Message) -> _Key:
    return (message.partition, message.ticks, sfx_of(message.id))


def _ref_key(ref: ClaimRef) -> _Key | None:
    ticks = ticks_of(ref.id)
    return None if ticks is None else (ref.partition, ticks, sfx_of(ref.id))


def _keys_in_order(ids: Iterable[tuple[int, str]]) -> list[_Key]:
    keys: list[_Key] = []
    for part, message_id in ids:
        ticks = ticks_of(message_id)
        if ticks is not None:
            keys.append((part, ticks, sfx_of(message_id)))
    return keys


def _keys_by_bucket(ids: Iterable[tuple[int, str]]) -> dict[int, list[_Key]]:
    by_bucket: dict[int, list[_Key]] = {}
    for key in _keys_in_order(ids):
        by_bucket.setdefault(key[1] >> 32, []).append(key)
    return by_bucket
