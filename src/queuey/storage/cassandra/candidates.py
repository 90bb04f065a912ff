"""Claim candidates that this process has read and not yet handed to a claim: concurrent claims
of one queue share them, each taking different rows, and a queue partition's next rows are read
once for all the claims waiting for them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from queuey.storage.cassandra.rows import Key, Row

FETCH_MAX = 1000  # candidates one read of a queue partition asks for at most
READ_MIN = 100  # rows one read asks for at least: the next claims take the rest
POOL_S = 1.0  # how long rows read stay candidates, on the loop's clock and on the claims'
_PRUNE_ABOVE = 10_000  # queues with pools kept before the stale ones are dropped
_PER_QUEUE = 64  # pools of one queue kept before its stale ones are dropped

Cursor = tuple[int, int, bool]  # (ticks, sfx, inclusive) where a scan of a part goes on
Read = Callable[[Cursor | None, int], Awaitable[list[Row]]]  # (cursor, limit) -> rows


@dataclass(eq=False)
class Pool:
    """The rows of one queue partition of one bucket read by this process's claims (available
    when read, oldest first) that no claim has taken yet, and where the next read goes on."""

    start: Cursor | None  # where its first read started (None: the bucket's first row)
    made_ms: int  # the claims' clock, and the loop's, when it was made
    made_at: float
    cursor: Cursor | None = None
    rows: deque[Row] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wanted: int = 0  # rows asked for by the claims waiting for the read in progress
    read: bool = False  # whether a read has gone past ``start``

    def __post_init__(self) -> None:
        self.cursor = self.start

    def fresh(self, start: Cursor | None, now_ms: int, loop_now: float) -> bool:
        """Whether a claim that starts at ``start`` (its floor) at ``now_ms`` may go on from
        here: the pool is younger than POOL_S and started at the same floor (a floor that
        moved, raised or lowered by any process, starts a new pool)."""
        # (A claim of a slightly earlier time may go on from here: _choose checks each row.)
        young = now_ms - self.made_ms < POOL_S * 1000 and loop_now - self.made_at < POOL_S
        return young and start == self.start

    async def fill(self, need: int, extra: int, read: Read) -> bool:
        """Rows for a claim that needs ``need`` more: the ones another claim's read brought
        meanwhile, else a read (for this claim and the ones waiting for it, plus ``extra``)
        from the cursor on; whether the partition may have more rows past the cursor."""
        self.wanted += need
        try:
            await self.lock.acquire()
        finally:
            self.wanted -= need  # also when the claim is cancelled while it waits
        try:
            if self.rows:
                return True
            fetch = min(max(need + self.wanted, READ_MIN) + (0 if self.read else extra), FETCH_MAX)
            rows = await read(self.cursor, fetch)
            self.read = True
            self.rows.extend(rows)
            if rows:
                self.cursor = (rows[-1][1], rows[-1][2], False)
            return len(rows) >= fetch
        finally:
            self.lock.release()


class Pools:
    """This process's pools, by queue id, then (bucket, queue partition). A pool lasts POOL_S at
    most, and a message this process writes or frees below a pool's cursor drops the pool: the
    next claim reads again from the floor, so messages that became available below it are
    claimed in order. Messages that other processes write or free there are claimed once it
    ends."""

    def __init__(self) -> None:
        self._pools: dict[int, dict[tuple[int, int], Pool]] = {}

    def pool(self, qid: int, bucket: int, part: int, start: Cursor | None, now_ms: int) -> Pool:
        """The pool a claim starting at ``start`` goes on from (a new one if none is fresh)."""
        loop_now = asyncio.get_running_loop().time()
        pools = self._pools.get(qid)
        if pools is None:
            if len(self._pools) > _PRUNE_ABOVE:
                self._prune(loop_now)
            pools = self._pools[qid] = {}
        pool = pools.get((bucket, part))
        if pool is None or not pool.fresh(start, now_ms, loop_now):
            if len(pools) > _PER_QUEUE:
                for key in [k for k, p in pools.items() if loop_now - p.made_at >= POOL_S]:
                    del pools[key]
            pool = pools[bucket, part] = Pool(start, now_ms, loop_now)
        return pool

    def written(self, qid: int, keys: Iterable[Key]) -> None:
        """Messages of ``qid`` were written or freed at ``keys``: pools past them are dropped."""
        pools = self._pools.get(qid)
        if not pools:
            return
        for part, ticks, sfx in keys:
            key = (ticks >> 32, part)
            pool = pools.get(key)
            if pool is not None and pool.read and (ticks, sfx) <= _at(pool.cursor):
                del pools[key]

    def _prune(self, loop_now: float) -> None:
        """Drop the queues whose pools are all stale."""
        for qid, pools in list(self._pools.items()):
            if all(loop_now - pool.made_at >= POOL_S for pool in pools.values()):
                del self._pools[qid]


def _at(cursor: Cursor | None) -> tuple[int, int]:
    """A cursor's position (the bottom for None)."""
    return (-(1 << 63), -(1 << 63)) if cursor is None else (cursor[0], cursor[1])
