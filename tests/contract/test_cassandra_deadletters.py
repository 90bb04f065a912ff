"""Dead-letter moves on Cassandra whose server stops half-way: finished by the sweep, never
copied twice, dropped when they lost their race."""

from __future__ import annotations

from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, Queue, QueueSettings
from queuey.storage.cassandra import CassandraStorage, queues, schema
from queuey.storage.cassandra.deadletters import Move
from queuey.storage.cassandra.schema import CLAIM_COLUMNS
from tests import cassandra as node
from tests.cassandra import LEASE_MS, cql, messages, now_ms, refs, row_of, work_queue

store = pytest.fixture(node.fresh_store, name="store")
gen = pytest.fixture(node.ids, name="gen")


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


# --- the senders of a dead-letter queue -------------------------------------------------------


def senders_rows(store: CassandraStorage) -> list[tuple[Any, ...]]:
    return sorted(
        cql(store, f"SELECT app, dlq, name FROM {node.METADATA_KEYSPACE}.dead_letter_senders")
    )


async def test_a_senders_row_that_no_longer_holds_is_left_out_and_deleted_once_old(
    store: CassandraStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await work_queue(store, "jobs", dead_letter_queue="dead")
    await store.update_queue("app", "jobs", QueueSettings(dead_letter_queue="other"))
    assert senders_rows(store) == [("app", "dead", "jobs"), ("app", "other", "jobs")]
    assert await store.dead_letter_senders("app", "dead") == []
    assert len(senders_rows(store)) == 2  # young: a change in progress may be writing it

    monkeypatch.setattr(queues, "STALE_S", 0)
    assert await store.dead_letter_senders("app", "dead") == []
    assert senders_rows(store) == [("app", "other", "jobs")]
    assert await store.dead_letter_senders("app", "other") == ["jobs"]


async def test_queues_made_before_the_senders_table_are_recorded_when_it_is_made(
    store: CassandraStorage,
) -> None:
    await work_queue(store, "jobs", dead_letter_queue="dead")
    await work_queue(store, "plain")
    cql(store, f"TRUNCATE {node.METADATA_KEYSPACE}.dead_letter_senders")
    schema.fill_senders(store.session.driver, store.session.meta)
    assert senders_rows(store) == [("app", "dead", "jobs")]
