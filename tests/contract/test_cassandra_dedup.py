"""Deduplicated posts on Cassandra whose server stops half-way: ids given back, and never a
duplicate of a message that was not stored."""

from __future__ import annotations

from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.ids import IdGenerator
from queuey.storage.cassandra import CassandraStorage, dedup
from queuey.storage.keys import sfx_of
from tests import cassandra as node
from tests.cassandra import cql, messages, now_ms, work_queue

store = pytest.fixture(node.fresh_store, name="store")
gen = pytest.fixture(node.ids, name="gen")


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
