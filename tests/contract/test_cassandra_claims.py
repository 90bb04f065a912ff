"""What CassandraStorage does for work queues beyond the shared contract: claim columns and
their TTLs, several servers claiming from one queue, dead-letter moves and deduplicated posts
whose server stops half-way, lightweight transactions whose outcome is unknown, the claim
floors that keep claims off the tombstones of acknowledged messages, long polling across
servers, and the columns added to tables of the earlier schema."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.ids import IdGenerator, uuid1_hex
from queuey.core.models import Caller, Claim, ClaimRef, Message, Queue, QueueSettings
from queuey.service import QueueService
from queuey.storage.cassandra import CassandraStorage, dedup, floors
from queuey.storage.cassandra.deadletters import Move
from queuey.storage.cassandra.schema import CLAIM_COLUMNS
from queuey.storage.cassandra.session import unavailable
from queuey.storage.keys import sfx_of
from tests import cassandra as node

APP = "app"
HOUR_MS = 3_600_000
LEASE_MS = 30_000


store = pytest.fixture(node.fresh_store, name="store")


@pytest.fixture
async def second() -> AsyncIterator[CassandraStorage]:
    """Another server's store on the same keyspaces (opened after ``store`` emptied them)."""
    other = CassandraStorage(node.settings(), node.METADATA_KEYSPACE)
    await other.open()
    yield other
    await other.close()


@pytest.fixture
def gen(clock: FakeClock) -> IdGenerator:
    return IdGenerator(clock)


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


cql = node.cql


def messages(gen: IdGenerator, clock: FakeClock, count: int, partition: int = 1) -> list[Message]:
    out = []
    for i in range(count):
        message_id, ticks = gen.next()
        out.append(
            Message(message_id, ticks, partition, f"m{i}", "text/plain", now_ms(clock) + HOUR_MS)
        )
    return out


def refs(claims: list[Claim]) -> list[ClaimRef]:
    return [ClaimRef(c.message.partition, c.message.id, c.token) for c in claims]


def row_of(store: CassandraStorage, queue: Queue, message: Message, columns: str) -> Any:
    rows = cql(
        store,
        f"SELECT {columns} FROM {node.KEYSPACE}.messages"
        " WHERE qid = %s AND bucket = %s AND part = %s AND ticks = %s AND sfx = %s",
        queue.qid, message.ticks >> 32, message.partition, message.ticks, sfx_of(message.id),
    )  # fmt: skip
    return rows[0] if rows else None


def position(store: CassandraStorage, queue: Queue) -> tuple[int, int] | None:
    """Where this process's claims of the queue's partition 1 start."""
    floor = store.floors.floor(queue.qid, 1)
    assert floor is not None
    return floor.position


async def work_queue(store: CassandraStorage, name: str = "work", **settings: Any) -> Queue:
    return await store.create_queue(APP, name, QueueSettings(**settings), 1.0)


# --- the data model -------------------------------------------------------------------------


async def test_claim_columns_are_written_at_insert_and_a_claim_expires_with_its_message(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    [message] = messages(gen, clock, 1)
    await store.write_messages(queue, [message])
    assert row_of(store, queue, message, "due, dlv, ctok, cexp") == (0, 0, 0, 0)

    [claim] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)

    dlv, ctok, cexp, ttl, body_ttl = row_of(
        store, queue, message, "dlv, ctok, cexp, TTL(ctok), TTL(body)"
    )
    assert (dlv, ctok, cexp) == (1, claim.token, now_ms(clock) + LEASE_MS)
    # The claim cells vanish with the message (a few seconds later at most), never before.
    assert body_ttl <= ttl <= body_ttl + 3


async def test_the_queue_settings_of_work_queues_are_stored(store: CassandraStorage) -> None:
    settings = QueueSettings(
        partitions=2, delivery="exactly_once", claim_ttl=7, max_deliveries=3,
        dead_letter_queue="dead", delay=4, dedup_window=0, policy="roundrobin", paused=True,
    )  # fmt: skip
    created = await store.create_queue(APP, "q", settings, 1.0)
    assert await store.get_queue(APP, "q") == created

    changed = replace(settings, dead_letter_queue=None, paused=False, partitions=3)
    updated = await store.update_queue(APP, "q", changed)
    assert await store.get_queue(APP, "q") == updated and updated.settings == changed


async def test_tables_of_the_earlier_schema_get_the_new_columns(store: CassandraStorage) -> None:
    prefix = f"{node.PREFIX}_v1"
    session = store.session.driver
    for keyspace in (f"{prefix}_messages", f"{prefix}_metadata"):
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication ="
            " {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
    for table in ("messages.messages", "metadata.queues"):
        session.execute(f"DROP TABLE IF EXISTS {prefix}_{table}", timeout=60)
    session.execute(
        f"CREATE TABLE {prefix}_metadata.queues (app text, name text, qid bigint,"
        " partitions int, type text, consistency text, principles frozen<list<text>>,"
        " created double, PRIMARY KEY ((app, name)))",
        timeout=60,
    )
    session.execute(
        f"CREATE TABLE {prefix}_messages.messages (qid bigint, bucket bigint, part int,"
        " ticks bigint, sfx bigint, expires bigint, ctype text, body text, mark uuid static,"
        " PRIMARY KEY ((qid, bucket), part, ticks, sfx))",
        timeout=60,
    )

    upgraded = CassandraStorage(node.settings(keyspace=f"{prefix}_messages"), f"{prefix}_metadata")
    await upgraded.open()  # creates the missing tables, adds the missing columns
    try:
        queue = await upgraded.create_queue(APP, "q", QueueSettings(max_deliveries=2), 1.0)
        assert (await upgraded.get_queue(APP, "q")) == queue
        rows = cql(
            upgraded,
            "SELECT column_name FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = 'messages'",
            f"{prefix}_messages",
        )
        assert {"due", "dlv", "ctok", "cexp"} <= {name for (name,) in rows}
    finally:
        await upgraded.close()


# --- several servers ------------------------------------------------------------------------


async def test_two_servers_claim_disjoint_messages_and_ack_each_others_claims(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store, partitions=2)
    posted = messages(gen, clock, 40) + messages(gen, clock, 40, partition=2)
    await store.write_messages(queue, posted)

    async def claims(server: CassandraStorage) -> list[Claim]:
        got: list[Claim] = []
        for _ in range(12):
            got += await server.claim_messages(queue, [1, 2], 4, now_ms(clock), LEASE_MS, False)
        return got

    results = await asyncio.gather(*(claims(s) for s in (store, second, store, second)))

    everything = [c.message.id for result in results for c in result]
    assert sorted(everything) == sorted(m.id for m in posted)  # each claimed exactly once
    mine, theirs = results[0], results[1]
    assert await second.ack_messages(queue, refs(mine), now_ms(clock)) == [True] * len(mine)
    assert await store.ack_messages(queue, refs(theirs), now_ms(clock)) == [True] * len(theirs)
    assert await store.ack_messages(queue, refs(theirs), now_ms(clock)) == [False] * len(theirs)
    stats = await second.queue_stats(queue, now_ms(clock))
    assert (stats.available, stats.claimed) == (0, len(posted) - len(mine) - len(theirs))


async def test_a_waiting_claim_answers_soon_after_a_post_through_another_server(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    service = QueueService(store, [APP], clock)
    latencies = []
    for _ in range(3):
        waiting = asyncio.create_task(service.claim(Caller(APP), APP, "work", {"wait": 5}))
        await asyncio.sleep(0.3)
        await second.write_messages(queue, messages(gen, clock, 1))
        posted = time.monotonic()
        [claim] = await waiting
        latencies.append(time.monotonic() - posted)
        await store.ack_messages(queue, refs([claim]), now_ms(clock))
    await service.notifier.stop()
    # The store's version changes every 50 ms, so the waiter looks again at that pace.
    assert statistics.median(latencies) < 0.1, latencies


async def test_the_data_version_changes_every_50_ms_and_at_once_after_a_write(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    first = await store.data_version()
    await asyncio.sleep(0.06)
    assert await store.data_version() != first
    before = await store.data_version()
    await store.write_messages(queue, messages(gen, clock, 1))
    assert await store.data_version() != before


# --- dead letters that stop half-way --------------------------------------------------------


async def exhausted_message(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> tuple[Queue, Queue, Message, tuple[Any, ...]]:
    """A queue (max 1 delivery, dead-letter queue "dlq") whose one message's lease ended."""
    dlq = await work_queue(store, "dlq")
    queue = await work_queue(store, max_deliveries=1, dead_letter_queue="dlq")
    [message] = messages(gen, clock, 1)
    await store.write_messages(queue, [message])
    await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    clock.advance(LEASE_MS / 1000)
    row = row_of(store, queue, message, CLAIM_COLUMNS)
    return queue, dlq, message, row


async def win_move(
    store: CassandraStorage, queue: Queue, message: Message, row: tuple[Any, ...], now: int
) -> Move:
    """Do the first step of a dead-letter move (record it, win it), as a server that then
    stops."""
    bucket = message.ticks >> 32
    [move] = await store.dead_letters.prepare(queue, bucket, [row], now)
    win = store.dead_letters.win_op(move, now)
    assert await store.combiner.run(queue.qid, bucket, [win], "QUORUM") == [True]
    return move


async def test_a_dead_letter_move_cut_short_after_it_was_won_is_finished_by_the_sweep(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue, dlq, message, row = await exhausted_message(store, clock, gen)
    await win_move(store, queue, message, row, now_ms(clock))

    # Being moved: nobody claims it, and the move is not finished before a minute.
    assert await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False) == []
    await store.sweep(now_ms(clock), 100)
    assert (await store.queue_stats(queue, now_ms(clock))).dead_lettered == 0
    assert await store.read_messages(dlq, [1], None, False, 10, now_ms(clock)) == []

    clock.advance(61)
    assert await store.sweep(now_ms(clock), 100) == 1
    [moved] = await store.read_messages(dlq, [1], None, False, 10, now_ms(clock))
    assert (moved.id, moved.body, moved.deliveries) == (message.id, message.body, 1)
    assert await store.read_messages(queue, [1], None, False, 10, now_ms(clock)) == []
    assert (await store.queue_stats(queue, now_ms(clock))).dead_lettered == 1
    assert await store.sweep(now_ms(clock), 100) == 0


async def test_a_move_cut_short_after_its_copy_does_not_copy_again(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, dlq, message, row = await exhausted_message(store, clock, gen)
    move = await win_move(store, queue, message, row, now_ms(clock))

    async def stop(*args: Any) -> list[bool]:
        raise StorageUnavailable("the server stops")

    with monkeypatch.context() as patch:  # the copy and the count are made, then it stops
        patch.setattr(store.combiner, "run", stop)
        with pytest.raises(StorageUnavailable):
            await store.dead_letters.finish(move, "QUORUM")
    # Meanwhile the copy is claimed and acknowledged in the dead-letter queue.
    claims = await store.claim_messages(dlq, [1], 1, now_ms(clock), LEASE_MS, False)
    assert await store.ack_messages(dlq, refs(claims), now_ms(clock)) == [True]

    clock.advance(61)
    assert await store.sweep(now_ms(clock), 100) == 1

    assert await store.read_messages(dlq, [1], None, False, 10, now_ms(clock)) == []
    assert await store.read_messages(queue, [1], None, False, 10, now_ms(clock)) == []
    assert (await store.queue_stats(queue, now_ms(clock))).dead_lettered == 1


async def test_a_move_that_lost_its_race_is_dropped_and_the_message_moved_once(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue, dlq, message, row = await exhausted_message(store, clock, gen)
    stale = replace_row(row, ctok=12345)  # what a server saw before another claim

    bucket = message.ticks >> 32
    [move] = await store.dead_letters.prepare(queue, bucket, [stale], now_ms(clock))
    win = store.dead_letters.win_op(move, now_ms(clock))
    assert await store.combiner.run(queue.qid, bucket, [win], "QUORUM") == [False]
    clock.advance(61)
    # The sweep drops the pending move that lost, and moves the message (its lease ended).
    assert await store.sweep(now_ms(clock), 100) == 2
    assert (await store.queue_stats(queue, now_ms(clock))).dead_lettered == 1
    assert len(await store.read_messages(dlq, [1], None, False, 10, now_ms(clock))) == 1


def replace_row(row: tuple[Any, ...], **changes: Any) -> tuple[Any, ...]:
    names = [name.strip() for name in CLAIM_COLUMNS.split(",")]
    return tuple(changes.get(name, value) for name, value in zip(names, row, strict=True))


# --- deduplicated posts that stop half-way --------------------------------------------------


async def test_a_post_that_fails_gives_its_dedup_id_back(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    first, second = messages(gen, clock, 2)

    async def fail(*args: Any, **kwargs: Any) -> None:
        raise StorageUnavailable("the write fails")

    with monkeypatch.context() as patch:
        patch.setattr(store.messages, "write", fail)
        with pytest.raises(StorageUnavailable):
            await store.write_unique(queue, [first], ["k"], now_ms(clock), 60_000)

    assert await store.write_unique(queue, [second], ["k"], now_ms(clock), 60_000) == [None]
    [stored] = await store.read_messages(queue, [1], None, False, 10, now_ms(clock))
    assert stored.id == second.id


async def test_a_dedup_id_held_by_a_post_that_stopped_is_never_a_duplicate_of_nothing(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dedup, "DEDUP_TRIES", 3)
    queue = await work_queue(store)
    lost, stopped, retry, later = messages(gen, clock, 4)
    until = now_ms(clock) + 300_000
    for did, held in (("lost", lost), ("stopped", stopped)):  # taken, never confirmed
        cql(
            store,
            f"INSERT INTO {node.KEYSPACE}.dedup (qid, did, until, part, ticks, sfx, stored, since)"
            " VALUES (%s, %s, %s, %s, %s, %s, false, %s)",
            queue.qid, did, until, 1, held.ticks, sfx_of(held.id), now_ms(clock),
        )  # fmt: skip
    await store.write_messages(queue, [stopped])  # stored, then its server stopped

    # Stored: a duplicate of it. Not stored: no answer yet (its post may still be writing).
    [duplicate] = await store.write_unique(queue, [retry], ["stopped"], now_ms(clock), 300_000)
    assert duplicate is not None and duplicate.id == stopped.id
    with pytest.raises(StorageUnavailable, match="dedup id"):
        await store.write_unique(queue, [retry], ["lost"], now_ms(clock), 300_000)

    clock.advance(61)  # that post failed for sure: the id is free
    assert await store.write_unique(queue, [later], ["lost"], now_ms(clock), 300_000) == [None]
    stored = await store.read_messages(queue, [1], None, False, 10, now_ms(clock))
    assert [m.id for m in stored] == [stopped.id, later.id]


# --- unknown outcomes -----------------------------------------------------------------------


class WriteTimeout(Exception):
    """Stands for the driver's WriteTimeout of a lightweight transaction."""


async def test_a_claim_whose_transaction_timed_out_learns_from_the_next_attempt(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    posted = messages(gen, clock, 2)
    await store.write_messages(queue, posted)
    real = store.session.submit
    timeouts: list[int] = []

    def submit(build: Any, what: str = "", named: bool = False) -> asyncio.Future[Any]:
        future = real(build, what, named)
        if not named or timeouts:
            return future
        timeouts.append(1)  # the first transaction is applied, but its answer is lost
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def lose(done: asyncio.Future[Any]) -> None:
            cause = WriteTimeout("Operation timed out - received only 0 responses. CAS")
            failed.set_exception(unavailable(cause))

        future.add_done_callback(lose)
        return failed

    monkeypatch.setattr(store.session, "submit", submit)

    claims = await store.claim_messages(queue, [1], 2, now_ms(clock), LEASE_MS, False)

    assert [c.message.id for c in claims] == [m.id for m in posted] and timeouts == [1]
    assert await store.ack_messages(queue, refs(claims), now_ms(clock)) == [True, True]


# --- claim floors ---------------------------------------------------------------------------


async def test_claims_start_past_acknowledged_messages_in_every_process(
    store: CassandraStorage,
    second: CassandraStorage,
    clock: FakeClock,
    gen: IdGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(floors, "FLOOR_REFRESH_S", 0.0)  # every claim reads and moves the floor
    queue = await work_queue(store)
    done = messages(gen, clock, 300)
    await store.write_messages(queue, done)
    while claims := await store.claim_messages(queue, [1], 100, now_ms(clock), LEASE_MS, False):
        assert all(await store.ack_messages(queue, refs(claims), now_ms(clock)))
    clock.advance(5)  # past the floor's margin
    [fresh] = messages(gen, clock, 1)
    await store.write_messages(queue, [fresh])

    await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)  # moves the floor

    last = (done[-1].ticks, sfx_of(done[-1].id))
    [(ticks, sfx)] = cql(
        store, f"SELECT ticks, sfx FROM {node.KEYSPACE}.floors WHERE qid = %s", queue.qid
    )
    assert (ticks, sfx) > last
    # Another process starts there, not at the first bucket.
    [another] = messages(gen, clock, 1)
    await store.write_messages(queue, [another])
    started: list[Any] = []
    real = second.claims.walk

    async def walk(job: Any, starts: dict[int, Any]) -> None:
        started.append(starts[1])
        await real(job, starts)

    monkeypatch.setattr(second.claims, "walk", walk)
    [claim] = await second.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    assert claim.message.id == another.id and started == [(ticks, sfx)]


async def test_a_floor_stops_at_claimed_messages_and_drops_below_messages_written_under_it(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(floors, "FLOOR_REFRESH_S", 0.0)
    queue = await work_queue(store)
    held, *rest = messages(gen, clock, 5)
    await store.write_messages(queue, [held, *rest])
    [claim] = await store.claim_messages(queue, [1], 1, now_ms(clock), HOUR_MS, False)
    assert claim.message.id == held.id
    for _ in rest:
        [c] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
        assert await store.ack_messages(queue, refs([c]), now_ms(clock)) == [True]
    clock.advance(5)
    assert await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False) == []
    assert position(store, queue) == (held.ticks, sfx_of(held.id))

    # An older id written by this process lowers the floor: it is claimed.
    old = replace(held, id=held.id[:16] + "8000000000000000", body="old")
    await store.write_messages(queue, [old])
    [again] = await store.claim_messages(queue, [1], 2, now_ms(clock), LEASE_MS, False)
    assert again.message.id == old.id


async def test_a_put_below_the_floor_through_another_server_is_claimed(
    store: CassandraStorage,
    second: CassandraStorage,
    clock: FakeClock,
    gen: IdGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(floors, "FLOOR_REFRESH_S", 0.0)
    queue = await work_queue(store)
    first, later = messages(gen, clock, 2)
    await store.write_messages(queue, [first, later])
    [c] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    await store.ack_messages(queue, refs([c]), now_ms(clock))
    clock.advance(5)
    await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    assert position(store, queue) == (later.ticks, sfx_of(later.id))

    below = replace(first, id=first.id[:16] + "8000000000000000", body="put")
    await second.write_messages(queue, [below], replace=True)

    [found] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    assert found.message.body == "put"


async def test_a_write_racing_the_first_floor_of_a_queue_is_not_passed_over(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    clock.advance(5)
    [message] = messages(gen, clock, 1)
    ticks = message.ticks - 10**8  # ten seconds older than now
    old = replace(message, id=uuid1_hex(ticks, "8000000000000000"), ticks=ticks)
    # A claim made its floor from a scan that found nothing, then the PUT landed: the PUT
    # leaves a floor at the bottom, so the claim's creation of the first floor fails.
    _, [(_, floor)] = await store.floors.refresh(queue.qid, [1], "QUORUM")
    assert floor.position is None
    await store.write_messages(queue, [old], replace=True)
    assert await store.floors.move(queue.qid, 1, floor, (message.ticks, 0), "QUORUM") is False
    [claim] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    assert claim.message.id == old.id
