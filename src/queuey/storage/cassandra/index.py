"""The bookkeeping rows of a write: the queue's bucket registry, the expiry index the sweep
reads (with its hour list) and the wake-up times of delayed messages and leases."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from functools import partial

from queuey.core.models import Queue
from queuey.storage.cassandra.rows import (
    ByBucket,
    Key,
    Row,
    Uniques,
    index_ttl,
    ticks_ms,
    ttl_until,
)
from queuey.storage.cassandra.schema import HOUR_MS, INDEX_SHARDS
from queuey.storage.cassandra.session import Session, Statements

_REMEMBERED = 100_000  # bucket and hour rows this process remembers having written
LEASE_BATCH = 32  # claims whose lease rows go in one batch at most (well under 50 KiB)


class ExpiryIndex:
    """Writes the index rows of messages and leases. Each process writes a bucket's and an
    hour's row once (it remembers the ones it wrote)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._buckets: set[tuple[int, int]] = set()  # (qid, bucket)
        self._hours: set[tuple[int, int]] = set()  # (shard, hour)
        self.unique = Uniques()  # the index rows' own ids, and the marks of writes
        self._pending: dict[str, _Pending] = {}  # by write level: lease rows to send next

    def rows_of(self, qid: int, by_bucket: ByBucket) -> Statements:
        """The bucket, expiry-index and wake-up rows of a write (bucket and hour rows only the
        first time this process writes them)."""
        shard = qid % INDEX_SHARDS
        wall_ms = time.time_ns() // 1_000_000  # Cassandra counts the rows' TTLs on the wall
        writes: Statements = [
            ("b_insert", (qid, bucket))
            for bucket in by_bucket
            if (qid, bucket) not in self._buckets
        ]
        hours: set[int] = set()
        dues: dict[int, int] = {}
        for bucket, keys in by_bucket.items():
            groups: dict[int, list[Key]] = {}
            latest: dict[int, int] = {}
            for key, message in keys.items():
                groups.setdefault(message.expires_ms, []).append(key)
                latest[message.expires_ms] = max(latest.get(message.expires_ms, 0), key[1])
                if message.due_ms > 0:
                    dues[message.due_ms] = min(dues.get(message.due_ms, key[1]), key[1])
            for expires, group in groups.items():
                ttl = index_ttl(expires, latest[expires])
                if wall_ms + ttl * 1000 <= expires:
                    continue  # gone before its messages expire: no sweep could ever read it
                hour = expires // HOUR_MS
                hours.add(hour)
                writes.append(
                    ("x_insert", (shard, hour, expires, qid, bucket, self.unique(), group, ttl))
                )
        writes += [
            ("h_insert", (shard, hour)) for hour in hours if (shard, hour) not in self._hours
        ]
        writes += [
            ("w_insert", (qid, due, ttl_until(due, ticks_ms(ticks)))) for due, ticks in dues.items()
        ]
        return writes

    def written(self, statements: Statements) -> None:
        """``statements`` (with rows of :meth:`rows_of`) were written: remember their bucket
        and hour rows."""
        if len(self._buckets) > _REMEMBERED:
            self._buckets.clear()
        if len(self._hours) > _REMEMBERED:
            self._hours.clear()
        for key, params in statements:
            if key == "b_insert":
                self._buckets.add((params[0], params[1]))
            elif key == "h_insert":
                self._hours.add((params[0], params[1]))

    async def lease(
        self,
        queue: Queue,
        token: int,
        cexp: int,
        leased: dict[int, list[tuple[Key, int]]],
        now_ms: int,
    ) -> None:
        """Index the leases of one claim (``leased``: bucket -> (key, message expiry)): where
        the sweep finds them when they end (rows of the expiry index with the claim's token, at
        ``cexp``) and the queue's wake-up time."""
        session = self._session
        qid = queue.qid
        level = session.levels_of(queue)[1]
        shard, hour = qid % INDEX_SHARDS, cexp // HOUR_MS
        wid = uuid.UUID(int=token)
        writes: Statements = []
        for bucket, items in leased.items():
            keys = [key for key, _ in items]
            ttl = ttl_until(max(expires for _, expires in items), now_ms)
            params = (shard, hour, cexp, qid, bucket, wid, keys, token, queue.app, queue.name, ttl)
            writes.append(("x_lease", params))
        if (shard, hour) not in self._hours:
            writes.append(("h_insert", (shard, hour)))
        if cexp > now_ms:
            writes.append(("w_insert", (qid, cexp, ttl_until(cexp, now_ms))))
        await self._send(writes, level)
        if len(self._hours) > _REMEMBERED:
            self._hours.clear()
        self._hours.add((shard, hour))

    async def _send(self, writes: Statements, level: str) -> None:
        """Send the rows of one claim's leases with those of the claims that index theirs in
        the same turn of the event loop: bookkeeping rows with fixed keys and values, one
        unlogged batch (one request) for up to LEASE_BATCH claims."""
        pending = self._pending.get(level)
        if pending is None or pending.claims >= LEASE_BATCH:
            loop = asyncio.get_running_loop()
            pending = self._pending[level] = _Pending(loop.create_future())
            pending.sent.add_done_callback(_retrieved)  # its waiters may all have been cancelled
            loop.call_soon(self._flush, level, pending)
        pending.statements += writes
        pending.claims += 1
        await asyncio.shield(pending.sent)

    def _flush(self, level: str, pending: _Pending) -> None:
        if self._pending.get(level) is pending:
            del self._pending[level]
        batch = self._session.batch(pending.statements, level, logged=False)
        batch.add_done_callback(partial(_settle, pending.sent))


@dataclass(eq=False)
class _Pending:
    """The lease rows of the claims that send theirs next, and how the sending ends."""

    sent: asyncio.Future[None]
    statements: Statements = field(default_factory=list)
    claims: int = 0


def _settle(sent: asyncio.Future[None], batch: asyncio.Future[list[Row]]) -> None:
    if batch.cancelled():
        sent.cancel()
        return
    error = batch.exception()
    if error is None:
        sent.set_result(None)
    else:
        sent.set_exception(error)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
