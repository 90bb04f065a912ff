"""CassandraStorage keeps a queue's counts for at most KEPT_MS (storage/cassandra/store.py): a
second stats call reads no message, calls at once share one count, and another server's writes
show once that time has passed (this process's own writes and the clock show at once: the
contract tests of tests/contract/test_counts.py run on Cassandra too)."""

from __future__ import annotations

import asyncio

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.store import KEPT_MS
from tests import cassandra as node
from tests.cassandra import count_requests, messages, now_ms, work_queue

store = pytest.fixture(node.fresh_store, name="store")
second = pytest.fixture(node.second_store, name="second")
gen = pytest.fixture(node.ids, name="gen")

COUNTING = {"s_available", "s_claimed", "s_delayed"}


async def test_a_second_stats_or_count_reads_no_message_and_calls_at_once_share_one(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 20))
    sent = count_requests(store, monkeypatch)

    now = now_ms(clock)
    found = await asyncio.gather(
        *(store.queue_stats(queue, now) for _ in range(4)),
        *(store.count_messages(queue, now) for _ in range(4)),
    )
    assert found[4:] == [20] * 4
    counting = [key for key in sent if key in COUNTING]
    assert sorted(set(counting)) == sorted(COUNTING)
    assert len(counting) == len(COUNTING)  # one bucket, counted once

    sent.clear()
    clock.advance(KEPT_MS / 2000)
    assert await store.count_messages(queue, now_ms(clock)) == 20
    assert [key for key in sent if key in COUNTING] == []


async def test_another_servers_writes_show_within_the_time_counts_are_kept(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 3))
    assert await store.count_messages(queue, now_ms(clock)) == 3

    await second.write_messages(queue, messages(gen, clock, 2))
    assert await second.count_messages(queue, now_ms(clock)) == 5
    assert await store.count_messages(queue, now_ms(clock)) == 3  # kept

    clock.advance(KEPT_MS / 1000)
    assert await store.count_messages(queue, now_ms(clock)) == 5
