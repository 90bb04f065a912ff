"""Memory and SQLite keep each queue's counts between calls (storage/counts.py): a second stats
or count of an unchanged queue reads no message, and a count kept is never stale, also when
another process sharing the SQLite file wrote, or when a sweep ran with a clock ahead."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.storage.memory import MemoryStorage
from queuey.storage.sqlite.store import SqliteStorage
from tests.contract.test_claims import claim, gen, post, refs, work_queue
from tests.contract.test_counts import clocked_queue, counts
from tests.contract.test_sqlite import opened
from tests.contract.test_storage import APP, make_message, now_ms, read

__all__ = ["gen"]  # the fixture

Kept = MemoryStorage | SqliteStorage


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kept]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    async with opened(tmp_path) as sqlite_store:
        yield sqlite_store


def scans(store: Kept, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records each time ``store`` reads messages to count them (SQLite: each statement on the
    messages table of its read connection; memory: each walk over a queue's messages)."""
    seen: list[object] = []
    if isinstance(store, MemoryStorage):
        walk = store._count

        def counting(*args: Any) -> Any:
            seen.append(args)
            return walk(*args)

        monkeypatch.setattr(store, "_count", counting)
        return seen
    conn = store.reader.connection
    assert conn is not None

    def traced(sql: str) -> None:
        if "FROM messages" in sql:
            seen.append(sql)

    trace: Callable[[str], None] = traced
    conn.set_trace_callback(trace)
    return seen


async def test_a_second_stats_or_count_of_an_unchanged_queue_reads_no_message(
    store: Kept, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store, clock, partitions=5)
    for partition in (1, 2, 3, 4):
        await store.write_messages(queue, [make_message(gen, clock, partition) for _ in range(50)])
    held = await claim(store, queue, clock, 10)
    seen = scans(store, monkeypatch)

    first = await store.queue_stats(queue, now_ms(clock))
    assert len(seen) == 1
    clock.advance(1)  # no lease ends, nothing falls due or expires
    for _ in range(5):
        assert await store.queue_stats(queue, now_ms(clock)) == first
        assert await store.count_messages(queue, now_ms(clock)) == 200

    # Neither reads, nor a claim of nothing, nor an ack of a claim that is not current change
    # anything: still no count.
    await read(store, queue, clock, (1, 2))
    assert await claim(store, queue, clock, 5, partitions=(5,)) == []
    stale = replace(refs(held[:1])[0], token=held[0].token + 1)
    assert await store.ack_messages(queue, [stale], now_ms(clock)) == [False]
    seen.clear()
    assert await store.queue_stats(queue, now_ms(clock)) == first
    assert seen == []

    assert await store.ack_messages(queue, refs(held[:1]), now_ms(clock)) == [True]
    stats = await store.queue_stats(queue, now_ms(clock))
    assert (stats.available, stats.claimed) == (190, 9)
    assert len(seen) == 1


async def test_calls_at_once_share_one_count(
    store: Kept, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store, clock)
    await post(store, queue, gen, clock, 30)
    seen = scans(store, monkeypatch)

    now = now_ms(clock)
    found = await asyncio.gather(
        *(store.queue_stats(queue, now) for _ in range(5)),
        *(store.count_messages(queue, now) for _ in range(5)),
    )

    assert found[5:] == [30] * 5
    assert len(seen) == 1


async def test_a_sweep_with_a_clock_ahead_leaves_no_stale_count(
    store: Kept, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await clocked_queue(store, clock, gen, 1, (1000, 1000, 1000))
    assert await counts(store, queue, clock) == (1, 1, 1, 0, 2)

    # Another process whose clock is 1 s ahead sweeps: the message expired, the lease ended
    # and the delayed message fell due by its clock.
    while await store.sweep(now_ms(clock) + 1000, 100) == 100:
        pass

    clock.advance(0.5)
    stats = await store.queue_stats(queue, now_ms(clock))
    if isinstance(store, SqliteStorage):  # the rows themselves changed
        assert (stats.available, stats.claimed, stats.delayed) == (2, 0, 0)
    else:  # memory keeps due times; it forgets leases and expired messages
        assert (stats.available, stats.claimed, stats.delayed) == (1, 0, 1)


# --- several processes sharing one SQLite file --------------------------------------------------


async def test_counts_follow_another_processs_writes(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as mine, opened(tmp_path) as theirs:
        queue = await work_queue(mine, clock, max_deliveries=1)
        assert await counts(mine, queue, clock) == (0, 0, 0, 0, 0)

        posted = await post(theirs, queue, gen, clock, 5)
        assert await counts(mine, queue, clock) == (5, 0, 0, 0, 5)

        held = await claim(theirs, queue, clock, 3, lease_ms=1000)
        assert await counts(mine, queue, clock) == (2, 3, 0, 0, 5)

        assert await theirs.ack_messages(queue, refs(held[:1]), now_ms(clock)) == [True]
        assert await counts(mine, queue, clock) == (2, 2, 0, 0, 4)

        assert await theirs.extend_claims(queue, refs(held[1:2]), now_ms(clock), 0) == [True]
        assert await counts(mine, queue, clock) == (3, 1, 0, 0, 4)

        clock.advance(1)
        assert await counts(mine, queue, clock) == (4, 0, 0, 0, 4)  # the lease ended
        while await theirs.sweep(now_ms(clock), 100) == 100:  # dead-letters the exhausted
            pass
        assert await counts(mine, queue, clock) == (2, 0, 0, 2, 2)

        await theirs.delete_messages(queue, [(1, posted[3].id)])
        assert await counts(mine, queue, clock) == (1, 0, 0, 2, 1)
        assert await theirs.purge_messages(queue, now_ms(clock)) == 1
        assert await counts(mine, queue, clock) == (0, 0, 0, 2, 0)


async def test_a_file_without_the_change_marker_gains_it(tmp_path: Path, clock: FakeClock) -> None:
    async with opened(tmp_path) as store:
        await work_queue(store, clock)
    with sqlite3.connect(tmp_path / "queuey.db") as conn:
        conn.execute("ALTER TABLE queues DROP COLUMN ver")
    conn.close()

    async with opened(tmp_path) as store:
        queue = await store.get_queue(APP, "work")
        assert queue is not None
        assert await counts(store, queue, clock) == (0, 0, 0, 0, 0)
