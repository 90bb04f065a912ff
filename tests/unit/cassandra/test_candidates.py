"""Claim candidate pools, through their interface, on reads the test answers (no Cassandra)."""

from __future__ import annotations

import asyncio

from queuey.storage.cassandra.candidates import READ_MIN, Cursor, Pools
from queuey.storage.cassandra.rows import Row

QID, BUCKET, PART = 7, 3, 1
START: Cursor = ((BUCKET << 32) + 10, 0, True)


def row(n: int) -> Row:
    return (PART, (BUCKET << 32) + 100 + n, 0)


class Reads:
    """Answers each read with the next ``limit`` rows of a partition of ``rows`` rows (none for
    the first ``nothing`` reads), once ``gate`` is set; keeps what it was asked."""

    def __init__(self, rows: int) -> None:
        self.rows = [row(n) for n in range(rows)]
        self.asked: list[tuple[Cursor | None, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.nothing = 0  # reads still to answer with no rows

    async def __call__(self, cursor: Cursor | None, limit: int) -> list[Row]:
        self.asked.append((cursor, limit))
        await self.gate.wait()
        if self.nothing:
            self.nothing -= 1
            return []
        after = [r for r in self.rows if cursor is None or r[1:3] > cursor[:2]]
        return after[:limit]


async def test_claims_waiting_for_a_read_take_the_rows_it_brought() -> None:
    pools = Pools()
    pool = pools.pool(QID, BUCKET, PART, START, 1_000)
    reads = Reads(rows=1_000)
    reads.gate.clear()
    first = asyncio.create_task(pool.fill(10, 0, reads))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(pool.fill(60, 0, reads)) for _ in range(3)]
    await asyncio.sleep(0)
    reads.gate.set()
    assert await first and all(await asyncio.gather(*waiting))
    # The first read was for the first claim alone; the rows it brought serve the others.
    assert reads.asked == [(START, READ_MIN)]
    assert list(pool.rows) == reads.rows[:READ_MIN]


async def test_a_read_after_a_wait_is_for_the_claims_still_waiting() -> None:
    pool = Pools().pool(QID, BUCKET, PART, START, 1_000)
    reads = Reads(rows=1_000)
    reads.nothing = 1  # the first read finds nothing yet
    reads.gate.clear()
    first = asyncio.create_task(pool.fill(10, 0, reads))
    await asyncio.sleep(0)
    second = asyncio.create_task(pool.fill(200, 0, reads))
    third = asyncio.create_task(pool.fill(300, 0, reads))
    await asyncio.sleep(0)
    reads.gate.set()
    assert list(await asyncio.gather(first, second, third)) == [False, True, True]
    # The second claim read for itself and the third, which took rows off that read.
    assert reads.asked == [(START, READ_MIN), (START, 500)]
    assert len(pool.rows) == 500


async def test_a_claim_cancelled_while_it_waits_is_not_read_for() -> None:
    pool = Pools().pool(QID, BUCKET, PART, START, 1_000)
    reads = Reads(rows=1_000)
    reads.gate.clear()
    first = asyncio.create_task(pool.fill(10, 0, reads))
    await asyncio.sleep(0)
    gone = asyncio.create_task(pool.fill(500, 0, reads))
    await asyncio.sleep(0)
    gone.cancel()
    reads.gate.set()
    await first
    assert pool.wanted == 0
    pool.rows.clear()
    await pool.fill(10, 0, reads)
    assert reads.asked[-1][1] == READ_MIN  # not 510


async def test_a_pool_ends_with_time_a_moved_floor_or_a_write_below_its_cursor() -> None:
    pools = Pools()
    pool = pools.pool(QID, BUCKET, PART, START, 1_000)
    await pool.fill(10, 0, Reads(rows=50))
    assert pools.pool(QID, BUCKET, PART, START, 1_500) is pool
    assert pools.pool(QID, BUCKET, PART, START, 2_000) is not pool  # a second later
    pool = pools.pool(QID, BUCKET, PART, START, 2_000)
    raised: Cursor = (START[0] + 5, 0, True)
    assert pools.pool(QID, BUCKET, PART, raised, 2_000) is not pool
    pool = pools.pool(QID, BUCKET, PART, raised, 2_000)
    await pool.fill(10, 0, Reads(rows=50))
    cursor = pool.cursor
    assert cursor is not None
    pools.written(QID, [(PART, cursor[0] + 1, 0)])  # past the cursor: the next read finds it
    assert pools.pool(QID, BUCKET, PART, raised, 2_000) is pool
    pools.written(QID, [(PART, cursor[0] - 1, 0)])  # below it: read again from the floor
    assert pools.pool(QID, BUCKET, PART, raised, 2_000) is not pool
