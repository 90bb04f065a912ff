"""SqliteStorage: one SQLite file (WAL mode) that several server processes may share.

Reads run on the event loop (:mod:`.reader`); every write is an operation of the group-commit
writer (:mod:`.writer`), planned here and run by :mod:`.queues`, :mod:`.messages`,
:mod:`.claims` or :mod:`.sweep`. docs/storage-sqlite.md explains the design.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from queuey.core.errors import QueueNotFound
from queuey.core.ids import ticks_of
from queuey.core.models import (
    Claim,
    ClaimRef,
    Cursor,
    Message,
    Queue,
    QueueSettings,
    QueueStats,
    new_claim_token,
)
from queuey.core.observer import Observer, Unobserved
from queuey.core.quotas import Usage
from queuey.storage.counts import EMPTY, CountCache, earliest
from queuey.storage.keys import (
    SFX_MIN,
    cursor_position,
    parse_queue_position,
    queue_position,
    sfx_of,
)
from queuey.storage.sqlite import claims as claim_sql
from queuey.storage.sqlite import messages as message_sql
from queuey.storage.sqlite import queues, schema, sweep
from queuey.storage.sqlite.changes import ChangeReader, Key, logged
from queuey.storage.sqlite.claims import ClaimHints
from queuey.storage.sqlite.connection import SYNCHRONOUS, Connector, make_private, unavailable
from queuey.storage.sqlite.messages import InsertPlanner, messages_of
from queuey.storage.sqlite.queues import QueueCache
from queuey.storage.sqlite.reader import SnapshotReader
from queuey.storage.sqlite.writer import GroupWriter

T = TypeVar("T")


class SqliteStorage:
    name = "sqlite"
    nodes = 1
    shared = True
    base_delay = 0

    def __init__(
        self,
        directory: str | Path,
        durability: str = "normal",
        busy_timeout_ms: int = 5000,
        observer: Observer | None = None,
    ) -> None:
        if durability not in SYNCHRONOUS:
            raise ValueError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.directory = Path(directory)
        self.observer: Observer = observer or Unobserved()
        self.path = self.directory / "queuey.db"
        self.durability = durability
        self.busy_timeout_ms = busy_timeout_ms
        self._connect = Connector(self.path, durability)
        self.reader = SnapshotReader()
        # Commits fsync with durability "full": then they run in the writer thread.
        self.writer = GroupWriter(
            self._connect, busy_timeout_ms, durability == "full", self.reader.end_snapshot
        )
        self.hints = ClaimHints()
        self._queues = QueueCache()
        self._planner = InsertPlanner()
        self._changes = ChangeReader()
        self.counts = CountCache()

    @property
    def commits(self) -> int:
        """Transactions committed by this instance's writer (group commit makes it far lower
        than the number of write calls under concurrency)."""
        return self.writer.commits

    # --- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            await self.writer.open(partial(self._prepare, asyncio.get_running_loop()))
        except (sqlite3.Error, OSError) as exc:
            self._close_sync()
            raise unavailable(exc) from exc

    def _prepare(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the writer thread: the schema, then the connections for reads."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.path)
        setup = self._connect(self.busy_timeout_ms)
        try:
            schema.prepare(setup, self.path)
        finally:
            setup.close()
        self.reader.open(self._connect(self.busy_timeout_ms, read_only=True), loop)
        self._changes.open(self._connect(self.busy_timeout_ms, read_only=True, cache_kib=64))

    async def close(self) -> None:
        if self.writer.closed:
            return
        await self.writer.drain()  # every earlier write has finished
        await asyncio.get_running_loop().run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        self.reader.close()
        self._changes.close()
        self.writer.close()

    async def ping(self) -> None:
        self.reader.rows(schema.SQL_VERSION, ())

    # --- queues -----------------------------------------------------------------------------

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        return await self.writer.submit(queues.create_queue, app, name, settings, now)

    async def get_queue(self, app: str, name: str) -> Queue | None:
        rows = self.reader.rows(queues.SQL_GET_QUEUE, (app, name))
        return self._queues.of(rows[0]) if rows else None

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        return await self._changing((app, name), queues.update_queue, app, name, settings)

    async def end_consumers(self, app: str, name: str) -> Queue:
        return await self._changing((app, name), queues.end_consumers, app, name)

    async def delete_queue(self, app: str, name: str) -> bool:
        return await self._changing((app, name), queues.delete_queue, app, name)

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        rows = self.reader.rows(queues.SQL_LIST_QUEUES, (app, offset or "", limit))
        return [self._queues.of(row) for row in rows]

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        rows = self.reader.rows(queues.SQL_LIST_NAMES, (app, offset or "", limit))
        return [row[0] for row in rows]

    async def dead_letter_senders(self, app: str, name: str) -> list[str]:
        return [row[0] for row in self.reader.rows(queues.SQL_SENDERS, (app, name))]

    async def scan_queues(self, after: str | None, limit: int) -> list[tuple[str, Queue]]:
        if after is None:
            rows = self.reader.rows(queues.SQL_SCAN_QUEUES[0], (limit,))
        else:
            app, name = parse_queue_position(after)
            rows = self.reader.rows(queues.SQL_SCAN_QUEUES[1], (app, name, limit))
        found = [queues.queue_of(row) for row in rows]  # not kept: a scan meets each once
        return [(queue_position(queue.app, queue.name), queue) for queue in found]

    # --- messages ---------------------------------------------------------------------------

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False, fresh: bool = False
    ) -> None:
        qid = queue.qid
        if any(m.due_ms or m.deliveries for m in messages):
            rows = self._planner.full_rows(qid, messages)
            low = min(row[2] for row in rows)
            sql = message_sql.SQL_INSERT_FULL[replace]
            await self._changing(
                (queue.app, queue.name), message_sql.write_rows, self.hints, qid, sql, rows, low
            )
            return
        statements, low = self._planner.statements(qid, messages, replace)
        await self._changing(
            (queue.app, queue.name), message_sql.write, self.hints, qid, statements, low
        )

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        rows = self._planner.full_rows(queue.qid, messages)
        return await self._changing(
            (queue.app, queue.name),
            message_sql.write_unique,
            self.hints,
            queue.qid,
            rows,
            list(dedup_ids),
            now_ms,
            window_ms,
        )

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        stats = self._stats(queue.qid, now_ms)
        return stats.available + stats.claimed

    async def usage(self, app: str, now_ms: int) -> Usage:
        # In a thread, on a connection of its own: the scan reads every live message's body.
        return await asyncio.get_running_loop().run_in_executor(None, self._usage, app, now_ms)

    def _usage(self, app: str, now_ms: int) -> Usage:
        try:
            conn = self._connect(self.busy_timeout_ms, read_only=True, cache_kib=1024)
            try:
                [(messages, size)] = conn.execute(message_sql.SQL_USAGE, (app, now_ms)).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise unavailable(exc) from exc
        return Usage(int(messages), int(size))

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
            sql = message_sql.SQL_READ[descending, None]
            many = [(qid, p, now_ms, limit) for p in partitions if 1 <= p <= top]
        else:
            sfx, inclusive = cursor_position(cursor, descending)
            sql = message_sql.SQL_READ[descending, inclusive]
            at = cursor.ticks
            many = [(qid, p, at, sfx, now_ms, limit) for p in partitions if 1 <= p <= top]
        return messages_of(self.reader.rows_of_each(sql, many)) if many else []

    async def scan_messages(
        self,
        queue: Queue,
        partition: int,
        after: tuple[int, str] | None,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        if not 1 <= partition <= queue.partitions or limit <= 0:
            return []
        ticks, sfx = (after[0], sfx_of(after[1])) if after is not None else (-1, SFX_MIN)
        params = (queue.qid, partition, ticks, sfx, now_ms, limit)
        return message_sql.scanned_of(self.reader.rows(message_sql.SQL_SCAN, params))

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        many = self._keys(queue, ids, now_ms)
        return messages_of(self.reader.rows_of_each(message_sql.SQL_GET, many)) if many else []

    async def purge_messages(self, queue: Queue, now_ms: int) -> int:
        return await self.writer.submit(message_sql.purge, queue.qid, now_ms)

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        rows = self._keys(queue, ids)
        if rows:
            await self.writer.submit(message_sql.delete, rows)

    @staticmethod
    def _keys(queue: Queue, ids: Sequence[tuple[int, str]], *after: int) -> list[tuple[int, ...]]:
        """(qid, partition, ticks, sfx, *after) of each id that can be one (the others match
        nothing)."""
        keys = []
        for partition, message_id in ids:
            ticks = ticks_of(message_id)
            if ticks is not None:
                keys.append((queue.qid, partition, ticks, sfx_of(message_id), *after))
        return keys

    # --- claims -----------------------------------------------------------------------------

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
        token = new_claim_token()
        expires_ms = now_ms + lease_ms
        rows = await self.writer.submit(
            claim_sql.claim,
            self.hints,
            self.observer,
            queue.qid,
            wanted,
            limit,
            now_ms,
            token,
            expires_ms,
            remove,
        )
        return claim_sql.claims_of(rows, token, expires_ms)

    async def ack_messages(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> list[bool]:
        return await self._settle(queue, claims, claim_sql.SQL_ACK, [], now_ms)

    async def current_claims(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        found: list[ClaimRef | None] = []
        for partition, message_id in ids:
            keys = self._keys(queue, [(partition, message_id)], now_ms)
            rows = self.reader.rows(claim_sql.SQL_CURRENT_CLAIM, keys[0]) if keys else []
            found.append(ClaimRef(partition, message_id, rows[0][0]) if rows else None)
        return found

    async def extend_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int, lease_ms: int
    ) -> list[bool]:
        # A release (lease 0) ends the lease now: the message is available at once.
        head = [now_ms + lease_ms]
        return await self._settle(queue, claims, claim_sql.SQL_EXTEND, head, now_ms, lease_ms == 0)

    async def unclaim_messages(
        self, queue: Queue, claims: Sequence[Claim], now_ms: int, removed: bool
    ) -> list[bool]:
        if removed:
            try:
                await self.write_messages(queue, [claim.unclaimed() for claim in claims])
            except QueueNotFound:
                return [False] * len(claims)
            return [True] * len(claims)
        refs = [claim.ref for claim in claims]
        return await self._settle(queue, refs, claim_sql.SQL_UNCLAIM, [], now_ms, freed=True)

    async def _settle(
        self,
        queue: Queue,
        claims: Sequence[ClaimRef],
        sql: str,
        head: list[Any],
        now_ms: int,
        freed: bool = False,
    ) -> list[bool]:
        """Run ``sql`` (ack, extend or unclaim) on each claim; whether each was current.
        ``freed``: the messages become available at once (a release or an un-claim)."""
        if not claims:
            return []
        rows = claim_sql.claim_refs(queue, claims)
        args = (claim_sql.settle, self.hints, sql, head, rows, now_ms)
        if freed:  # available again: waiting claims of every process hear of it
            return await self._changing((queue.app, queue.name), *args)
        return await self.writer.submit(*args)

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        return self._stats(queue.qid, now_ms)

    def _stats(self, qid: int, now_ms: int) -> QueueStats:
        """The queue's stats at ``now_ms``: the counts kept since the last time they were
        taken while the queue's change marker and the clock allow (:mod:`..counts`), else
        counted again. The marker and the count are read in one snapshot, and on the event
        loop: two calls at once never count twice for the same marker and time."""
        rows = self.reader.rows(queues.SQL_COUNTED, (qid,))
        if not rows:  # deleted
            return EMPTY
        marker, dead = rows[0]
        stats = self.counts.get(qid, marker, now_ms)
        if stats is None:
            [counts] = self.reader.rows(claim_sql.SQL_STATS, (qid, now_ms))
            available, claimed, delayed, oldest, newest = counts[:5]
            stats = QueueStats(available, claimed, delayed, dead, oldest, newest)
            self.counts.put(qid, marker, now_ms, earliest(counts[5:]), stats)
        return stats

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        times = [
            self.reader.rows(sql, (queue.qid, now_ms))[0][0]
            for sql in (claim_sql.SQL_NEXT_DUE, claim_sql.SQL_NEXT_LEASE)
        ]
        return min((t for t in times if t is not None), default=None)

    # --- the store as a whole ---------------------------------------------------------------

    async def sweep(self, now_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        return await self.writer.submit(sweep.sweep, self.hints, self.observer, now_ms, limit)

    async def changes(self, since: int | None) -> tuple[int, set[Key] | None]:
        return self._changes.changes(since)

    async def _changing(self, key: Key, fn: Callable[..., T], *args: Any) -> T:
        """A write that waiters of queue ``key`` hear of, in every process (:mod:`.changes`)."""
        return await self.writer.submit(logged, key, fn, *args)
