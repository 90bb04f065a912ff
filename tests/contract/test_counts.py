"""Stats and counts stay exact whatever changed the queue since they were last taken: every kind
of write, the clock alone (expiry, a delayed message falling due, a lease ending), and, on a
store that several processes share, another process's writes. Back-ends may keep counts between
calls (storage/counts.py); these tests take one before each change, so a count kept too long
shows. Runs on every back-end through the ``storage`` fixture."""

from __future__ import annotations

from dataclasses import replace

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Queue
from queuey.storage.base import Storage
from tests.contract.test_claims import LEASE_MS, claim, gen, post, refs, work_queue
from tests.contract.test_storage import APP, make_message, now_ms

__all__ = ["gen"]  # the fixture


async def counts(storage: Storage, queue: Queue, clock: FakeClock) -> tuple[int, ...]:
    """(available, claimed, delayed, dead-lettered, count) at the clock's now."""
    now = now_ms(clock)
    stats = await storage.queue_stats(queue, now)
    count = await storage.count_messages(queue, now)
    return stats.available, stats.claimed, stats.delayed, stats.dead_lettered, count


async def clocked_queue(
    storage: Storage, clock: FakeClock, gen: IdGenerator, lasting: int, ms: tuple[int, int, int]
) -> Queue:
    """A queue of ``lasting`` messages, the oldest claimed, one that expires and one delayed:
    the lease ends, the delayed message falls due and the other expires ``ms`` from now."""
    lease_ms, due_ms, ttl_ms = ms
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, lasting)
    await storage.write_messages(queue, [make_message(gen, clock, ttl_ms=ttl_ms)])
    delayed = replace(make_message(gen, clock), due_ms=now_ms(clock) + due_ms)
    await storage.write_messages(queue, [delayed])
    await claim(storage, queue, clock, 1, lease_ms=lease_ms)
    return queue


async def test_counts_follow_every_kind_of_write(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, max_deliveries=2, dead_letter_queue="dead")
    dead = await work_queue(storage, clock, "dead")
    assert await counts(storage, queue, clock) == (0, 0, 0, 0, 0)

    posted = await post(storage, queue, gen, clock, 6)
    assert await counts(storage, queue, clock) == (6, 0, 0, 0, 6)

    delayed = replace(make_message(gen, clock), due_ms=now_ms(clock) + 60_000)
    await storage.write_messages(queue, [delayed])
    assert await counts(storage, queue, clock) == (6, 0, 1, 0, 6)

    unique = [make_message(gen, clock)]
    await storage.write_unique(queue, unique, ["d1"], now_ms(clock), 60_000)
    assert await counts(storage, queue, clock) == (7, 0, 1, 0, 7)

    held = await claim(storage, queue, clock, 3)
    assert await counts(storage, queue, clock) == (4, 3, 1, 0, 7)

    assert await storage.ack_messages(queue, refs(held[:1]), now_ms(clock)) == [True]
    assert await counts(storage, queue, clock) == (4, 2, 1, 0, 6)

    assert await storage.extend_claims(queue, refs(held[1:2]), now_ms(clock), 0) == [True]
    assert await counts(storage, queue, clock) == (5, 1, 1, 0, 6)  # released

    assert await storage.unclaim_messages(queue, held[2:], now_ms(clock), False) == [True]
    assert await counts(storage, queue, clock) == (6, 0, 1, 0, 6)

    taken = await claim(storage, queue, clock, 2, remove=True)
    assert await counts(storage, queue, clock) == (4, 0, 1, 0, 4)
    assert await storage.unclaim_messages(queue, taken, now_ms(clock), True) == [True, True]
    assert await counts(storage, queue, clock) == (6, 0, 1, 0, 6)

    await storage.delete_messages(queue, [(1, posted[5].id)])
    assert await counts(storage, queue, clock) == (5, 0, 1, 0, 5)

    # Dead letters: the oldest message's second delivery ends, then a claim meets it.
    [exhausted] = await claim(storage, queue, clock, 1, lease_ms=1000)
    assert exhausted.message.deliveries == 2
    assert await counts(storage, queue, clock) == (4, 1, 1, 0, 5)
    clock.advance(1)
    assert await counts(storage, queue, clock) == (5, 0, 1, 0, 5)  # exhausted, still counted
    assert await counts(storage, dead, clock) == (0, 0, 0, 0, 0)
    [next_one] = await claim(storage, queue, clock, 1)
    assert next_one.message.id != exhausted.message.id
    assert await counts(storage, queue, clock) == (3, 1, 1, 1, 4)
    assert await counts(storage, dead, clock) == (1, 0, 0, 0, 1)

    assert await storage.purge_messages(queue, now_ms(clock)) == 5
    assert await counts(storage, queue, clock) == (0, 0, 0, 1, 0)


async def test_counts_follow_dead_letters_and_expiry_of_the_sweep(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, max_deliveries=1, dead_letter_queue="dead")
    dead = await work_queue(storage, clock, "dead")
    await post(storage, queue, gen, clock, 2)
    await claim(storage, queue, clock, 1, lease_ms=1000)
    clock.advance(1)
    assert await counts(storage, queue, clock) == (2, 0, 0, 0, 2)
    assert await counts(storage, dead, clock) == (0, 0, 0, 0, 0)

    while await storage.sweep(now_ms(clock), 100) == 100:
        pass

    assert await counts(storage, queue, clock) == (1, 0, 0, 1, 1)
    assert await counts(storage, dead, clock) == (1, 0, 0, 0, 1)


async def test_counts_follow_the_clock_expiry_due_time_and_lease_end(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await clocked_queue(storage, clock, gen, 2, (2000, 3000, 5000))
    start = clock.time_ns()
    assert await counts(storage, queue, clock) == (2, 1, 1, 0, 3)

    clock.advance(1.999)
    assert await counts(storage, queue, clock) == (2, 1, 1, 0, 3)
    clock.advance(0.001)  # the lease ends
    assert await counts(storage, queue, clock) == (3, 0, 1, 0, 3)
    clock.advance(1)  # the delayed message is due
    assert await counts(storage, queue, clock) == (4, 0, 0, 0, 4)
    clock.advance(2)  # one expires
    assert await counts(storage, queue, clock) == (3, 0, 0, 0, 3)

    back = FakeClock(start_ns=start)  # a clock behind the last count (another process's)
    assert await counts(storage, queue, back) == (2, 1, 1, 0, 3)


async def test_oldest_and_newest_follow_the_clock(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    [first] = await post(storage, queue, gen, clock, 1)
    later = replace(make_message(gen, clock), due_ms=now_ms(clock) + 1000)
    await storage.write_messages(queue, [later])
    stats = await storage.queue_stats(queue, now_ms(clock))
    assert (stats.oldest, stats.newest) == (first.ticks, first.ticks)

    clock.advance(1)
    stats = await storage.queue_stats(queue, now_ms(clock))
    assert (stats.oldest, stats.newest) == (first.ticks, later.ticks)


async def test_counts_of_a_deleted_queue_are_none(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 2)
    assert await counts(storage, queue, clock) == (2, 0, 0, 0, 2)

    await storage.delete_queue(APP, queue.name)

    assert await storage.count_messages(queue, now_ms(clock)) == 0
    again = await work_queue(storage, clock)
    assert await counts(storage, again, clock) == (0, 0, 0, 0, 0)


async def test_counts_of_each_queue_are_their_own(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    first = await work_queue(storage, clock, "first")
    second = await work_queue(storage, clock, "second")
    await post(storage, first, gen, clock, 2)
    assert await counts(storage, first, clock) == (2, 0, 0, 0, 2)
    assert await counts(storage, second, clock) == (0, 0, 0, 0, 0)

    await post(storage, second, gen, clock, 1)
    await claim(storage, first, clock, 1)

    assert await counts(storage, first, clock) == (1, 1, 0, 0, 2)
    assert await counts(storage, second, clock) == (1, 0, 0, 0, 1)


async def test_a_lease_made_shorter_ends_the_claim_on_time(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 1)
    held = await claim(storage, queue, clock, 1, lease_ms=LEASE_MS)
    assert await counts(storage, queue, clock) == (0, 1, 0, 0, 1)

    assert await storage.extend_claims(queue, refs(held), now_ms(clock), 1000) == [True]
    clock.advance(1)

    assert await counts(storage, queue, clock) == (1, 0, 0, 0, 1)
