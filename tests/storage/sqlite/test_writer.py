"""GroupWriter through its own interface: operations on a table of numbers, nothing of queues.

Failures are real: a lock held by another connection and a value the driver cannot bind make
SQLite itself fail; nothing is stubbed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest

from queuey.core.errors import QueueNotFound, StorageUnavailable
from queuey.storage.sqlite.connection import Connector
from queuey.storage.sqlite.writer import GroupWriter, savepoint


def database(directory: Path) -> Path:
    return directory / "numbers.db"


def raw(directory: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own, as another program would."""
    with closing(sqlite3.connect(database(directory), isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


def stored(directory: Path) -> list[int]:
    return [row[0] for row in raw(directory, "SELECT n FROM numbers ORDER BY n")]


@asynccontextmanager
async def opened(
    directory: Path,
    busy_timeout_ms: int = 5000,
    commit_in_thread: bool = False,
    end_reads: Callable[[], None] = lambda: None,
) -> AsyncIterator[GroupWriter]:
    def prepare() -> None:
        raw(directory, "PRAGMA journal_mode = WAL")
        raw(directory, "CREATE TABLE IF NOT EXISTS numbers (n INTEGER PRIMARY KEY)")

    connect = Connector(database(directory), "full" if commit_in_thread else "normal")
    writer = GroupWriter(connect, busy_timeout_ms, commit_in_thread, end_reads)
    await writer.open(prepare)
    try:
        yield writer
    finally:
        await writer.drain()
        await asyncio.get_running_loop().run_in_executor(None, writer.close)


def insert(conn: sqlite3.Connection, scratch: dict[Any, Any], *numbers: Any) -> int:
    """Insert numbers, all or none; how many."""
    with savepoint(conn):
        conn.executemany("INSERT INTO numbers (n) VALUES (?)", [(n,) for n in numbers])
    return len(numbers)


def refuse(conn: sqlite3.Connection, scratch: dict[Any, Any]) -> None:
    raise QueueNotFound()


def break_transaction(conn: sqlite3.Connection, scratch: dict[Any, Any]) -> None:
    conn.execute("INSERT INTO no_such_table VALUES (1)")


def remember(conn: sqlite3.Connection, scratch: dict[Any, Any], key: str) -> int:
    """How many operations of this group ran this one before."""
    scratch[key] = scratch.get(key, 0) + 1
    return int(scratch[key])


async def test_operations_of_one_loop_iteration_share_one_commit(tmp_path: Path) -> None:
    async with opened(tmp_path) as writer:
        before = writer.commits
        results = await asyncio.gather(*(writer.submit(insert, n, n + 100) for n in range(50)))
        assert results == [2] * 50
        assert writer.commits - before == 1
    assert stored(tmp_path) == sorted([*range(50), *range(100, 150)])


async def test_operations_arriving_during_a_group_form_the_next_one(tmp_path: Path) -> None:
    async with opened(tmp_path, commit_in_thread=True) as writer:
        before = writer.commits

        async def caller(start: int) -> None:
            for n in range(start, start + 10):
                await writer.submit(insert, n)

        await asyncio.gather(*(caller(start) for start in range(0, 200, 10)))
        assert writer.commits - before < 100
    assert stored(tmp_path) == list(range(200))


async def test_a_failing_operation_leaves_the_others_of_its_group_committed(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path) as writer:
        before = writer.commits
        results = await asyncio.gather(
            writer.submit(insert, 1),
            writer.submit(refuse),
            writer.submit(insert, 2, "\ud800", 3),  # the driver cannot bind a lone surrogate
            writer.submit(insert, 4),
            return_exceptions=True,
        )
        assert writer.commits - before == 1
        assert results[0] == 1 and results[3] == 1
        assert isinstance(results[1], QueueNotFound)
        assert isinstance(results[2], StorageUnavailable)
        assert isinstance(results[2].__cause__, UnicodeEncodeError)
    assert stored(tmp_path) == [1, 4]  # nothing of the operation that failed halfway


async def test_an_sqlite_error_fails_the_whole_group_and_the_next_group_commits(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path) as writer:
        results = await asyncio.gather(
            writer.submit(insert, 1),
            writer.submit(break_transaction),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [StorageUnavailable, StorageUnavailable]
        assert "no such table" in str(results[1])
        assert await writer.submit(insert, 2) == 1
    assert stored(tmp_path) == [2]


async def test_the_scratch_is_shared_within_a_group_and_fresh_for_each(tmp_path: Path) -> None:
    async with opened(tmp_path) as writer:
        first = await asyncio.gather(*(writer.submit(remember, "k") for _ in range(3)))
        second = await writer.submit(remember, "k")
    assert (first, second) == ([1, 2, 3], 1)


async def test_a_lock_held_elsewhere_is_waited_for_off_the_event_loop(tmp_path: Path) -> None:
    async with opened(tmp_path, busy_timeout_ms=10_000) as writer:
        await writer.submit(insert, 1)
        with closing(sqlite3.connect(database(tmp_path), isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            waiting = asyncio.create_task(writer.submit(insert, 2))
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.sleep(0.1)
            assert loop.time() - started < 2  # the loop is not stuck in SQLite
            assert not waiting.done()
            other.execute("COMMIT")
        assert await asyncio.wait_for(waiting, 10) == 1
    assert stored(tmp_path) == [1, 2]


async def test_a_lock_held_past_the_busy_timeout_fails_the_group(tmp_path: Path) -> None:
    async with opened(tmp_path, busy_timeout_ms=200) as writer:
        with closing(sqlite3.connect(database(tmp_path), isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageUnavailable, match="locked"):
                await writer.submit(insert, 1)
            other.execute("ROLLBACK")
        assert await writer.submit(insert, 2) == 1
    assert stored(tmp_path) == [2]


@pytest.mark.parametrize("commit_in_thread", [False, True])
async def test_commit_runs_in_the_writer_thread_only_when_asked(
    tmp_path: Path, commit_in_thread: bool
) -> None:
    async with opened(tmp_path, commit_in_thread=commit_in_thread) as writer:
        conn = writer.connection
        assert conn is not None
        threads: list[int] = []
        conn.set_trace_callback(
            lambda sql: threads.append(threading.get_ident()) if sql == "COMMIT" else None
        )
        await asyncio.gather(*(writer.submit(insert, n) for n in range(3)))
        conn.set_trace_callback(None)
    assert len(threads) == 1
    assert (threads[0] != threading.get_ident()) is commit_in_thread


async def test_reads_are_ended_before_each_group_and_after_its_outcome(tmp_path: Path) -> None:
    events: list[str] = []
    async with opened(tmp_path, end_reads=lambda: events.append("end reads")) as writer:

        def noted(conn: sqlite3.Connection, scratch: dict[Any, Any]) -> None:
            events.append("operation")

        await writer.submit(noted)
    assert events[:3] == ["end reads", "operation", "end reads"]


async def test_drain_finishes_what_was_submitted_then_refuses_more(tmp_path: Path) -> None:
    async with opened(tmp_path) as writer:
        tasks = [asyncio.create_task(writer.submit(insert, n)) for n in range(20)]
        await asyncio.sleep(0)
        await writer.drain()
        assert await asyncio.gather(*tasks) == [1] * 20
        with pytest.raises(StorageUnavailable, match="closed"):
            await writer.submit(insert, 99)
    assert stored(tmp_path) == list(range(20))


async def test_the_wal_is_checkpointed_in_the_background_and_starts_over(tmp_path: Path) -> None:
    async with opened(tmp_path) as writer:
        for n in range(3000):
            await writer.submit(insert, n)
            if n % 300 == 299:
                for _ in range(500):  # let the checkpoint thread catch up
                    if not writer.checkpointing:
                        break
                    await asyncio.sleep(0.01)
        wal = database(tmp_path).with_name("numbers.db-wal")
        assert wal.stat().st_size < 4_000_000  # 3,000 commits that never start it over: 12 MB
    assert len(stored(tmp_path)) == 3000
