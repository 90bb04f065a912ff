"""The storage contract of work-queue consumption (api.md Part 2): claims and leases, acks,
delayed messages, dead letters, deduplication, stats and change notification. Runs unchanged
on every back-end through the ``storage`` fixture."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import QueueNotFound
from queuey.core.ids import IdGenerator
from queuey.core.models import Claim, ClaimRef, Message, Queue, QueueSettings
from queuey.storage.base import Storage
from tests.contract.changes import next_changes
from tests.contract.test_storage import APP, HOUR_MS, ids, make_message, now_ms, now_s, read

LEASE_MS = 30_000


async def work_queue(
    storage: Storage,
    clock: FakeClock,
    name: str = "work",
    **settings: object,
) -> Queue:
    return await storage.create_queue(APP, name, QueueSettings(**settings), now_s(clock))  # type: ignore[arg-type]


async def post(
    storage: Storage, queue: Queue, gen: IdGenerator, clock: FakeClock, count: int, **kw: object
) -> list[Message]:
    messages = [make_message(gen, clock, body=f"m{i}", **kw) for i in range(count)]  # type: ignore[arg-type]
    await storage.write_messages(queue, messages)
    return messages


async def claim(
    storage: Storage,
    queue: Queue,
    clock: FakeClock,
    limit: int = 1,
    *,
    partitions: tuple[int, ...] = (1,),
    lease_ms: int = LEASE_MS,
    remove: bool = False,
) -> list[Claim]:
    return await storage.claim_messages(queue, partitions, limit, now_ms(clock), lease_ms, remove)


def refs(claims: list[Claim]) -> list[ClaimRef]:
    return [ClaimRef(c.message.partition, c.message.id, c.token) for c in claims]


def claimed_ids(claims: list[Claim]) -> list[str]:
    return [c.message.id for c in claims]


@pytest.fixture
def gen(clock: FakeClock) -> IdGenerator:
    return IdGenerator(clock)


# --- claiming -----------------------------------------------------------------------------------


async def test_claims_take_the_oldest_available_messages_and_never_the_same_twice(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    posted = await post(storage, queue, gen, clock, 7)

    first = await claim(storage, queue, clock, 3)
    second = await claim(storage, queue, clock, 3)
    third = await claim(storage, queue, clock, 3)

    assert claimed_ids(first) + claimed_ids(second) + claimed_ids(third) == ids(posted)
    assert [len(first), len(second), len(third)] == [3, 3, 1]
    assert await claim(storage, queue, clock, 3) == []
    one = first[0]
    assert one.message.body == "m0" and one.message.deliveries == 1
    assert one.expires_ms == now_ms(clock) + LEASE_MS
    assert one.token != second[0].token


async def test_claims_over_several_partitions_take_the_oldest_of_all(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, partitions=3)
    messages = [make_message(gen, clock, partition=p) for p in (2, 1, 3, 1, 2)]
    await storage.write_messages(queue, messages)

    claims = await claim(storage, queue, clock, 4, partitions=(1, 2, 3))
    rest = await claim(storage, queue, clock, 4, partitions=(3,))

    assert claimed_ids(claims) == ids(messages[:4])
    assert [c.message.partition for c in claims] == [2, 1, 3, 1]
    assert rest == []  # partition 3's only message is claimed already
    assert claimed_ids(await claim(storage, queue, clock, 4, partitions=(2,))) == [messages[4].id]


async def test_concurrent_claims_are_disjoint(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    posted = await post(storage, queue, gen, clock, 50)

    results = await asyncio.gather(*(claim(storage, queue, clock, 4) for _ in range(20)))

    everything = [i for result in results for i in claimed_ids(result)]
    assert sorted(everything) == sorted(ids(posted))
    assert len(set(everything)) == 50


async def test_a_claim_whose_lease_ended_makes_the_message_available_with_one_more_delivery(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    [message] = await post(storage, queue, gen, clock, 1)
    [first] = await claim(storage, queue, clock)

    clock.advance(LEASE_MS / 1000 - 0.001)
    assert await claim(storage, queue, clock) == []
    clock.advance(0.001)
    [again] = await claim(storage, queue, clock)

    assert again.message.id == message.id and again.message.body == message.body
    assert (first.message.deliveries, again.message.deliveries) == (1, 2)
    assert again.token != first.token


async def test_claims_skip_expired_messages_and_those_of_a_deleted_queue(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    short = make_message(gen, clock, ttl_ms=1000)
    long = make_message(gen, clock)
    await storage.write_messages(queue, [short, long])
    clock.advance(1)

    assert claimed_ids(await claim(storage, queue, clock, 5)) == [long.id]
    other = await work_queue(storage, clock, "other")
    await post(storage, other, gen, clock, 2)
    await storage.delete_queue(APP, "other")
    assert await claim(storage, other, clock, 5) == []


async def test_at_most_once_claims_remove_the_message_at_once(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    posted = await post(storage, queue, gen, clock, 3)

    claims = await claim(storage, queue, clock, 2, remove=True)

    assert claimed_ids(claims) == ids(posted[:2])
    assert ids(await read(storage, queue, clock)) == [posted[2].id]
    clock.advance(LEASE_MS / 1000)
    assert claimed_ids(await claim(storage, queue, clock, 5)) == [posted[2].id]


# --- acks and extensions ------------------------------------------------------------------------


async def test_an_ack_of_a_current_claim_deletes_the_message(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    posted = await post(storage, queue, gen, clock, 3)
    claims = await claim(storage, queue, clock, 2)

    assert await storage.ack_messages(queue, refs(claims), now_ms(clock)) == [True, True]

    assert ids(await read(storage, queue, clock)) == [posted[2].id]
    clock.advance(LEASE_MS / 1000)
    assert claimed_ids(await claim(storage, queue, clock, 5)) == [posted[2].id]


async def test_an_ack_of_a_claim_that_is_not_current_changes_nothing(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    [message] = await post(storage, queue, gen, clock, 1)
    [first] = await claim(storage, queue, clock)
    clock.advance(LEASE_MS / 1000)

    # The lease ended: no ack, whether or not someone claimed it since.
    assert await storage.ack_messages(queue, refs([first]), now_ms(clock)) == [False]
    [second] = await claim(storage, queue, clock)
    assert await storage.ack_messages(queue, refs([first]), now_ms(clock)) == [False]
    forged = ClaimRef(1, message.id, second.token + 1)
    assert await storage.ack_messages(queue, [forged], now_ms(clock)) == [False]
    assert ids(await read(storage, queue, clock)) == [message.id]

    # The current claim still acks, once.
    assert await storage.ack_messages(queue, refs([second]), now_ms(clock)) == [True]
    assert await storage.ack_messages(queue, refs([second]), now_ms(clock)) == [False]
    assert await read(storage, queue, clock) == []


async def test_acks_report_each_claim_separately(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 2)
    [old] = await claim(storage, queue, clock, lease_ms=1000)
    clock.advance(1)
    current = await claim(storage, queue, clock, 2)  # the old one again, and the other
    unknown = ClaimRef(1, make_message(gen, clock).id, 5)

    done = await storage.ack_messages(queue, [*refs([old]), *refs(current), unknown], now_ms(clock))

    assert done == [False, True, True, False]


async def test_the_current_claim_of_a_message_is_found_by_its_id(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, partitions=2)
    held, free = [make_message(gen, clock, partition=p) for p in (2, 1)]
    await storage.write_messages(queue, [held, free])
    [first] = await claim(storage, queue, clock, partitions=(2,))
    wanted = [(2, held.id), (1, held.id), (1, free.id), (1, make_message(gen, clock).id)]

    assert await storage.current_claims(queue, wanted, now_ms(clock)) == [
        *refs([first]),
        None,
        None,
        None,
    ]
    clock.advance(LEASE_MS / 1000)  # the lease ended, then another claim took the message
    assert await storage.current_claims(queue, wanted[:1], now_ms(clock)) == [None]
    [second] = await claim(storage, queue, clock, partitions=(2,))
    [found] = await storage.current_claims(queue, wanted[:1], now_ms(clock))
    assert found == refs([second])[0] and found.token != first.token

    assert await storage.ack_messages(queue, [found], now_ms(clock)) == [True]
    assert await storage.current_claims(queue, wanted[:1], now_ms(clock)) == [None]


async def test_extending_a_claim_moves_its_lease_end(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 1)
    [held] = await claim(storage, queue, clock)
    clock.advance(20)

    assert await storage.extend_claims(queue, refs([held]), now_ms(clock), 60_000) == [True]

    clock.advance(50)  # past the first lease, within the extension
    assert await claim(storage, queue, clock) == []
    assert await storage.ack_messages(queue, refs([held]), now_ms(clock)) == [True]


async def test_an_extension_of_zero_releases_the_message_at_once(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 1)
    [held] = await claim(storage, queue, clock)

    assert await storage.extend_claims(queue, refs([held]), now_ms(clock), 0) == [True]

    [again] = await claim(storage, queue, clock)
    assert again.message.deliveries == 2
    assert await storage.ack_messages(queue, refs([held]), now_ms(clock)) == [False]


async def test_a_claim_that_is_not_current_cannot_be_extended(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 1)
    [held] = await claim(storage, queue, clock)
    clock.advance(LEASE_MS / 1000)

    assert await storage.extend_claims(queue, refs([held]), now_ms(clock), 60_000) == [False]
    assert len(await claim(storage, queue, clock)) == 1


async def test_an_unclaim_gives_the_message_back_without_counting_the_delivery(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, max_deliveries=1)
    await post(storage, queue, gen, clock, 2)
    held = await claim(storage, queue, clock, 2)
    assert [c.message.deliveries for c in held] == [1, 1]

    assert await storage.unclaim_messages(queue, held[:1], now_ms(clock), False) == [True]

    stats = await storage.queue_stats(queue, now_ms(clock))
    assert (stats.available, stats.claimed, stats.dead_lettered) == (1, 1, 0)
    [again] = await claim(storage, queue, clock)  # not exhausted: the claim did not count
    assert again.message.id == held[0].message.id
    assert again.message.deliveries == 1
    assert await storage.ack_messages(queue, refs(held[:1]), now_ms(clock)) == [False]
    assert await storage.ack_messages(queue, refs([again, held[1]]), now_ms(clock)) == [True] * 2


async def test_an_unclaim_of_a_claim_that_is_not_current_changes_nothing(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 1)
    [held] = await claim(storage, queue, clock)
    clock.advance(LEASE_MS / 1000)
    [again] = await claim(storage, queue, clock)

    assert await storage.unclaim_messages(queue, [held], now_ms(clock), False) == [False]

    assert await claim(storage, queue, clock) == []  # the second claim still holds it
    assert again.message.deliveries == 2
    assert await storage.ack_messages(queue, refs([again]), now_ms(clock)) == [True]


async def test_an_unclaim_of_removed_messages_stores_them_again_as_they_were(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, delivery="at_most_once", max_deliveries=1)
    posted = await post(storage, queue, gen, clock, 3)
    taken = await claim(storage, queue, clock, 2, remove=True)
    assert claimed_ids(await claim(storage, queue, clock, 5, remove=True)) == ids(posted[2:])

    assert await storage.unclaim_messages(queue, taken, now_ms(clock), True) == [True, True]

    again = await claim(storage, queue, clock, 5, remove=True)
    assert claimed_ids(again) == ids(posted[:2])
    assert [c.message.deliveries for c in again] == [1, 1]
    assert [c.message.body for c in again] == ["m0", "m1"]
    stats = await storage.queue_stats(queue, now_ms(clock))
    assert (stats.available, stats.dead_lettered) == (0, 0)


# --- delayed messages ---------------------------------------------------------------------------


async def test_a_delayed_message_is_invisible_until_due(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    due_ms = now_ms(clock) + 10_000
    delayed = replace(make_message(gen, clock), due_ms=due_ms, expires_ms=due_ms + HOUR_MS)
    await storage.write_messages(queue, [delayed])
    pair = [(1, delayed.id)]

    assert await read(storage, queue, clock) == []
    assert await storage.get_messages(queue, pair, now_ms(clock)) == []
    assert await claim(storage, queue, clock) == []
    assert await storage.count_messages(queue, now_ms(clock)) == 0
    stats = await storage.queue_stats(queue, now_ms(clock))
    assert (stats.available, stats.delayed) == (0, 1)

    clock.advance(10)
    assert ids(await read(storage, queue, clock)) == [delayed.id]
    assert ids(await storage.get_messages(queue, pair, now_ms(clock))) == [delayed.id]
    assert claimed_ids(await claim(storage, queue, clock)) == [delayed.id]


async def test_next_change_is_the_earliest_due_time_or_lease_end(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    start = now_ms(clock)
    assert await storage.next_change_ms(queue, start) is None

    await post(storage, queue, gen, clock, 1)
    await claim(storage, queue, clock, lease_ms=8000)
    assert await storage.next_change_ms(queue, start) == start + 8000

    delayed = replace(make_message(gen, clock), due_ms=start + 5000)
    await storage.write_messages(queue, [delayed])
    assert await storage.next_change_ms(queue, start) == start + 5000
    assert await storage.next_change_ms(queue, start + 5000) == start + 8000
    assert await storage.next_change_ms(queue, start + 8000) is None


# --- dead letters -------------------------------------------------------------------------------


async def exhaust(storage: Storage, queue: Queue, clock: FakeClock, times: int) -> None:
    """Claim the queue's one message ``times`` times, letting each lease end."""
    for _ in range(times):
        assert len(await claim(storage, queue, clock)) == 1
        clock.advance(LEASE_MS / 1000)


async def test_a_message_claimed_max_deliveries_times_goes_to_the_dead_letter_queue(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    dlq = await work_queue(storage, clock, "dlq")
    queue = await work_queue(storage, clock, max_deliveries=2, dead_letter_queue="dlq")
    [message] = await post(storage, queue, gen, clock, 1, content_type="application/json")
    await exhaust(storage, queue, clock, 2)

    assert await claim(storage, queue, clock) == []  # moved, not delivered a third time

    [moved] = await read(storage, dlq, clock)
    assert (moved.id, moved.ticks, moved.body, moved.content_type, moved.expires_ms) == (
        message.id,
        message.ticks,
        message.body,
        message.content_type,
        message.expires_ms,
    )
    assert await read(storage, queue, clock) == []
    assert (await storage.queue_stats(queue, now_ms(clock))).dead_lettered == 1
    [there] = await claim(storage, dlq, clock)
    assert there.message.id == message.id and there.message.deliveries == 3
    # Exactly once: nothing further happens on either side.
    await storage.sweep(now_ms(clock), 100)
    assert len(await read(storage, dlq, clock)) == 1
    assert (await storage.queue_stats(queue, now_ms(clock))).dead_lettered == 1


async def test_the_sweep_dead_letters_exhausted_messages_without_a_claim(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    dlq = await work_queue(storage, clock, "dlq", partitions=2)
    queue = await work_queue(
        storage, clock, partitions=3, max_deliveries=1, dead_letter_queue="dlq"
    )
    messages = [make_message(gen, clock, partition=p) for p in (2, 3)]
    await storage.write_messages(queue, messages)
    assert len(await claim(storage, queue, clock, 2, partitions=(1, 2, 3))) == 2
    clock.advance(LEASE_MS / 1000)

    assert await storage.sweep(now_ms(clock), 100) >= 2

    moved = await read(storage, dlq, clock, partitions=(1, 2))
    # Partition 2 exists in the dead-letter queue; partition 3 does not, so it lands in 1.
    assert sorted((m.partition, m.id) for m in moved) == sorted(
        [(1, messages[1].id), (2, messages[0].id)]
    )
    assert [m.deliveries for m in moved] == [1, 1]
    assert (await storage.queue_stats(queue, now_ms(clock))).dead_lettered == 2
    assert await storage.sweep(now_ms(clock), 100) == 0


async def test_without_a_dead_letter_queue_an_exhausted_message_is_dropped_and_counted(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, max_deliveries=1)
    await post(storage, queue, gen, clock, 1)
    await exhaust(storage, queue, clock, 1)

    assert await claim(storage, queue, clock) == []
    assert await read(storage, queue, clock) == []
    assert (await storage.queue_stats(queue, now_ms(clock))).dead_lettered == 1


async def test_a_claim_passes_exhausted_messages_to_reach_available_ones(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    await work_queue(storage, clock, "dlq")
    queue = await work_queue(storage, clock, max_deliveries=1, dead_letter_queue="dlq")
    first = await post(storage, queue, gen, clock, 3)
    assert len(await claim(storage, queue, clock, 3)) == 3
    clock.advance(LEASE_MS / 1000)
    later = await post(storage, queue, gen, clock, 2)

    assert claimed_ids(await claim(storage, queue, clock, 2)) == ids(later)
    assert (await storage.queue_stats(queue, now_ms(clock))).dead_lettered == len(first)


async def test_sweeping_an_ended_lease_keeps_the_delivery_count(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await post(storage, queue, gen, clock, 1)
    await exhaust(storage, queue, clock, 1)

    assert await storage.sweep(now_ms(clock), 100) == 1
    assert await storage.sweep(now_ms(clock), 100) == 0

    [again] = await claim(storage, queue, clock)
    assert again.message.deliveries == 2


# --- stats --------------------------------------------------------------------------------------


async def test_stats_count_available_claimed_and_delayed_messages(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, partitions=2)
    assert await storage.queue_stats(queue, now_ms(clock)) == (
        await storage.queue_stats(queue, now_ms(clock))
    )
    empty = await storage.queue_stats(queue, now_ms(clock))
    assert (empty.available, empty.claimed, empty.delayed, empty.oldest, empty.newest) == (
        0, 0, 0, None, None,
    )  # fmt: skip
    messages = [make_message(gen, clock, partition=p) for p in (1, 2, 1, 2)]
    await storage.write_messages(queue, messages)
    delayed = replace(make_message(gen, clock), due_ms=now_ms(clock) + 5000)
    expired = make_message(gen, clock, ttl_ms=1)
    await storage.write_messages(queue, [delayed, expired])
    clock.advance(0.001)
    await claim(storage, queue, clock, 1, partitions=(1, 2))

    stats = await storage.queue_stats(queue, now_ms(clock))

    assert (stats.available, stats.claimed, stats.delayed, stats.dead_lettered) == (3, 1, 1, 0)
    assert (stats.oldest, stats.newest) == (messages[0].ticks, messages[3].ticks)


# --- deduplication ------------------------------------------------------------------------------


async def test_a_dedup_id_seen_within_the_window_stores_nothing_and_names_the_first(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock, partitions=2)
    first = make_message(gen, clock, partition=2, body="first")
    again = make_message(gen, clock, body="again")
    other = make_message(gen, clock, body="other")

    assert await storage.write_unique(queue, [first], ["order-7"], now_ms(clock), 60_000) == [None]
    clock.advance(59.999)
    result = await storage.write_unique(
        queue, [again, other], ["order-7", None], now_ms(clock), 60_000
    )

    [duplicate, stored] = result
    assert stored is None
    assert duplicate is not None
    assert (duplicate.id, duplicate.ticks, duplicate.partition) == (first.id, first.ticks, 2)
    everything = await read(storage, queue, clock, partitions=(1, 2))
    assert sorted(m.body for m in everything) == ["first", "other"]


async def test_a_dedup_id_is_forgotten_after_its_window(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await storage.write_unique(queue, [make_message(gen, clock)], ["x"], now_ms(clock), 1000)
    clock.advance(1)
    await storage.sweep(now_ms(clock), 100)

    later = make_message(gen, clock)
    assert await storage.write_unique(queue, [later], ["x"], now_ms(clock), 1000) == [None]
    assert later.id in ids(await read(storage, queue, clock))


async def test_a_dedup_id_repeated_within_one_write_is_stored_once(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    one, two = make_message(gen, clock), make_message(gen, clock)

    result = await storage.write_unique(queue, [one, two], ["k", "k"], now_ms(clock), 1000)

    assert result[0] is None and result[1] is not None and result[1].id == one.id
    assert ids(await read(storage, queue, clock)) == [one.id]


async def test_dedup_ids_belong_to_one_queue_and_a_deleted_queue_refuses_writes(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    other = await work_queue(storage, clock, "other")
    await storage.write_unique(queue, [make_message(gen, clock)], ["k"], now_ms(clock), 1000)

    assert await storage.write_unique(
        other, [make_message(gen, clock)], ["k"], now_ms(clock), 1000
    ) == [None]
    await storage.delete_queue(APP, "other")
    with pytest.raises(QueueNotFound):
        await storage.write_unique(other, [make_message(gen, clock)], ["z"], now_ms(clock), 1000)


# --- change notification ------------------------------------------------------------------------


async def test_changes_name_exactly_the_queue_a_write_changed(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(storage, clock)
    await work_queue(storage, clock, "idle")
    position, keys = await storage.changes(None)
    if not storage.shared:  # this process's writes are all there is: nothing to report
        assert (position, keys) == (0, set())
    else:
        assert keys is None  # no position to start from: any queue may have changed

    await post(storage, queue, gen, clock, 1)

    after, keys = await next_changes(storage, position)
    if not storage.shared:
        assert (after, keys) == (0, set())
    else:  # precisely the queue written, at a new position; then nothing more
        assert keys == {(APP, "work")} and after != position
        assert await storage.changes(after) == (after, set())
