"""CassandraStorage: Apache Cassandra 5 through the ``cassandra-driver`` (native protocol v5).

Keyspaces (``database`` of ``[storage]`` and of ``[metadata]``, by default ``MessageStore`` and
``MetadataStore``) and tables, created at :meth:`open` when ``create_schema`` is on:

Metadata keyspace

* ``queues``, PRIMARY KEY ``((app, name))``: one row per queue, found by point lookups only.
  Creation is a lightweight transaction (``INSERT ... IF NOT EXISTS``), so of two servers
  creating one name exactly one wins; the new queue's ``qid`` is a random 63-bit number, never
  seen before in practice. Updates are conditional on the qid and on the stored partitions
  (``IF qid = ? AND partitions <= ?``), so partitions never shrink even under concurrent
  updates; deletes are conditional on the qid.
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
  of expired messages without compacting them. Reads filter on ``expires > now`` (the time
  the caller passes), so the service's clock, not Cassandra's, decides what is live.
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
  the hours that have index rows.

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
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from queuey.config import CassandraSettings
from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound, StorageUnavailable
from queuey.core.ids import UUID_EPOCH_OFFSET, ticks_of, uuid1_hex
from queuey.core.models import Cursor, Message, Queue, QueueSettings
from queuey.storage.keys import SFX_OFFSET, cursor_position, sfx_of

log = logging.getLogger("queuey.cassandra")

NAME_SHARDS = 16  # partitions of an application's queue listing
INDEX_SHARDS = 4  # partitions of each hour of the expiry index
DEAD_SHARDS = 4
MIN_TTL = 60  # seconds: Cassandra keeps even a message dead on arrival this long
MAX_TTL = 630_720_000  # Cassandra's largest TTL (20 years)
HOUR_MS = 3_600_000
BUCKET_PAGE = 32  # buckets asked for at once when a read walks a queue's buckets
INDEX_PAGE = 100  # expiry index rows, and message keys of one row, handled at once
_TICKS_PER_MS = 10_000
_MARK_RETRIES = 4

_Row = tuple[Any, ...]
_Key = tuple[int, int, int]  # (part, ticks, sfx)

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


def message_ttl(expires_ms: int, ticks: int) -> int:
    """Cassandra TTL (s) of a message row: past its expiry (counted from the message's own
    time, not the wall clock), with room for Cassandra's whole-second rounding."""
    seconds = math.ceil((expires_ms - _ticks_ms(ticks)) / 1000) + 2
    return min(max(seconds, MIN_TTL), MAX_TTL)


def index_ttl(expires_ms: int, ticks: int) -> int:
    """Cassandra TTL (s) of an expiry index row: gone before its messages expire, unless they
    live less than about a minute, so the sweep leaves messages to Cassandra's own TTL."""
    seconds = (expires_ms - _ticks_ms(ticks)) // 1000 - 2
    return min(max(seconds, MIN_TTL), MAX_TTL)


def name_shard(name: str) -> int:
    return zlib.crc32(name.encode()) % NAME_SHARDS


def _message(part: int, ticks: int, sfx: int, body: str, ctype: str, expires: int) -> Message:
    return Message(uuid1_hex(ticks, f"{sfx + SFX_OFFSET:016x}"), ticks, part, body, ctype, expires)


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
            principles frozen<list<text>>, created double, PRIMARY KEY ((app, name)))
            WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {meta}.queue_names (
            app text, shard int, name text, PRIMARY KEY ((app, shard), name))
            WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {meta}.dead_queues (
            shard int, qid bigint, PRIMARY KEY ((shard), qid)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.buckets (
            qid bigint, bucket bigint, PRIMARY KEY ((qid), bucket)) WITH {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.messages (
            qid bigint, bucket bigint, part int, ticks bigint, sfx bigint, expires bigint,
            ctype text, body text, mark uuid static,
            PRIMARY KEY ((qid, bucket), part, ticks, sfx))
            WITH {twcs} AND gc_grace_seconds = 86400 AND {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.expiry (
            shard int, hour bigint, expires bigint, qid bigint, bucket bigint, wid uuid,
            keys frozen<list<frozen<tuple<int, bigint, bigint>>>>,
            PRIMARY KEY ((shard, hour), expires, qid, bucket, wid))
            WITH {twcs} AND gc_grace_seconds = 86400 AND {fast}""",
        f"""CREATE TABLE IF NOT EXISTS {msgs}.expiry_hours (
            shard int, hour bigint, PRIMARY KEY ((shard), hour)) WITH {fast}""",
    ]


def _statements(meta: str, msgs: str) -> dict[str, str]:
    read_columns = "ticks, sfx, body, ctype, expires"
    statements = {
        "q_get": f"SELECT qid, partitions, type, consistency, principles, created"
        f" FROM {meta}.queues WHERE app = ? AND name = ?",
        "q_create": f"INSERT INTO {meta}.queues"
        " (app, name, qid, partitions, type, consistency, principles, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
        "q_update": f"UPDATE {meta}.queues SET partitions = ?, type = ?, consistency = ?,"
        " principles = ? WHERE app = ? AND name = ? IF qid = ? AND partitions <= ?",
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
        " (qid, bucket, part, ticks, sfx, expires, ctype, body)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "m_mark": f"UPDATE {msgs}.messages SET mark = ? WHERE qid = ? AND bucket = ?",
        "m_mark_read": f"SELECT mark FROM {msgs}.messages WHERE qid = ? AND bucket = ? LIMIT 1",
        "m_get": f"SELECT part, ticks, sfx, body, ctype, expires FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND (part, ticks, sfx) IN ?",
        "m_keys": f"SELECT part, ticks, sfx, expires FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND (part, ticks, sfx) IN ?",
        "m_count": f"SELECT COUNT(*) FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND expires > ? ALLOW FILTERING",
        "m_delete": f"DELETE FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND part = ? AND ticks = ? AND sfx = ?",
        "m_scan": f"SELECT part, ticks, sfx FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? LIMIT ?",
        "m_delete_upto": f"DELETE FROM {msgs}.messages"
        " WHERE qid = ? AND bucket = ? AND (part, ticks, sfx) <= (?, ?, ?)",
        "m_drop": f"DELETE FROM {msgs}.messages WHERE qid = ? AND bucket = ?",
        "x_insert": f"INSERT INTO {msgs}.expiry (shard, hour, expires, qid, bucket, wid, keys)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "x_read": f"SELECT expires, qid, bucket, wid, keys FROM {msgs}.expiry"
        " WHERE shard = ? AND hour = ? AND expires <= ? LIMIT ?",
        "x_delete_upto": f"DELETE FROM {msgs}.expiry WHERE shard = ? AND hour = ?"
        " AND (expires, qid, bucket, wid) <= (?, ?, ?, ?)",
        "x_drop": f"DELETE FROM {msgs}.expiry WHERE shard = ? AND hour = ?",
        "h_insert": f"INSERT INTO {msgs}.expiry_hours (shard, hour) VALUES (?, ?)",
        "h_read": f"SELECT hour FROM {msgs}.expiry_hours WHERE shard = ? AND hour <= ?",
        "h_delete": f"DELETE FROM {msgs}.expiry_hours WHERE shard = ? AND hour = ?",
        "ping": "SELECT release_version FROM system.local",
    }
    # Reads of one queue partition of a bucket: (descending, cursor kind) -> statement, where
    # the kind is None (no cursor), True (inclusive) or False (exclusive).
    for descending in (False, True):
        order = " ORDER BY part DESC, ticks DESC, sfx DESC" if descending else ""
        for kind in (None, True, False):
            where = ""
            if kind is not None:
                op = ("<" if descending else ">") + ("=" if kind else "")
                where = f" AND (ticks, sfx) {op} (?, ?)"
            statements[f"r_{descending}_{kind}"] = (
                f"SELECT {read_columns} FROM {msgs}.messages"
                f" WHERE qid = ? AND bucket = ? AND part = ?{where} AND expires > ?"
                f"{order} LIMIT ? ALLOW FILTERING"
            )
    return statements


class CassandraStorage:
    name = "cassandra"
    shared = True

    def __init__(self, settings: CassandraSettings, metadata_keyspace: str = "MetadataStore"):
        self.settings = settings
        self.nodes = 1
        self.base_delay = settings.base_delay
        self._meta = f'"{metadata_keyspace}"'
        self._msgs = f'"{settings.keyspace}"'
        self._cluster: Any = None
        self._session: Any = None
        self._prepared: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._levels: dict[str, Any] = {}
        self._known_buckets: set[tuple[int, int]] = set()
        self._known_hours: set[tuple[int, int]] = set()

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
        from cassandra.query import tuple_factory

        from cassandra import ConsistencyLevel

        settings = self.settings
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
            ),
            request_timeout=settings.request_timeout,
            row_factory=tuple_factory,
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
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
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
        self._prepared = {
            key: session.prepare(cql) for key, cql in _statements(self._meta, self._msgs).items()
        }
        for key, prepared in self._prepared.items():
            # Safe to send again to another node when one dies mid-request (the driver does
            # not retry otherwise); lightweight transactions are not.
            prepared.is_idempotent = key not in _NOT_IDEMPOTENT
        self._levels = {name: getattr(ConsistencyLevel, name) for name in _LEVEL_NAMES}
        self.nodes = max(1, len(self._cluster.metadata.all_hosts()))

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

    def _batch(
        self, statements: list[tuple[str, Sequence[Any]]], level: str, logged: bool
    ) -> asyncio.Future[list[_Row]]:
        if len(statements) == 1:
            key, params = statements[0]
            return self._execute(key, params, level)

        def build() -> Any:
            from cassandra.query import BatchStatement, BatchType

            kind = BatchType.LOGGED if logged else BatchType.UNLOGGED
            batch = BatchStatement(batch_type=kind, consistency_level=self._levels[level])
            batch.is_idempotent = True  # rows with fixed keys and values
            for key, params in statements:
                batch.add(self._prepared[key], params)
            return batch

        return self._submit(build, "batch")

    def _submit(self, build: Callable[[], Any], what: str) -> asyncio.Future[list[_Row]]:
        loop = self._loop
        if loop is None:
            raise StorageUnavailable("Back-end storage unavailable: the store is not open.")
        future: asyncio.Future[list[_Row]] = loop.create_future()
        session = self._session
        if session is None:
            future.set_exception(StorageUnavailable("Back-end storage unavailable: closed."))
            return future
        try:
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
        params = (
            app, name, qid, settings.partitions, settings.type, settings.consistency,
            list(settings.principles), now,
        )  # fmt: skip
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
            if not rows or rows[0][3] != "weak":
                raise
        return _queue_of(app, name, rows[0]) if rows else None

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        for _ in range(16):
            current = await self.get_queue(app, name)
            if current is None:
                raise QueueNotFound()
            if settings.partitions < current.partitions:
                raise InvalidUpdate()
            params = (
                settings.partitions, settings.type, settings.consistency,
                list(settings.principles), app, name, current.qid, settings.partitions,
            )  # fmt: skip
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
        rows = await self._execute("q_get", (queue.app, queue.name), level)
        return bool(rows) and rows[0][0] == queue.qid

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        level = self._levels_of(queue)[0]
        alive, buckets = await asyncio.gather(
            self._alive(queue, level), self._execute("b_all", (queue.qid,), level)
        )
        if not alive:
            return 0
        counts = await asyncio.gather(
            *(self._execute("m_count", (queue.qid, b, now_ms), level) for (b,) in buckets)
        )
        return sum(rows[0][0] for rows in counts if rows)

    # --- messages ----------------------------------------------------------------------------

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False
    ) -> None:
        batch = list(messages)  # all or nothing: take every message before writing any
        read_level, write_level = self._levels_of(queue)
        qid = queue.qid
        by_bucket: dict[int, dict[_Key, Message]] = {}
        for message in batch:
            ticks = message.ticks
            keys = by_bucket.setdefault(ticks >> 32, {})
            key = (message.partition, ticks, sfx_of(message.id))
            if replace or key not in keys:
                keys[key] = message  # within one call the last (replace) or first wins
        checks: list[asyncio.Future[list[_Row]]] = []
        if not replace:  # a message already stored stays as it is
            checks = [
                self._execute("m_keys", (qid, bucket, list(keys)), read_level)
                for bucket, keys in by_bucket.items()
            ]
        alive, existing = await asyncio.gather(
            self._alive(queue, read_level), asyncio.gather(*checks)
        )
        if not alive:
            raise QueueNotFound()
        for bucket, rows in zip(by_bucket, existing, strict=False):
            for part, ticks, sfx, _ in rows:
                by_bucket[bucket].pop((part, ticks, sfx), None)
        by_bucket = {bucket: keys for bucket, keys in by_bucket.items() if keys}
        if not by_bucket:
            return
        statements = self._register(qid, by_bucket) + self._rows(qid, by_bucket)
        # One bucket is one Cassandra partition: there an unlogged batch is atomic and
        # isolated (the registry and index rows in the same request are bookkeeping that the
        # sweep and Cassandra's TTL tolerate missing). Across buckets only the batch log makes
        # the write all or nothing.
        await self._batch(statements, write_level, logged=len(by_bucket) > 1)
        self._remember(qid, by_bucket)

    def _register(
        self, qid: int, by_bucket: dict[int, dict[_Key, Message]]
    ) -> list[tuple[str, Sequence[Any]]]:
        """The bucket and expiry-index rows of a write (bucket and hour rows only the first
        time this process writes them)."""
        shard = qid % INDEX_SHARDS
        writes: list[tuple[str, Sequence[Any]]] = [
            ("b_insert", (qid, bucket))
            for bucket in by_bucket
            if (qid, bucket) not in self._known_buckets
        ]
        hours: set[int] = set()
        for bucket, keys in by_bucket.items():
            groups: dict[int, list[_Key]] = {}
            latest: dict[int, int] = {}
            for key, message in keys.items():
                groups.setdefault(message.expires_ms, []).append(key)
                latest[message.expires_ms] = max(latest.get(message.expires_ms, 0), key[1])
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
        return writes

    def _remember(self, qid: int, by_bucket: dict[int, dict[_Key, Message]]) -> None:
        if len(self._known_buckets) > 100_000:
            self._known_buckets.clear()
        if len(self._known_hours) > 100_000:
            self._known_hours.clear()
        self._known_buckets.update((qid, bucket) for bucket in by_bucket)
        shard = qid % INDEX_SHARDS
        for keys in by_bucket.values():
            self._known_hours.update((shard, m.expires_ms // HOUR_MS) for m in keys.values())

    @staticmethod
    def _rows(
        qid: int, by_bucket: dict[int, dict[_Key, Message]]
    ) -> list[tuple[str, Sequence[Any]]]:
        statements: list[tuple[str, Sequence[Any]]] = []
        for bucket, keys in by_bucket.items():
            parts = {part for part, _, _ in keys}
            if len(parts) > 1:  # readers of several partitions notice this write
                statements.append(("m_mark", (_unique(), qid, bucket)))
            for (part, ticks, sfx), m in keys.items():
                ttl = message_ttl(m.expires_ms, ticks)
                params = (qid, bucket, part, ticks, sfx, m.expires_ms, m.content_type, m.body, ttl)
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
                params += [now_ms, limit - len(found[part])]
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
            for part, ticks, sfx, body, ctype, expires in rows:
                if expires > now_ms:
                    found[part, ticks, sfx] = _message(part, ticks, sfx, body, ctype, expires)
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

    # --- sweep -------------------------------------------------------------------------------

    async def sweep(self, now_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        removed = 0
        for shard in range(INDEX_SHARDS):
            removed += await self._sweep_expired(shard, now_ms, limit - removed)
            if removed >= limit:
                return removed
        for shard in range(DEAD_SHARDS):
            removed += await self._sweep_dead(shard, limit - removed)
            if removed >= limit:
                return removed
        return removed

    async def _sweep_expired(self, shard: int, now_ms: int, budget: int) -> int:
        """Delete up to ``budget`` expired messages listed in the shard's index, oldest first;
        drop the index rows dealt with (one range deletion) and the hours emptied."""
        level = self._meta_level
        now_hour = now_ms // HOUR_MS
        removed = 0
        for (hour,) in await self._execute("h_read", (shard, now_hour), level):
            while True:
                rows = await self._execute("x_read", (shard, hour, now_ms, INDEX_PAGE), level)
                done: _Row | None = None
                complete = True  # every row read was dealt with
                for expires, qid, bucket, wid, keys in rows:
                    count, finished = await self._reclaim(
                        qid, bucket, keys, now_ms, budget - removed, level
                    )
                    removed += count
                    if not finished:
                        complete = False
                        break
                    done = (expires, qid, bucket, wid)
                last_page = len(rows) < INDEX_PAGE
                if complete and last_page and hour < now_hour:  # the whole hour is past
                    await self._execute("x_drop", (shard, hour), level)
                    await self._execute("h_delete", (shard, hour), level)
                elif done is not None:
                    await self._execute("x_delete_upto", (shard, hour, *done), level)
                if not complete:
                    return removed  # the budget ran out
                if last_page:
                    break
        return removed

    async def _reclaim(
        self, qid: int, bucket: int, keys: Sequence[_Key], now_ms: int, budget: int, level: str
    ) -> tuple[int, bool]:
        """Delete up to ``budget`` of the listed messages that are still there and expired;
        how many, and whether none is left."""
        removed = 0
        for start in range(0, len(keys), INDEX_PAGE):
            if removed >= budget:
                return removed, False
            chunk = list(keys[start : start + INDEX_PAGE])
            present = await self._execute("m_keys", (qid, bucket, chunk), level)
            dead = [
                (part, ticks, sfx) for part, ticks, sfx, expires in present if expires <= now_ms
            ]
            take = dead[: budget - removed]
            if take:
                deletes: list[tuple[str, Sequence[Any]]] = [
                    ("m_delete", (qid, bucket, *key)) for key in take
                ]
                await self._batch(deletes, level, logged=False)
                removed += len(take)
            if len(take) < len(dead):
                return removed, False
        return removed, True

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
            await self._execute("d_delete", (shard, qid), level)
        return removed


_NOT_IDEMPOTENT = frozenset({"q_create", "q_update", "q_delete"})
_LEVEL_NAMES = ("ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL")


# Unique values for index rows and marks: a random 64-bit prefix per process and a counter
# (os.urandom for every write cost ~10% of a single-message post, waiting for the GIL).
_UNIQUE_PREFIX = secrets.randbits(64) << 64
_UNIQUE_COUNTER = itertools.count()


def _unique() -> uuid.UUID:
    return uuid.UUID(int=_UNIQUE_PREFIX | next(_UNIQUE_COUNTER) & 0xFFFFFFFFFFFFFFFF)


def _resolve(future: asyncio.Future[list[_Row]], rows: list[_Row]) -> None:
    if not future.done():
        future.set_result(rows)


def _reject(future: asyncio.Future[list[_Row]], exc: BaseException, what: str) -> None:
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


def _is_cas_timeout(error: StorageUnavailable) -> bool:
    cause = error.__cause__
    return type(cause).__name__ == "WriteTimeout" and "CAS" in str(cause)


def _queue_of(app: str, name: str, row: _Row) -> Queue:
    qid, partitions, type_, consistency, principles, created = row
    settings = QueueSettings(
        partitions=partitions,
        type=type_,
        consistency=consistency,
        principles=tuple(principles or ()),
    )
    return Queue(app=app, name=name, qid=qid, created=created, settings=settings)


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
