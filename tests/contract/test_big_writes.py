"""Writes of big messages, and of many, are stored whole on every back-end.

On Cassandra they are bigger than a batch that spans partitions may be (the test node keeps
Cassandra's default ``batch_size_fail_threshold``, 50 KiB): their bookkeeping rows go apart from
the messages, which are stored bucket by bucket."""

from __future__ import annotations

from dataclasses import replace

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.storage.base import Storage
from tests.contract.test_claims import LEASE_MS, claim, gen, work_queue
from tests.contract.test_storage import make_message, make_queue, message_at, now_ms, read

__all__ = ["gen"]  # the fixture

BUCKET_TICKS = 1 << 32  # Cassandra's time buckets: the ids' ticks >> 32


async def test_a_post_of_a_hundred_messages_of_a_kib_each_is_stored_whole(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await make_queue(storage, clock)
    posted = [make_message(gen, clock, body=f"{i:04d}" + "x" * 1020) for i in range(100)]
    await storage.write_messages(queue, posted, fresh=True)
    found = await read(storage, queue, clock)
    assert [(m.id, m.body) for m in found] == [(m.id, m.body) for m in posted]


async def test_one_message_of_a_hundred_kib_is_stored(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await make_queue(storage, clock)
    message = make_message(gen, clock, body="y" * 100 * 1024)
    await storage.write_messages(queue, [message], fresh=True)
    [found] = await read(storage, queue, clock)
    assert (found.id, found.body) == (message.id, message.body)


async def test_the_size_of_a_write_counts_its_bodies_in_utf8(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    # 26,000 characters, 78,000 bytes: fewer characters than a batch may hold bytes.
    queue = await make_queue(storage, clock)
    message = make_message(gen, clock, body="€" * 26_000)
    await storage.write_messages(queue, [message], fresh=True)
    [found] = await read(storage, queue, clock)
    assert found.body == message.body


async def test_a_big_write_across_two_time_buckets_is_stored_whole(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await make_queue(storage, clock)
    first = gen.next()[1]
    posted = [
        replace(message_at(clock, ticks), body=f"{ticks}" + "z" * 2048)
        for base in (first, first + BUCKET_TICKS)
        for ticks in range(base, base + 30)
    ]
    await storage.write_messages(queue, posted)
    found = await read(storage, queue, clock)
    assert [(m.id, m.body) for m in found] == [(m.id, m.body) for m in posted]


async def test_a_big_message_is_moved_to_the_dead_letter_queue_whole(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    dlq = await work_queue(storage, clock, "dlq")
    queue = await work_queue(storage, clock, max_deliveries=1, dead_letter_queue="dlq")
    message = make_message(gen, clock, body="d" * 60 * 1024)
    await storage.write_messages(queue, [message], fresh=True)
    assert len(await claim(storage, queue, clock)) == 1
    clock.advance(LEASE_MS / 1000)
    assert await claim(storage, queue, clock) == []  # moved, not delivered again
    [moved] = await read(storage, dlq, clock)
    assert (moved.id, moved.body) == (message.id, message.body)
    assert (await storage.queue_stats(queue, now_ms(clock))).dead_lettered == 1
