"""The claim floors that keep Cassandra claims off the tombstones of acknowledged messages:
shared by every process, stopped by claimed messages, lowered by writes below them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator, uuid1_hex
from queuey.core.models import Queue
from queuey.storage.cassandra import CassandraStorage, floors
from queuey.storage.cassandra import messages as messages_module
from queuey.storage.keys import sfx_of
from tests import cassandra as node
from tests.cassandra import HOUR_MS, LEASE_MS, cql, messages, now_ms, refs, work_queue

store = pytest.fixture(node.fresh_store, name="store")
second = pytest.fixture(node.second_store, name="second")
gen = pytest.fixture(node.ids, name="gen")


def position(store: CassandraStorage, queue: Queue) -> tuple[int, int] | None:
    """Where this process's claims of the queue's partition 1 start."""
    floor = store.floors.floor(queue.qid, 1)
    assert floor is not None
    return floor.position


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


async def test_concurrent_slow_writes_lower_a_queues_floors_a_round_at_a_time(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages_module, "FLOOR_SLOW_S", -1.0)  # every write lowers the floors
    queue = await work_queue(store, partitions=2)
    sent = node.count_requests(store, monkeypatch)
    batches = [messages(gen, clock, 2) for _ in range(40)]
    for i, batch in enumerate(batches):  # both partitions in every write
        batches[i] = [replace(batch[0], partition=1), replace(batch[1], partition=2)]

    await asyncio.gather(*(store.write_messages(queue, batch) for batch in batches))

    # Each round is one read of the floors and one transaction per partition; the writes
    # that came while a round was out wait for the next one instead of racing it.
    rounds = sent.count("fl_read")
    assert 1 <= rounds < len(batches) / 2
    assert sent.count("fl_create") + sent.count("fl_move") <= 2 * rounds + 2
    found = cql(store, f"SELECT part, ticks FROM {node.KEYSPACE}.floors WHERE qid = %s", queue.qid)
    assert sorted(part for part, _ in found) == [1, 2]


async def test_concurrent_claims_read_and_raise_a_queues_floors_once(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 100))
    await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)  # reads them
    monkeypatch.setattr(floors, "FLOOR_REFRESH_S", 0.0)  # every claim finds them due
    sent = node.count_requests(store, monkeypatch)

    claims = await asyncio.gather(
        *(store.claim_messages(queue, [1], 5, now_ms(clock), LEASE_MS, False) for _ in range(8))
    )

    # One claim reads (and may raise) the floors; the others start from this process's copy
    # instead of racing it with transactions on the same row.
    assert sent.count("fl_read") == 1
    ids = [c.message.id for batch in claims for c in batch]
    assert len(ids) == len(set(ids)) == 40
