"""What SqliteStorage does beyond the shared contract: a file that outlives the process and is
shared by several processes, durability settings, group commit, failures of the disk or of
locks, and the sweep's reclaiming of dead rows.

Failures are real: a lock held by another connection, a full database (``max_page_count``) and
a write refused by the operating system (``RLIMIT_FSIZE``: the file may not grow) make SQLite
itself fail; nothing is stubbed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import signal
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import (
    InvalidUpdate,
    QueueExists,
    QueueNotFound,
    StorageUnavailable,
)
from queuey.core.ids import MAX_TICKS, IdGenerator, ticks_of, uuid1_hex
from queuey.core.models import ClaimRef, Cursor, Message, Queue, QueueSettings
from queuey.storage.base import Storage
from queuey.storage.sqlite import SqliteStorage

APP = "app"
HOUR_MS = 3_600_000


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


def message(gen: IdGenerator, clock: FakeClock, body: str = "b", ttl_ms: int = HOUR_MS) -> Message:
    message_id, ticks = gen.next()
    return Message(message_id, ticks, 1, body, "text/plain", now_ms(clock) + ttl_ms)


def messages(
    gen: IdGenerator, clock: FakeClock, count: int, ttl_ms: int = HOUR_MS
) -> list[Message]:
    return [message(gen, clock, f"m{i}", ttl_ms) for i in range(count)]


@asynccontextmanager
async def opened(directory: Path, **options: Any) -> AsyncIterator[SqliteStorage]:
    store = SqliteStorage(directory, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def raw(directory: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own, as another program would."""
    with closing(sqlite3.connect(directory / "queuey.db", isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


def stored_ids(directory: Path) -> list[str]:
    """Every message row physically in the file, dead or alive (ids are stored as the ticks
    and the last 16 hex digits, as a number minus 2**63)."""
    rows = raw(directory, "SELECT ticks, sfx FROM messages ORDER BY ticks, sfx")
    return [uuid1_hex(ticks, f"{sfx + 2**63:016x}") for ticks, sfx in rows]


async def read_all(store: Storage, queue: Queue, clock: FakeClock) -> list[str]:
    found = await store.read_messages(queue, [1], None, False, 1000, now_ms(clock))
    return [m.id for m in found]


@pytest.fixture
def gen(clock: FakeClock) -> IdGenerator:
    return IdGenerator(clock)


def test_the_back_end_declares_itself_shared_by_processes(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path)
    assert (store.name, store.nodes, store.shared) == ("sqlite", 1, True)


# --- the file -----------------------------------------------------------------------------------


async def test_everything_survives_closing_and_reopening(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    directory = tmp_path / "not" / "yet" / "there"
    settings = QueueSettings(partitions=3, type="public", principles=("app:x", "user:y"))
    written = messages(gen, clock, 5)
    async with opened(directory) as store:
        queue = await store.create_queue(APP, "kept", settings, 1234.5)
        doomed = await store.create_queue(APP, "doomed", QueueSettings(), 1235.0)
        await store.write_messages(queue, written)
        assert await store.delete_queue(APP, "doomed")

    async with opened(directory) as store:
        assert await store.get_queue(APP, "kept") == queue
        assert await store.get_queue(APP, "doomed") is None
        assert await read_all(store, queue, clock) == [m.id for m in written]
        got = await store.read_messages(queue, [1], None, False, 10, now_ms(clock))
        assert got == written
        # qids are never reused, not even the highest one after its queue was deleted.
        again = await store.create_queue(APP, "doomed", QueueSettings(), 1236.0)
        assert again.qid > doomed.qid > queue.qid


async def test_the_database_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    async with opened(tmp_path):
        pass
    assert raw(tmp_path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(tmp_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]


async def test_a_database_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    async with opened(tmp_path):
        pass
    raw(tmp_path, "UPDATE meta SET value = '999' WHERE key = 'schema_version'")

    store = SqliteStorage(tmp_path)
    with pytest.raises(StorageUnavailable, match="schema version 999"):
        await store.open()
    await store.close()


async def test_a_database_of_the_unreleased_schema_1_is_refused_with_what_to_do(
    tmp_path: Path,
) -> None:
    # Schema 1 stored ids as text; it was never released, so there is no conversion.
    raw(tmp_path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    raw(tmp_path, "INSERT INTO meta VALUES ('schema_version', '1')")
    raw(tmp_path, "CREATE TABLE messages (rid INTEGER PRIMARY KEY, id TEXT NOT NULL)")

    store = SqliteStorage(tmp_path)
    with pytest.raises(StorageUnavailable, match="schema version 1.*move the file away"):
        await store.open()
    await store.close()
    assert raw(tmp_path, "SELECT value FROM meta") == [("1",)]  # left as it was
    assert raw(tmp_path, "SELECT name FROM sqlite_master WHERE name = 'queues'") == []


# The schema of version 2 (the first release), as it created its tables.
_SCHEMA_V2 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE queues (qid INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL,"
    " name TEXT NOT NULL, partitions INTEGER NOT NULL, type TEXT NOT NULL,"
    " consistency TEXT NOT NULL, principles TEXT NOT NULL, created REAL NOT NULL,"
    " UNIQUE (app, name))",
    "CREATE TABLE messages (rid INTEGER PRIMARY KEY, qid INTEGER NOT NULL,"
    " part INTEGER NOT NULL, ticks INTEGER NOT NULL, sfx INTEGER NOT NULL,"
    " expires INTEGER NOT NULL, ctype TEXT NOT NULL, body TEXT NOT NULL,"
    " UNIQUE (qid, part, ticks, sfx))",
    "CREATE INDEX messages_expires ON messages (expires)",
    "CREATE TABLE dead_queues (qid INTEGER PRIMARY KEY)",
    "INSERT INTO meta VALUES ('schema_version', '2')",
)


async def test_a_database_of_schema_2_gains_the_work_queue_columns_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    gen = IdGenerator(clock)
    old = message(gen, clock, "from version 2")
    for statement in _SCHEMA_V2:
        raw(tmp_path, statement)
    raw(tmp_path, "INSERT INTO queues VALUES (7, 'app', 'q', 2, 'public', 'weak', 'app:x', 5.0)")
    sfx = int(old.id[16:], 16) - (1 << 63)
    raw(
        tmp_path,
        f"INSERT INTO messages VALUES (1, 7, 1, {old.ticks}, {sfx}, {old.expires_ms},"
        " 'text/plain', 'from version 2')",
    )

    async with opened(tmp_path) as store:
        queue = await store.get_queue(APP, "q")
        assert queue is not None
        assert queue.settings == QueueSettings(
            partitions=2, type="public", consistency="weak", principles=("app:x",)
        )
        now = now_ms(clock)
        assert [m.id for m in await store.read_messages(queue, [1], None, False, 10, now)] == [
            old.id
        ]
        [claim] = await store.claim_messages(queue, [1], 1, now, 1000, False)
        assert (claim.message.id, claim.message.deliveries) == (old.id, 1)
    assert raw(tmp_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]


async def test_a_database_made_before_the_end_marker_gains_it_and_keeps_its_queues(
    tmp_path: Path,
) -> None:
    settings = QueueSettings(partitions=2, policy="roundrobin", paused=True)
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", settings, 5.0)
    raw(tmp_path, "ALTER TABLE queues DROP COLUMN end_marker")  # as the previous schema made it

    async with opened(tmp_path) as store:
        assert await store.get_queue(APP, "q") == queue
        ended = await store.end_consumers(APP, "q")
        assert ended == dataclasses.replace(queue, end_marker=1)
    assert raw(tmp_path, "SELECT end_marker FROM queues") == [(1,)]


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
async def test_durability_sets_pragma_synchronous(
    tmp_path: Path, durability: str, level: int
) -> None:
    async with opened(tmp_path, durability=durability) as store:
        for conn in (store.writer.connection, store.reader.connection):
            assert conn is not None
            assert conn.execute("PRAGMA synchronous").fetchall() == [(level,)]


@pytest.mark.parametrize("durability", ["", "NORMAL", "off", "fsync"])
def test_an_unknown_durability_is_refused(tmp_path: Path, durability: str) -> None:
    with pytest.raises(ValueError, match="durability"):
        SqliteStorage(tmp_path, durability=durability)


async def test_operations_after_close_raise_storage_unavailable(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
    with pytest.raises(StorageUnavailable):
        await store.write_messages(queue, [message(gen, clock)])
    with pytest.raises(StorageUnavailable):
        await store.get_queue(APP, "q")
    with pytest.raises(StorageUnavailable):
        await store.ping()


async def test_close_finishes_the_writes_already_issued(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    written = messages(gen, clock, 50)
    store = SqliteStorage(tmp_path)
    await store.open()
    queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
    tasks = [asyncio.create_task(store.write_messages(queue, [m])) for m in written]

    await store.close()

    await asyncio.gather(*tasks)  # every one was acknowledged
    assert stored_ids(tmp_path) == [m.id for m in written]


# --- several instances (several processes) on one file ------------------------------------------


async def test_consumers_ended_through_one_instance_show_through_another_at_once(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path) as one, opened(tmp_path) as two:
        await one.create_queue(APP, "q", QueueSettings(), 1.0)
        assert await two.get_queue(APP, "q") is not None
        ended = await one.end_consumers(APP, "q")
        assert await two.get_queue(APP, "q") == ended
        again = await two.end_consumers(APP, "q")
        assert again.end_marker == ended.end_marker + 1
        assert await one.get_queue(APP, "q") == again


async def test_two_instances_see_each_others_writes(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as one, opened(tmp_path) as two:
        queue = await one.create_queue(APP, "q", QueueSettings(partitions=2), 1.0)
        assert await two.get_queue(APP, "q") == queue
        first, second = message(gen, clock), message(gen, clock)
        await two.write_messages(queue, [first])
        await one.write_messages(queue, [second])

        for store in (one, two):
            assert await read_all(store, queue, clock) == [first.id, second.id]
        updated = await two.update_queue(APP, "q", QueueSettings(partitions=5))
        assert await one.get_queue(APP, "q") == updated
        assert [q.name for q in await one.list_queues(APP, None, 10)] == ["q"]


async def test_a_create_race_between_instances_has_exactly_one_winner(tmp_path: Path) -> None:
    async with opened(tmp_path) as one, opened(tmp_path) as two:
        results = await asyncio.gather(
            one.create_queue(APP, "race", QueueSettings(), 1.0),
            two.create_queue(APP, "race", QueueSettings(), 2.0),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Queue)]
        [loser] = [r for r in results if isinstance(r, QueueExists)]
        assert len(winners) == 1
        assert await two.get_queue(APP, "race") == winners[0] == loser.existing


async def test_a_write_after_another_instance_deleted_the_queue_raises_and_writes_nothing(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as one, opened(tmp_path) as two:
        await one.create_queue(APP, "q", QueueSettings(), 1.0)
        seen_by_two = await two.get_queue(APP, "q")
        assert seen_by_two is not None
        assert await one.delete_queue(APP, "q")

        with pytest.raises(QueueNotFound):
            await two.write_messages(seen_by_two, messages(gen, clock, 3))
        # Nor once the name is taken again by a new queue.
        await one.create_queue(APP, "q", QueueSettings(), 2.0)
        with pytest.raises(QueueNotFound):
            await two.write_messages(seen_by_two, messages(gen, clock, 3), replace=True)

    assert stored_ids(tmp_path) == []


_CHILD = """
import asyncio, sys, time
from queuey.core.clock import SystemClock
from queuey.core.errors import QueueExists
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, QueueSettings
from queuey.storage.sqlite import SqliteStorage

async def main(directory, job):
    store = SqliteStorage(directory, busy_timeout_ms=20000)
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    if job == "create":
        try:
            await store.create_queue("app", "race", QueueSettings(), time.time())
            print("created", flush=True)
        except QueueExists:
            print("exists", flush=True)
    else:
        queue = await store.get_queue("app", "shared")
        gen = IdGenerator(SystemClock())
        async def writer(n):
            for _ in range(n):
                message_id, ticks = gen.next()
                message = Message(message_id, ticks, 1, job, "text/plain", 2**50)
                await store.write_messages(queue, [message])
        await asyncio.gather(*(writer(20) for _ in range(15)))
        print("wrote", store.commits, flush=True)
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def run_processes(directory: Path, jobs: list[str]) -> list[str]:
    """Start one process per job on the same directory, release them at once, their outputs."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            str(directory),
            job,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for job in jobs
    ]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    outputs = []
    for child in children:
        out, _ = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0
        outputs.append(out.decode().strip())
    return outputs


async def test_of_processes_racing_to_create_a_queue_exactly_one_wins(tmp_path: Path) -> None:
    async with opened(tmp_path):
        pass  # the schema exists before the race
    outputs = await run_processes(tmp_path, ["create"] * 4)

    assert sorted(outputs) == ["created", "exists", "exists", "exists"]
    assert raw(tmp_path, "SELECT count(*) FROM queues WHERE name = 'race'") == [(1,)]


async def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        await store.create_queue(APP, "shared", QueueSettings(), 1.0)
    jobs = ["p1", "p2", "p3"]
    outputs = await run_processes(tmp_path, jobs)

    assert all(out.startswith("wrote") for out in outputs)
    counts = raw(
        tmp_path, "SELECT body, count(DISTINCT ticks || ':' || sfx) FROM messages GROUP BY body"
    )
    assert sorted(counts) == [(job, 300) for job in jobs]


# --- how messages are stored -------------------------------------------------------------------

# Suffixes (the last 16 hex digits of an id) at the edges of the 64-bit number stored for them.
EDGE_SUFFIXES = [
    "0000000000000000",
    "7fffffffffffffff",
    "8000000000000000",
    "8000000000000001",
    "bfffffffffffffff",
    "c000000000000000",
    "ffffffffffffffff",
]
EDGE_TICKS = [0, 1, 0xFFFFFFFF, 1 << 32, (1 << 48) - 1, 1 << 48, MAX_TICKS, 139_000_000_000_000_000]


def text_order(found: list[Message]) -> list[Message]:
    return sorted(found, key=lambda m: (m.ticks, m.id))


async def test_ids_are_stored_as_their_ticks_and_a_64_bit_suffix_and_read_back_exactly(
    tmp_path: Path, clock: FakeClock
) -> None:
    expires = now_ms(clock) + HOUR_MS
    written = [
        Message(uuid1_hex(ticks, suffix), ticks, 1, f"{ticks} {suffix}", "text/plain", expires)
        for suffix in EDGE_SUFFIXES
        for ticks in EDGE_TICKS
    ]
    ordered = text_order(written)
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        await store.write_messages(queue, written)
        now = now_ms(clock)

        assert await store.read_messages(queue, [1], None, False, 1000, now) == ordered
        assert await store.read_messages(queue, [1], None, True, 1000, now) == ordered[::-1]
        # Ids the API accepts (variant 10xx) can be asked for and deleted one by one.
        valid = [m for m in written if ticks_of(m.id) is not None]
        assert await store.get_messages(queue, [(1, m.id) for m in valid], now) == valid
        # Every message as a cursor splits the list where comparing the ids' text does.
        for i, m in enumerate(ordered):
            for inclusive in (True, False):
                cursor = Cursor(m.ticks, m.id, inclusive)
                after = await store.read_messages(queue, [1], cursor, False, 1000, now)
                before = await store.read_messages(queue, [1], cursor, True, 1000, now)
                assert after == ordered[i if inclusive else i + 1 :]
                assert before == ordered[: i + 1 if inclusive else i][::-1]
        gone = valid[::2]
        await store.delete_messages(queue, [(1, m.id) for m in gone])
        kept = [m for m in ordered if m not in gone]
        assert await store.read_messages(queue, [1], None, False, 1000, now) == kept

    # The file holds the suffix as a number (minus 2**63, in the same order), not the text.
    assert "id" not in [column[1] for column in raw(tmp_path, "PRAGMA table_info(messages)")]
    rows = raw(tmp_path, "SELECT ticks, sfx, typeof(sfx) FROM messages ORDER BY ticks, sfx")
    assert rows == [(m.ticks, int(m.id[16:], 16) - 2**63, "integer") for m in kept]


@pytest.mark.parametrize("cursor_id", ["", "~"])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("inclusive", [True, False])
async def test_time_cursors_keep_or_drop_a_whole_tick_whatever_the_suffixes(
    tmp_path: Path, clock: FakeClock, cursor_id: str, descending: bool, inclusive: bool
) -> None:
    tick = 139_000_000_000_000_000
    expires = now_ms(clock) + HOUR_MS
    written = [
        Message(uuid1_hex(ticks, suffix), ticks, 1, "b", "text/plain", expires)
        for ticks in (tick - 1, tick, tick + 1)
        for suffix in ("0000000000000000", "8000000000000000", "ffffffffffffffff")
    ]
    cursor = Cursor(tick, cursor_id, inclusive)
    # What comparing (ticks, id) as text gives, as the memory back-end does.
    position = (tick, cursor_id)
    if descending:
        expected = [
            m
            for m in text_order(written)[::-1]
            if ((m.ticks, m.id) <= position if inclusive else (m.ticks, m.id) < position)
        ]
    else:
        expected = [
            m
            for m in text_order(written)
            if ((m.ticks, m.id) >= position if inclusive else (m.ticks, m.id) > position)
        ]
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        await store.write_messages(queue, written)
        found = await store.read_messages(queue, [1], cursor, descending, 100, now_ms(clock))
    assert found == expected
    assert len(found) in (3, 6)


def run_at(
    clock: FakeClock, first: int, count: int, suffix: str = "8123456789abcdef", partition: int = 1
) -> list[Message]:
    """A batch as the service makes it: consecutive ticks, one partition, expiry and type."""
    expires = now_ms(clock) + HOUR_MS
    return [
        Message(uuid1_hex(t, suffix), t, partition, f"m{t}", "text/plain", expires)
        for t in range(first, first + count)
    ]


def mixed_batch(gen: IdGenerator, clock: FakeClock, count: int) -> list[Message]:
    """Messages that differ in partition, expiry and content type, at scattered ticks."""
    batch = []
    for i in range(count):
        m = message(gen, clock, f"mixed {i}", ttl_ms=HOUR_MS + i)
        content_type = "text/plain" if i % 4 else "application/json"
        m = dataclasses.replace(m, partition=1 + i % 3, content_type=content_type)
        clock.advance(0.001 * (i % 5))
        batch.append(m)
    return batch


def by_partition(found: list[Message]) -> list[Message]:
    return sorted(found, key=lambda m: (m.partition, m.ticks, m.id))


@pytest.mark.parametrize("count", [1, 2, 100, 127, 128, 129, 1000])
async def test_batches_of_any_size_are_written_whole_in_few_statements(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator, count: int
) -> None:
    async with opened(tmp_path) as store:
        run_queue = await store.create_queue(APP, "run", QueueSettings(), 1.0)
        mixed_queue = await store.create_queue(APP, "mixed", QueueSettings(partitions=3), 1.0)
        # A run of ticks that crosses the point where the id's second group changes.
        run = run_at(clock, (1 << 32) - count // 2, count)
        mixed = mixed_batch(gen, clock, count)
        writer = store.writer.connection
        assert writer is not None
        statements: list[str] = []
        writer.set_trace_callback(statements.append)
        await store.write_messages(run_queue, run)
        await store.write_messages(mixed_queue, mixed)
        writer.set_trace_callback(None)
        now = now_ms(clock)

        assert await store.read_messages(run_queue, [1], None, False, 1000, now) == run
        found = await store.read_messages(mixed_queue, [1, 2, 3], None, False, 1000, now)
        assert found == by_partition(mixed)
    # Multi-row INSERTs of at most 128 rows, each run of 128 in at most 5 of the sizes
    # 128, 112, ... 16, 8, 4, 2, 1 (96 + 4 for 100).
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO messages")]
    assert len(inserts) <= 2 * 5 * -(-count // 128)
    if count == 100:
        assert len(inserts) == 4


async def test_rows_are_split_so_that_a_statement_holds_a_bounded_size_of_bodies(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        big = [
            dataclasses.replace(m, body=str(i) * 50_000)
            for i, m in enumerate(run_at(clock, 10**15, 7))
        ]
        writer = store.writer.connection
        assert writer is not None
        statements: list[str] = []
        writer.set_trace_callback(statements.append)
        await store.write_messages(queue, big)
        await store.write_messages(queue, big, replace=True)
        writer.set_trace_callback(None)
        assert await store.read_messages(queue, [1], None, False, 10, now_ms(clock)) == big
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO messages")]
    assert len(inserts) == 8  # two bodies (100,000 characters) a statement at most
    assert max(len(sql) for sql in inserts) < 140_000


@pytest.mark.parametrize("replace", [False, True])
async def test_duplicates_within_a_batch_keep_the_first_or_take_the_last(
    tmp_path: Path, clock: FakeClock, replace: bool
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        first = run_at(clock, 10**15, 3)
        again = [Message(m.id, m.ticks, 1, "again", "text/html", m.expires_ms + 1) for m in first]
        await store.write_messages(queue, first + again, replace=replace)
        found = await store.read_messages(queue, [1], None, False, 10, now_ms(clock))
    assert found == (again if replace else first)


@pytest.mark.parametrize(("shape", "replace"), [("run", False), ("mixed", False), ("mixed", True)])
async def test_a_batch_of_several_statements_is_all_or_nothing(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator, shape: str, replace: bool
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(partitions=3), 1.0)
        other = await store.create_queue(APP, "other", QueueSettings(), 1.0)
        batch = run_at(clock, 10**15, 300) if shape == "run" else mixed_batch(gen, clock, 300)
        unbindable = batch[250]
        # A lone surrogate: SQLite cannot take it (in a late statement).
        batch[250] = dataclasses.replace(unbindable, body="\ud800")
        fine = [message(gen, clock)]

        outcomes = await asyncio.gather(
            store.write_messages(queue, batch, replace=replace),
            store.write_messages(other, fine),  # in the same group
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], StorageUnavailable)
        assert outcomes[1] is None
        now = now_ms(clock)
        assert await store.read_messages(queue, [1, 2, 3], None, False, 1000, now) == []
        assert await store.read_messages(other, [1], None, False, 10, now) == fine

        batch[250] = unbindable
        await store.write_messages(queue, batch, replace=replace)
        found = await store.read_messages(queue, [1, 2, 3], None, False, 1000, now)
        assert found == by_partition(batch)


@pytest.mark.parametrize(
    "bad_id", ["", "not an id", "0" * 31, "0" * 33, "0" * 16 + "0123456789ABCDEF", "g" * 32]
)
async def test_an_id_that_is_not_32_hex_digits_is_refused_and_nothing_is_written(
    tmp_path: Path, clock: FakeClock, bad_id: str
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        batch = run_at(clock, 10**15, 3)
        batch[1] = dataclasses.replace(batch[1], id=bad_id)
        for messages_ in (batch, batch[1:2]):
            with pytest.raises(ValueError, match="message id"):
                await store.write_messages(queue, messages_)
        assert stored_ids(tmp_path) == []


# --- group commit -------------------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_concurrent_writes_share_commits(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator, durability: str
) -> None:
    async with opened(tmp_path, durability=durability) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        written = messages(gen, clock, 200)
        before = store.commits

        await asyncio.gather(*(store.write_messages(queue, [m]) for m in written))

        assert store.commits - before <= 5
        assert stored_ids(tmp_path) == [m.id for m in written]


async def test_writes_keep_flowing_in_successive_groups(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    # Callers that write again as soon as they are acknowledged: each round is one group.
    async with opened(tmp_path, durability="full") as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        before = store.commits

        async def writer() -> None:
            for _ in range(10):
                await store.write_messages(queue, [message(gen, clock)])

        await asyncio.gather(*(writer() for _ in range(20)))

        assert store.commits - before < 100
        assert len(stored_ids(tmp_path)) == 200


@pytest.mark.parametrize(("durability", "on_the_loop"), [("normal", True), ("full", False)])
async def test_a_commit_that_fsyncs_runs_off_the_event_loop(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator, durability: str, on_the_loop: bool
) -> None:
    async with opened(tmp_path, durability=durability) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        writer = store.writer.connection
        assert writer is not None
        threads: list[int] = []
        writer.set_trace_callback(
            lambda sql: threads.append(threading.get_ident()) if sql == "COMMIT" else None
        )
        await asyncio.gather(
            *(store.write_messages(queue, [message(gen, clock)]) for _ in range(3))
        )
        writer.set_trace_callback(None)

        assert len(threads) == 1
        assert (threads[0] == threading.get_ident()) is on_the_loop


async def test_the_wal_is_checkpointed_in_the_background_and_stays_small(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    # Each commit appends a few 4 KiB pages to the WAL: 3,000 commits that never start it
    # over would leave it over 30 MB.
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        for _ in range(10):
            for _ in range(300):
                await store.write_messages(queue, [message(gen, clock)])
            for _ in range(500):  # let the checkpoint thread catch up
                if not store.writer.checkpointing:
                    break
                await asyncio.sleep(0.01)
        assert store.commits > 3000
        assert (tmp_path / "queuey.db-wal").stat().st_size < 12_000_000
        assert len(stored_ids(tmp_path)) == 3000


async def test_one_failing_operation_does_not_fail_the_others_of_its_group(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        live = await store.create_queue(APP, "live", QueueSettings(partitions=2), 1.0)
        dead = await store.create_queue(APP, "dead", QueueSettings(), 1.0)
        await store.delete_queue(APP, "dead")
        ok1, ok2, ok3 = messages(gen, clock, 3)
        lost = messages(gen, clock, 3)
        # A lone surrogate: the driver cannot encode it.
        lost[1] = dataclasses.replace(lost[1], body="\ud800")
        before = store.commits

        results = await asyncio.gather(
            store.write_messages(dead, [message(gen, clock)]),
            store.write_messages(live, [ok1, ok2]),
            store.create_queue(APP, "live", QueueSettings(), 2.0),
            store.update_queue(APP, "live", QueueSettings(partitions=1)),
            store.write_messages(live, lost),
            store.write_messages(live, [ok3]),
            store.update_queue(APP, "nope", QueueSettings()),
            return_exceptions=True,
        )

        assert store.commits - before == 1
        assert isinstance(results[0], QueueNotFound)
        assert results[1] is None
        assert isinstance(results[2], QueueExists)
        assert isinstance(results[3], InvalidUpdate)
        assert isinstance(results[4], StorageUnavailable)
        assert isinstance(results[4].__cause__, UnicodeEncodeError)
        assert results[5] is None
        assert isinstance(results[6], QueueNotFound)
        # The batch that failed in its second message left nothing, not even its first one.
        assert stored_ids(tmp_path) == [ok1.id, ok2.id, ok3.id]
        assert await store.get_queue(APP, "live") == live


# --- failures -----------------------------------------------------------------------------------


async def test_a_write_waits_for_a_lock_held_elsewhere_while_reads_go_on(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path, busy_timeout_ms=10_000) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        first, second = message(gen, clock), message(gen, clock)
        await store.write_messages(queue, [first])
        with closing(sqlite3.connect(tmp_path / "queuey.db", isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            waiting = asyncio.create_task(store.write_messages(queue, [second]))
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.sleep(0.1)

            # The event loop is not stuck in SQLite: reads answer, the write is not acknowledged.
            assert loop.time() - started < 2
            assert not waiting.done()
            assert await read_all(store, queue, clock) == [first.id]
            other.execute("COMMIT")

        await asyncio.wait_for(waiting, 10)
        assert await read_all(store, queue, clock) == [first.id, second.id]


async def test_a_lock_held_past_the_busy_timeout_fails_the_write_and_the_store_recovers(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path, busy_timeout_ms=200) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        first, blocked, later = message(gen, clock), message(gen, clock), message(gen, clock)
        await store.write_messages(queue, [first])
        with closing(sqlite3.connect(tmp_path / "queuey.db", isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageUnavailable, match="locked"):
                await store.write_messages(queue, [blocked])
            with pytest.raises(StorageUnavailable):
                await store.create_queue(APP, "other", QueueSettings(), 1.0)
            other.execute("ROLLBACK")

        await store.write_messages(queue, [later])
        assert await read_all(store, queue, clock) == [first.id, later.id]
        assert await store.get_queue(APP, "other") is None


async def test_a_full_database_fails_the_group_and_the_store_recovers(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        first = message(gen, clock)
        await store.write_messages(queue, [first])
        writer = store.writer.connection
        assert writer is not None
        pages = writer.execute("PRAGMA page_count").fetchall()[0][0]
        writer.execute(f"PRAGMA max_page_count = {pages}")  # the database may not grow

        big = [message(gen, clock, "x" * 10_000) for _ in range(20)]
        small = message(gen, clock)
        results = await asyncio.gather(
            store.write_messages(queue, big),
            store.write_messages(queue, [small]),
            return_exceptions=True,
        )
        # The whole transaction is rolled back, so every write of the group fails.
        assert [type(r) for r in results] == [StorageUnavailable, StorageUnavailable]
        assert "full" in str(results[0])

        writer = store.writer.connection
        assert writer is not None
        writer.execute("PRAGMA max_page_count = 1073741823")
        await store.write_messages(queue, big)
        assert await read_all(store, queue, clock) == [first.id] + [m.id for m in big]


@contextmanager
def files_may_not_grow_past(size: int) -> Iterator[None]:
    """The operating system refuses (EFBIG) any write that makes a file larger than ``size``."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


async def test_a_disk_write_error_fails_the_write_and_the_store_recovers(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        first = message(gen, clock)
        await store.write_messages(queue, [first])
        wal = tmp_path / "queuey.db-wal"
        big = [message(gen, clock, "x" * 100_000)]

        with files_may_not_grow_past(wal.stat().st_size + 1024):
            with pytest.raises(StorageUnavailable, match="I/O error"):
                await store.write_messages(queue, big)
            assert await read_all(store, queue, clock) == [first.id]  # reads still answer

        await store.write_messages(queue, big)
        assert await read_all(store, queue, clock) == [first.id, big[0].id]


# --- reads --------------------------------------------------------------------------------------


async def test_reads_and_listings_are_index_range_scans(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(partitions=2), 1.0)
        written = messages(gen, clock, 3)
        await store.write_messages(queue, written)
        reader = store.reader.connection
        assert reader is not None
        statements: list[str] = []
        reader.set_trace_callback(statements.append)
        at = written[1]
        for descending in (False, True):
            for cursor in (None, Cursor(at.ticks, at.id, True), Cursor(at.ticks, at.id, False)):
                await store.read_messages(queue, [1], cursor, descending, 10, now_ms(clock))
        await store.list_queues(APP, "m", 10)
        await store.get_messages(queue, [(1, at.id)], now_ms(clock))
        reader.set_trace_callback(None)

        selects = [statement for statement in statements if statement.startswith("SELECT")]
        assert len(selects) == 8
        for statement in selects:
            plan = " | ".join(row[3] for row in reader.execute("EXPLAIN QUERY PLAN " + statement))
            assert "SCAN" not in plan and "TEMP B-TREE" not in plan, (statement, plan)
            assert (
                "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (qid=? AND part=?" in plan
                or ("SEARCH queues USING INDEX" in plan and "(app=? AND name>?)" in plan)
            ), plan


async def test_a_read_of_several_partitions_sees_one_snapshot(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store, opened(tmp_path) as other:
        queue = await store.create_queue(APP, "q", QueueSettings(partitions=2), 1.0)
        reader = store.reader.connection
        assert reader is not None
        batch = messages(gen, clock, 2)
        batch[1] = dataclasses.replace(batch[1], partition=2)
        written = False

        def write_between_partitions(statement: str) -> None:
            # Another process commits a batch while partition 1 has been read.
            nonlocal written
            if "part = 2" in statement and not written:
                written = True
                with closing(sqlite3.connect(tmp_path / "queuey.db")) as conn, conn:
                    conn.executemany(
                        "INSERT INTO messages (qid, part, ticks, sfx, expires, ctype, body)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (queue.qid, m.partition, m.ticks, 0, m.expires_ms, "t", "b")
                            for m in batch
                        ],
                    )

        reader.set_trace_callback(write_between_partitions)
        found = await store.read_messages(queue, [1, 2], None, False, 10, now_ms(clock))
        reader.set_trace_callback(None)

        assert written
        assert found == []  # neither half of the batch, though it committed in the middle
        await asyncio.sleep(0)  # the snapshot lasts until the next event-loop iteration
        for store_ in (store, other):
            assert (
                len(await store_.read_messages(queue, [1, 2], None, False, 10, now_ms(clock))) == 2
            )


async def test_reads_of_one_event_loop_iteration_share_a_snapshot(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    # Their shared read transaction saves the lock calls of a transaction per statement; it
    # ends before the loop handles anything new, so no read misses an acknowledged write.
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        first = message(gen, clock)
        await store.write_messages(queue, [first])
        assert await read_all(store, queue, clock) == [first.id]
        raw(tmp_path, "UPDATE queues SET partitions = 7")  # another process, meanwhile

        assert await read_all(store, queue, clock) == [first.id]
        assert await store.get_queue(APP, "q") == queue
        await asyncio.sleep(0)
        seen = await store.get_queue(APP, "q")
        assert seen is not None and seen.partitions == 7

        second = message(gen, clock)
        await store.write_messages(queue, [second])  # a read right after sees the write
        assert await read_all(store, queue, clock) == [first.id, second.id]


# --- sweep --------------------------------------------------------------------------------------


async def test_sweep_deletes_expired_rows_in_bounded_batches(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        expired = messages(gen, clock, 25, ttl_ms=1000)
        live = messages(gen, clock, 5, ttl_ms=HOUR_MS)
        await store.write_messages(queue, expired + live)
        clock.advance(2)
        now = now_ms(clock)

        assert len(stored_ids(tmp_path)) == 30  # expired, not yet reclaimed
        assert [await store.sweep(now, 10) for _ in range(4)] == [10, 10, 5, 0]
        assert stored_ids(tmp_path) == [m.id for m in live]


async def test_delete_queue_leaves_its_rows_to_the_sweep_which_reclaims_them(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        doomed = await store.create_queue(APP, "doomed", QueueSettings(partitions=2), 1.0)
        kept = await store.create_queue(APP, "kept", QueueSettings(), 1.0)
        doomed_messages = [
            dataclasses.replace(m, partition=1 + i % 2)
            for i, m in enumerate(messages(gen, clock, 30))
        ]
        kept_messages = messages(gen, clock, 4)
        await store.write_messages(doomed, doomed_messages)
        await store.write_messages(kept, kept_messages)

        assert await store.delete_queue(APP, "doomed")
        # Deleting is O(1): the rows are still there, but never read nor counted.
        assert len(stored_ids(tmp_path)) == 34
        assert raw(tmp_path, "SELECT qid FROM dead_queues") == [(doomed.qid,)]
        now = now_ms(clock)
        assert await store.read_messages(doomed, [1, 2], None, False, 100, now) == []
        assert await store.get_messages(doomed, [(1, doomed_messages[0].id)], now) == []
        assert await store.count_messages(doomed, now) == 0

        assert [await store.sweep(now, 12) for _ in range(4)] == [12, 12, 6, 0]
        assert stored_ids(tmp_path) == [m.id for m in kept_messages]
        assert raw(tmp_path, "SELECT qid FROM dead_queues") == []


async def test_sweep_reclaims_expired_and_dead_rows_within_one_limit(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        doomed = await store.create_queue(APP, "doomed", QueueSettings(), 1.0)
        kept = await store.create_queue(APP, "kept", QueueSettings(), 1.0)
        await store.write_messages(kept, messages(gen, clock, 6, ttl_ms=1000))
        await store.write_messages(doomed, messages(gen, clock, 6))
        await store.delete_queue(APP, "doomed")
        clock.advance(2)

        assert await store.sweep(now_ms(clock), 10) == 10
        assert await store.sweep(now_ms(clock), 10) == 2
        assert stored_ids(tmp_path) == []


# --- claims: where a claim's scan starts --------------------------------------------------------
#
# A claim starts its scan after the rows this process saw unavailable at its last claim (a
# hint). These tests put an available row before such a hint in every way one can get there
# and check that the next claim still finds it, oldest first.


def at_ticks(clock: FakeClock, ticks: int, suffix: str = "8000000000000001") -> Message:
    return Message(uuid1_hex(ticks, suffix), ticks, 1, f"at {ticks}", "text/plain",
                   now_ms(clock) + HOUR_MS)  # fmt: skip


async def claim_ids(store: SqliteStorage, queue: Queue, clock: FakeClock, limit: int) -> list[str]:
    claims = await store.claim_messages(queue, [1], limit, now_ms(clock), 60_000, False)
    return [c.message.id for c in claims]


@contextmanager
def traced(store: SqliteStorage) -> Iterator[tuple[sqlite3.Connection, list[str]]]:
    """The writer connection and the statements it runs meanwhile."""
    writer = store.writer.connection
    assert writer is not None
    statements: list[str] = []
    writer.set_trace_callback(statements.append)
    try:
        yield writer, statements
    finally:
        writer.set_trace_callback(None)


async def hinted_queue(
    store: SqliteStorage, clock: FakeClock, gen: IdGenerator, name: str = "q"
) -> tuple[Queue, list[Message]]:
    """A queue whose first two of three messages this process claimed (so it holds a hint)."""
    queue = await store.create_queue(APP, name, QueueSettings(), 1.0)
    written = messages(gen, clock, 3)
    await store.write_messages(queue, written)
    assert await claim_ids(store, queue, clock, 2) == [m.id for m in written[:2]]
    assert store.hints.positions(queue.qid)
    return queue, written


async def test_a_claim_scans_from_where_the_last_one_stopped(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue, written = await hinted_queue(store, clock, gen)
        with traced(store) as (_, statements):
            assert await claim_ids(store, queue, clock, 5) == [written[2].id]
        scans = [s for s in statements if s.startswith("SELECT rid")]
        assert len(scans) == 1 and "(ticks, sfx) > (" in scans[0], statements


async def test_a_row_written_before_the_hint_by_another_process_is_claimed(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store, opened(tmp_path) as other:
        queue, written = await hinted_queue(store, clock, gen)
        early = at_ticks(clock, written[0].ticks - 5)
        await other.write_messages(queue, [early])

        assert await claim_ids(store, queue, clock, 5) == [early.id, written[2].id]


async def test_a_row_written_before_the_hint_by_this_process_is_claimed(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue, written = await hinted_queue(store, clock, gen)
        early = at_ticks(clock, written[1].ticks - 1)
        await store.write_messages(queue, [early], replace=True)

        assert await claim_ids(store, queue, clock, 5) == [early.id, written[2].id]


async def test_a_row_released_or_swept_back_before_the_hint_is_claimed(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store, opened(tmp_path) as other:
        queue = await store.create_queue(APP, "q", QueueSettings(), 1.0)
        written = messages(gen, clock, 4)
        await store.write_messages(queue, written)
        [first] = await store.claim_messages(queue, [1], 1, now_ms(clock), 1000, False)
        assert await claim_ids(store, queue, clock, 1) == [written[1].id]

        # The first lease ends and another process's sweep forgets it (cexp = 0).
        clock.advance(1)
        assert await other.sweep(now_ms(clock), 100) == 1
        assert await claim_ids(store, queue, clock, 1) == [written[0].id]

        # Released by this process.
        [third] = await store.claim_messages(queue, [1], 1, now_ms(clock), 60_000, False)
        assert third.message.id == written[2].id
        ref = ClaimRef(1, third.message.id, third.token)
        assert await store.extend_claims(queue, [ref], now_ms(clock), 0) == [True]
        assert await claim_ids(store, queue, clock, 5) == [written[2].id, written[3].id]
        assert first.message.id == written[0].id


async def test_a_dead_lettered_row_before_the_hint_of_its_new_queue_is_claimed(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        source = await store.create_queue(
            APP, "source", QueueSettings(max_deliveries=1, dead_letter_queue="q"), 1.0
        )
        old = message(gen, clock, "old")
        await store.write_messages(source, [old])
        await store.claim_messages(source, [1], 1, now_ms(clock), 1000, False)
        queue, written = await hinted_queue(store, clock, gen)
        clock.advance(1)

        assert await store.claim_messages(source, [1], 1, now_ms(clock), 1000, False) == []
        assert await claim_ids(store, queue, clock, 5) == [old.id, written[2].id]


async def test_claim_statements_use_indexes(
    tmp_path: Path, clock: FakeClock, gen: IdGenerator
) -> None:
    async with opened(tmp_path) as store:
        queue, written = await hinted_queue(store, clock, gen)
        with traced(store) as (writer, statements):
            claims = await store.claim_messages(queue, [1], 5, now_ms(clock), 1000, False)
            await store.ack_messages(
                queue, [ClaimRef(1, c.message.id, c.token) for c in claims], now_ms(clock)
            )
            await store.sweep(now_ms(clock), 100)

        queries = [s for s in statements if s.startswith(("SELECT", "DELETE", "UPDATE"))]
        assert queries
        for statement in queries:
            plan = " | ".join(row[3] for row in writer.execute("EXPLAIN QUERY PLAN " + statement))
            # Only the sweep's search for ended leases reads a whole index: the claimed rows'.
            plan = plan.replace("SCAN m USING INDEX messages_claims", "")
            assert "SCAN messages" not in plan and "SCAN m " not in plan, (statement, plan)
            assert "SCAN dedup " not in plan and "SCAN queues" not in plan, (statement, plan)
