"""The storage contract's :meth:`Storage.usage` (what quotas measure), on every back-end: an
application's live messages, delayed and claimed ones included, and their bodies' UTF-8 bytes;
acks, deletes, purges, expiry, removing claims and deleted queues take them out."""

from __future__ import annotations

import dataclasses

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import QueueSettings
from queuey.core.quotas import Usage
from queuey.storage.base import Storage
from queuey.storage.cassandra import messages as cassandra_messages
from queuey.storage.cassandra import store as cassandra_store
from tests.contract.test_storage import (
    APP,
    HOUR_MS,
    OTHER_APP,
    make_message,
    make_queue,
    now_ms,
    now_s,
)


async def test_usage_counts_an_applications_live_messages_and_their_utf8_bytes(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    assert await storage.usage(APP, now_ms(clock)) == Usage(0, 0)
    first = await make_queue(storage, clock, "first", partitions=3)
    second = await make_queue(storage, clock, "second")
    theirs = await make_queue(storage, clock, "first", app=OTHER_APP)
    await storage.write_messages(
        first, [make_message(gen, clock, p, "é" * 5) for p in (1, 2, 3)]
    )  # 10 bytes each
    delayed = dataclasses.replace(
        make_message(gen, clock, 1, "later"), due_ms=now_ms(clock) + HOUR_MS
    )
    await storage.write_messages(second, [delayed, make_message(gen, clock, 1, "ab")])
    await storage.write_messages(second, [make_message(gen, clock, 1, "gone", ttl_ms=1000)])
    await storage.write_messages(theirs, [make_message(gen, clock, 1, "x" * 100)])
    assert await storage.usage(APP, now_ms(clock)) == Usage(6, 30 + 5 + 2 + 4)
    assert await storage.usage(OTHER_APP, now_ms(clock)) == Usage(1, 100)
    clock.advance(2)  # "gone" expired
    assert await storage.usage(APP, now_ms(clock)) == Usage(5, 37)
    claimed = await storage.claim_messages(first, [1, 2, 3], 2, now_ms(clock), 30_000, False)
    assert await storage.usage(APP, now_ms(clock)) == Usage(5, 37)  # claimed: still stored
    await storage.ack_messages(first, [c.ref for c in claimed], now_ms(clock))
    assert await storage.usage(APP, now_ms(clock)) == Usage(3, 17)


async def test_deletes_purges_removing_claims_and_deleted_queues_leave_the_usage(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, "q")
    removing = await storage.create_queue(
        APP, "at_most_once", QueueSettings(delivery="at_most_once"), now_s(clock)
    )
    other = await make_queue(storage, clock, "other")
    kept = [make_message(gen, clock, 1, f"m{i}") for i in range(4)]
    await storage.write_messages(queue, kept)
    await storage.write_messages(removing, [make_message(gen, clock, 1, "abc")])
    await storage.write_messages(other, [make_message(gen, clock, 1, "abcd")])
    assert await storage.usage(APP, now_ms(clock)) == Usage(6, 15)
    await storage.delete_messages(queue, [(1, kept[0].id)])
    assert await storage.usage(APP, now_ms(clock)) == Usage(5, 13)
    await storage.claim_messages(removing, [1], 10, now_ms(clock), 30_000, True)
    assert await storage.usage(APP, now_ms(clock)) == Usage(4, 10)
    await storage.purge_messages(queue, now_ms(clock))
    assert await storage.usage(APP, now_ms(clock)) == Usage(1, 4)
    await storage.delete_queue(APP, "other")
    assert await storage.usage(APP, now_ms(clock)) == Usage(0, 0)


async def test_usage_walks_every_queue_and_every_message(
    storage: Storage, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cassandra reads queues and message bodies a page at a time: pages of 2 here.
    monkeypatch.setattr(cassandra_store, "QUEUE_PAGE", 2)
    monkeypatch.setattr(cassandra_messages, "USAGE_PAGE", 2)
    gen = IdGenerator(clock)
    for name in ("a", "b", "c", "d", "e"):
        queue = await make_queue(storage, clock, name, partitions=2)
        await storage.write_messages(
            queue, [make_message(gen, clock, 1 + i % 2, "xyz") for i in range(5)]
        )
    assert await storage.usage(APP, now_ms(clock)) == Usage(25, 75)
