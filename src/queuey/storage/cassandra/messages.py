"""Messages: writes (one batch with their bookkeeping rows), reads over a queue's time
buckets, and the counts of a queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from typing import Any

from queuey.core.errors import QueueNotFound, StorageUnavailable
from queuey.core.models import Cursor, Message, Queue, QueueStats
from queuey.core.quotas import Usage
from queuey.storage.cassandra.changes import ChangeLog
from queuey.storage.cassandra.coalescer import Coalescer
from queuey.storage.cassandra.floors import Floors
from queuey.storage.cassandra.index import ExpiryIndex
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.rows import (
    ByBucket,
    Key,
    Uniques,
    by_bucket,
    keys_in_order,
    message,
    message_ttl,
    messages_of,
)
from queuey.storage.cassandra.session import Session, Statements, too_large
from queuey.storage.counts import earliest
from queuey.storage.keys import cursor_position, sfx_of

log = logging.getLogger("queuey.cassandra")

USAGE_PAGE = 1000  # message bodies read at once when an application's usage is measured
BUCKET_PAGE = 32  # buckets asked for at once when a read walks a queue's buckets
FLOOR_SLOW_S = 0.5  # a write that took longer lowers the claim floors below its messages
# Cassandra refuses a batch that spans partitions when its rows hold more than
# batch_size_fail_threshold (50 KiB by default); a batch of one partition is never refused for
# its size. A write whose messages hold more than BATCH_BYTES is not sent with rows of other
# partitions (Messages._write_apart); one refused all the same (a node configured lower than
# that) is sent again that way.
BATCH_BYTES = 48 * 1024
# What Cassandra counts for a message row besides its body and content type (229 bytes on
# Cassandra 5: its clustering key, cells with their timestamps and TTLs, fixed-size values),
# with its key in an expiry-index row (36 bytes); and for each bookkeeping row.
ROW_BYTES = 272
BOOKKEEPING_BYTES = 256
_MARK_RETRIES = 4
_TOP, _BOTTOM = (1 << 63) - 1, -(1 << 63)

ClaimState = tuple[int, int, int]  # (dlv, ctok, cexp)
Position = tuple[int, int, bool]  # (ticks, sfx, inclusive)


class Messages:
    def __init__(
        self,
        session: Session,
        queues: Queues,
        index: ExpiryIndex,
        floors: Floors,
        changes: ChangeLog,
    ) -> None:
        self._session = session
        self._queues = queues
        self._index = index
        self._floors = floors
        self._changes = changes
        self._coalescer = Coalescer(session)

    async def write(
        self, queue: Queue, messages: Sequence[Message], replace: bool, fresh: bool
    ) -> None:
        """Write ``messages`` (all or nothing), their bucket, index and wake-up rows in one
        batch; a message already stored stays (``replace``: is replaced, keeping its claim).
        Nothing is read first when their ids are ``fresh`` (just made, so none is stored) and
        this process's copy of the queue is fresh: a post is then one request."""
        read_level, write_level = self._session.levels_of(queue)
        qid = queue.qid
        started = asyncio.get_running_loop().time()
        wanted = _by_key(messages, replace)
        if fresh and not replace:  # the queue's liveness from its fresh copy
            existing: list[list[Any]] = []
            alive = await self._queues.alive(queue, read_level)
        else:
            checks = [
                self._session.execute("m_keys", (qid, bucket, list(keys)), read_level)
                for bucket, keys in wanted.items()
            ]
            alive, existing = await asyncio.gather(
                self._queues.alive(queue, read_level), asyncio.gather(*checks)
            )
        if not alive:
            raise QueueNotFound()
        kept = _stored(wanted, existing, replace)
        wanted = {bucket: keys for bucket, keys in wanted.items() if keys}
        if not wanted:
            return
        bookkeeping = self._index.rows_of(qid, wanted)
        apart = (bookkeeping or len(wanted) > 1) and oversized(wanted.values(), len(bookkeeping))
        # One bucket is one Cassandra partition: there an unlogged batch is atomic and
        # isolated (the registry, index and wake-up rows in the same request are bookkeeping
        # that the sweep and Cassandra's TTL tolerate missing), also with other posts' new
        # rows of that bucket merged in. Across buckets only the batch log makes the write all
        # or nothing. The change row follows (other servers' waiters must find the messages
        # when they read it), without holding the answer.
        try:
            if not apart:
                statements = bookkeeping + insert_statements(qid, wanted, kept, self._index.unique)
                apart = await self._write_together(
                    qid, wanted, statements, fresh and not replace, write_level
                )
            if apart:
                await self._write_apart(qid, wanted, kept, bookkeeping, write_level)
        except StorageUnavailable:
            self._changes.failed(queue.app, queue.name, write_level)
            raise
        self._changes.written(queue.app, queue.name, write_level)
        self._index.written(bookkeeping)
        # Messages that may land below a claim floor: replaced ones (a PUT can create one with
        # an old id, or revive an expired one), those of a slow write, and any below this
        # process's floors.
        slow = asyncio.get_running_loop().time() - started > FLOOR_SLOW_S
        keys = [key for keys in wanted.values() for key in keys]
        await self._floors.lower(qid, keys, write_level, every=replace or slow)

    async def _write_together(
        self, qid: int, wanted: ByBucket, statements: Statements, new: bool, level: str
    ) -> bool:
        """Send a write as one batch (shared with other posts of new messages to its bucket);
        whether it must go apart instead: Cassandra refused the batch for its size, as a node
        configured below BATCH_BYTES does (nothing of it was written)."""
        try:
            if len(wanted) == 1 and new:
                await self._coalescer.write(qid, next(iter(wanted)), level, statements)
            else:
                await self._session.batch(statements, level, logged=len(wanted) > 1)
        except StorageUnavailable as error:
            if not too_large(error):
                raise
            log.warning("Cassandra refused a batch of %d rows for its size", len(statements))
            return True
        return False

    async def _write_apart(
        self,
        qid: int,
        wanted: ByBucket,
        kept: dict[Key, ClaimState],
        bookkeeping: Statements,
        level: str,
    ) -> None:
        """A write too big for a batch that spans partitions: its bucket-registry rows first,
        so that the registry lists a bucket before its messages can be read, then its other
        bookkeeping rows (each by itself, each one partition) and each bucket's messages as
        one unlogged batch of its partition, side by side (atomic and isolated per bucket;
        with several buckets, one that fails leaves the others written)."""
        session, unique = self._session, self._index.unique
        registry = [row for row in bookkeeping if row[0] == "b_insert"]
        others = [row for row in bookkeeping if row[0] != "b_insert"]
        if registry:
            await session.each(registry, level)
        await asyncio.gather(
            session.each(others, level),
            *(
                session.batch(
                    insert_statements(qid, {bucket: keys}, kept, unique), level, logged=False
                )
                for bucket, keys in wanted.items()
            ),
        )

    async def read(
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
        level = self._session.levels_of(queue)[0]
        reader = _Reader(self._session, queue.qid, parts, descending, limit, now_ms, level)
        alive = self._queues.known_alive(queue)
        if alive is None:  # no fresh copy of the queue: its row is read beside the messages
            alive, found = await asyncio.gather(
                self._queues.alive(queue, level), reader.read(cursor)
            )
        elif alive:
            found = await reader.read(cursor)
        if not alive:
            return []
        out: list[Message] = []
        for part in parts:
            out += found.get(part, [])
        return out

    async def scan(
        self,
        queue: Queue,
        part: int,
        after: tuple[int, str] | None,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        """The partition's unexpired messages after (ticks, id) ``after``, bucket by bucket."""
        if not 1 <= part <= queue.partitions or limit <= 0:
            return []
        level = self._session.levels_of(queue)[0]
        if not await self._queues.alive(queue, level):
            return []
        ticks, sfx = (after[0], sfx_of(after[1])) if after is not None else (_BOTTOM, _BOTTOM)
        found: list[Message] = []
        start = ticks >> 32 if after is not None else _BOTTOM
        while len(found) < limit:
            rows = await self._session.execute("b_asc", (queue.qid, start, BUCKET_PAGE), level)
            buckets = [row[0] for row in rows]
            for bucket in buckets:
                while len(found) < limit:
                    params = (queue.qid, bucket, part, ticks, sfx, limit - len(found))
                    rows = await self._session.execute("m_copy", params, level)
                    found += [message(part, *row) for row in rows if row[4] > now_ms]
                    if len(rows) < params[-1]:
                        break
                    ticks, sfx = rows[-1][0], rows[-1][1]
                if len(found) >= limit:
                    break
            if len(buckets) < BUCKET_PAGE:
                break
            start = buckets[-1] + 1
        return found

    async def get(self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int) -> list[Message]:
        ordered = keys_in_order(ids)
        wanted = by_bucket(ordered)
        if not wanted:
            return []
        level = self._session.levels_of(queue)[0]
        reads = asyncio.gather(
            *(
                self._session.execute("m_get", (queue.qid, bucket, keys), level)
                for bucket, keys in wanted.items()
            )
        )
        alive = self._queues.known_alive(queue)
        if alive is None:
            alive, replies = await asyncio.gather(self._queues.alive(queue, level), reads)
        else:
            replies = await reads
        if not alive:
            return []
        found = _live(replies, now_ms)
        return [found[key] for key in ordered if key in found]

    async def delete(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        level = self._session.levels_of(queue)[1]
        await asyncio.gather(
            *(
                self._session.batch(
                    [("m_delete", (queue.qid, bucket, *key)) for key in keys], level, logged=False
                )
                for bucket, keys in by_bucket(keys_in_order(ids)).items()
            )
        )

    async def purge(self, queue: Queue, now_ms: int) -> int:
        """Delete each bucket's partition: its messages and their claims. The count is of the
        unexpired messages seen just before (approximate while posts go on)."""
        session = self._session
        read, write = session.levels_of(queue)
        buckets = [b for (b,) in await session.execute("b_all", (queue.qid,), read)]
        counts = await asyncio.gather(
            *(session.execute("m_count", (queue.qid, b, now_ms, _TOP), read) for b in buckets)
        )
        await asyncio.gather(*(session.execute("m_purge", (queue.qid, b), write) for b in buckets))
        return sum(rows[0][0] for rows in counts if rows)

    async def stored(self, queue: Queue, key: Key) -> bool:
        """Whether the message ``key`` is stored (live or not)."""
        level = self._session.levels_of(queue)[0]
        rows = await self._session.execute("m_keys", (queue.qid, key[1] >> 32, [key]), level)
        return any(row[3] is not None for row in rows)

    async def usage(self, queue: Queue, now_ms: int) -> Usage:
        """The queue's messages expiring after ``now_ms`` and their bodies' bytes: CQL has no
        length function before Cassandra 5.1, so the bodies are read, a page at a time."""
        session = self._session
        level = session.levels_of(queue)[0]
        total = Usage()
        for (bucket,) in await session.execute("b_all", (queue.qid,), level):
            after = (0, _BOTTOM, _BOTTOM)
            while True:
                rows = await session.execute(
                    "m_usage", (queue.qid, bucket, *after, now_ms, USAGE_PAGE), level
                )
                total += Usage.of(row[3] for row in rows)
                if len(rows) < USAGE_PAGE:
                    break
                after = rows[-1][:3]
        return total

    async def stats(self, queue: Queue, now_ms: int) -> tuple[QueueStats, int | None]:
        """The queue's stats at ``now_ms`` (reading every message of it), and the earliest
        time after which they change by the clock alone (None: never)."""
        session = self._session
        level = session.levels_of(queue)[0]
        qid, now = queue.qid, now_ms
        alive, buckets, dead = await asyncio.gather(
            self._queues.alive(queue, level),
            session.execute("b_all", (qid,), level),
            session.execute("dl_count", (qid,), level),
        )
        dead_lettered = dead[0][0] if dead else 0
        if not alive:
            return QueueStats(0, 0, 0, dead_lettered, None, None), None
        queries = []
        for (bucket,) in buckets:
            queries += [
                session.execute("s_available", (qid, bucket, now, now, now), level),
                session.execute("s_claimed", (qid, bucket, now, now, now), level),
                session.execute("s_delayed", (qid, bucket, now, now), level),
            ]
        replies = await asyncio.gather(*queries)
        counts = [0, 0, 0]
        lows: list[int] = []
        highs: list[int] = []
        times: list[int | None] = []
        for index, rows in enumerate(replies):
            row = rows[0]
            counts[index % 3] += row[0]
            if index % 3 < 2:
                times += row[3:]
                if row[1] is not None:
                    lows.append(row[1])
                    highs.append(row[2])
            else:
                times += row[1:]
        available, claimed, delayed = counts
        stats = QueueStats(
            available, claimed, delayed, dead_lettered, min(lows, default=None),
            max(highs, default=None),
        )  # fmt: skip
        return stats, earliest(times)

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        # Lease ends of claims acknowledged since are still listed: a waiter may wake for
        # nothing, never too late.
        level = self._session.levels_of(queue)[0]
        rows = await self._session.execute("w_next", (queue.qid, now_ms), level)
        return int(rows[0][0]) if rows else None


def _by_key(messages: Sequence[Message], replace: bool) -> ByBucket:
    """The messages of a write by bucket and key: within one call the last (``replace``) or
    the first of one key wins."""
    wanted: ByBucket = {}
    end, sfx = "", 0
    for m in messages:
        ticks = m.ticks
        keys = wanted.setdefault(ticks >> 32, {})
        if m.id[16:] != end:  # the ids of one post usually share their last 16 digits
            end, sfx = m.id[16:], sfx_of(m.id)
        key = (m.partition, ticks, sfx)
        if replace or key not in keys:
            keys[key] = m
    return wanted


def _stored(wanted: ByBucket, existing: list[list[Any]], replace: bool) -> dict[Key, ClaimState]:
    """Leave out of ``wanted`` the messages already stored, or (``replace``) the claim state
    that their replacements keep (a claim made between this read and the write is lost: the
    message is delivered again)."""
    kept: dict[Key, ClaimState] = {}
    for bucket, rows in zip(wanted, existing, strict=False):
        for part, ticks, sfx, expires, dlv, ctok, cexp in rows:
            if expires is None:  # claim cells that outlived their message: no message
                continue
            if replace:
                kept[part, ticks, sfx] = (dlv or 0, ctok or 0, cexp or 0)
            else:
                wanted[bucket].pop((part, ticks, sfx), None)
    return kept


def _live(replies: list[list[Any]], now_ms: int) -> dict[Key, Message]:
    """The live (unexpired and due) messages among rows read by ``m_get``."""
    found: dict[Key, Message] = {}
    for rows in replies:
        for part, ticks, sfx, body, ctype, expires, due, dlv in rows:
            if expires is not None and expires > now_ms and (due or 0) <= now_ms:
                found[part, ticks, sfx] = message(part, ticks, sfx, body, ctype, expires, due, dlv)
    return found


def oversized(groups: Collection[dict[Key, Message]], bookkeeping: int = 0) -> bool:
    """Whether the message rows of ``groups``, with ``bookkeeping`` rows, hold more than
    BATCH_BYTES as Cassandra counts them."""
    chars = rows = 0
    try:
        for keys in groups:
            rows += len(keys)
            chars += sum(len(m.body) + len(m.content_type) for m in keys.values())
    except TypeError:  # a value that is not text: the driver refuses it, in its own words
        return False
    fixed = ROW_BYTES * rows + BOOKKEEPING_BYTES * bookkeeping
    if 4 * chars + fixed <= BATCH_BYTES:  # at most 4 bytes a character in UTF-8
        return False
    if chars + fixed > BATCH_BYTES:
        return True
    encoded = sum(
        len(m.body.encode()) + len(m.content_type.encode())
        for keys in groups
        for m in keys.values()
    )
    return encoded + fixed > BATCH_BYTES


def insert_statements(
    qid: int, wanted: ByBucket, kept: dict[Key, ClaimState], unique: Uniques
) -> Statements:
    """The INSERTs of messages; the claim columns are always written (0 for a new row, or as
    ``kept``), so conditions and filters on them never meet null."""
    statements: Statements = []
    wall_ms = time.time_ns() // 1_000_000  # one reading for the whole write's TTLs
    for bucket, keys in wanted.items():
        parts = {part for part, _, _ in keys}
        if len(parts) > 1:  # readers of several partitions notice this write
            statements.append(("m_mark", (unique(), qid, bucket)))
        for key, m in keys.items():
            part, ticks, sfx = key
            dlv, ctok, cexp = kept.get(key, (m.deliveries, 0, 0))
            params = (
                qid, bucket, part, ticks, sfx, m.expires_ms, m.content_type, m.body,
                m.due_ms, dlv, ctok, cexp, message_ttl(m.expires_ms, ticks, wall_ms),
            )  # fmt: skip
            statements.append(("m_insert", params))
    return statements


class _Reader:
    """One read of several partitions of a queue, bucket after bucket from the cursor's."""

    def __init__(
        self,
        session: Session,
        qid: int,
        parts: list[int],
        descending: bool,
        limit: int,
        now_ms: int,
        level: str,
    ) -> None:
        self._session = session
        self._qid = qid
        self._descending = descending
        self._limit = limit
        self._now_ms = now_ms
        self._level = level
        self.found: dict[int, list[Message]] = {part: [] for part in parts}

    async def read(self, cursor: Cursor | None) -> dict[int, list[Message]]:
        first: int | None = None
        position: Position | None = None
        if cursor is not None:
            sfx, inclusive = cursor_position(cursor, self._descending)
            first, position = cursor.ticks >> 32, (cursor.ticks, sfx, inclusive)
        step = -1 if self._descending else 1
        if first is not None:
            # The cursor's bucket comes first whatever the registry lists: read it at once, and
            # the registry only when it does not hold enough.
            if not await self._walk([first], first, position):
                return self.found
            start = first + step
        else:
            start = _TOP if self._descending else _BOTTOM
        key = "b_desc" if self._descending else "b_asc"
        while True:
            rows = await self._session.execute(key, (self._qid, start, BUCKET_PAGE), self._level)
            buckets = [row[0] for row in rows]
            if not await self._walk(buckets, first, position) or len(buckets) < BUCKET_PAGE:
                return self.found
            start = buckets[-1] + step

    async def _walk(self, buckets: list[int], first: int | None, position: Position | None) -> bool:
        """Read ``buckets`` in turn (from ``position`` in the cursor's bucket ``first``);
        whether more messages are wanted."""
        for bucket in buckets:
            active = [part for part, got in self.found.items() if len(got) < self._limit]
            if not active:
                return False
            replies = await self._bucket(bucket, active, position if bucket == first else None)
            for part, messages in replies.items():
                self.found[part] += messages
        return any(len(got) < self._limit for got in self.found.values())

    async def _bucket(
        self, bucket: int, parts: list[int], position: Position | None
    ) -> dict[int, list[Message]]:
        """The messages of ``parts`` in one bucket; with several parts, as of one moment with
        respect to writes that span parts (the static ``mark`` is the same before and after)."""
        several = len(parts) > 1
        result: dict[int, list[Message]] = {}
        for _ in range(_MARK_RETRIES):
            before = await self._mark(bucket) if several else None
            result = await self._slices(bucket, parts, position)
            if not several or await self._mark(bucket) == before:
                return result
        log.debug("read of %d partitions kept racing writes; answering the last one", len(parts))
        return result

    async def _slices(
        self, bucket: int, parts: list[int], position: Position | None
    ) -> dict[int, list[Message]]:
        kind = None if position is None else position[2]
        key = f"r_{self._descending}_{kind}"
        queries = []
        for part in parts:
            params: list[Any] = [self._qid, bucket, part]
            if position is not None:
                params += position[:2]
            params += [self._now_ms, self._now_ms, self._limit - len(self.found[part])]
            queries.append(self._session.execute(key, params, self._level))
        # One partition (most reads) is awaited by itself: no gathering future to make.
        replies = [await queries[0]] if len(queries) == 1 else await asyncio.gather(*queries)
        return {part: messages_of(part, rows) for part, rows in zip(parts, replies, strict=True)}

    async def _mark(self, bucket: int) -> object:
        rows = await self._session.execute("m_mark_read", (self._qid, bucket), self._level)
        return rows[0][0] if rows else None
