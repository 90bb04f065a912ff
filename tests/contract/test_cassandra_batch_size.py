"""Cassandra refuses a batch that spans partitions over its ``batch_size_fail_threshold`` (the
test node keeps the default, 50 KiB). Writes the store counts as too big go apart; a write it
counted as small enough and Cassandra refused all the same (a node configured lower) is sent
again apart, stored whole."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.storage.cassandra import CassandraStorage, coalescer, messages
from tests import cassandra as node
from tests.cassandra import LEASE_MS, now_ms, work_queue
from tests.cassandra import messages as made

store = pytest.fixture(node.fresh_store, name="store")
gen = pytest.fixture(node.ids, name="gen")

KIB = 1024


async def stored(store: CassandraStorage, clock: FakeClock, name: str = "work") -> list[str]:
    return [m.body for m in await node.stored(store, clock, name)]


async def test_a_write_counted_just_below_the_limit_goes_as_one_request(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the store counts is not less than what Cassandra does: a write it counts as
    # just fitting is not refused.
    queue = await work_queue(store)
    await store.write_messages(queue, made(gen, clock, 1), fresh=True)  # queue copy, registry
    count = 100
    room = messages.BATCH_BYTES - 2 * messages.BOOKKEEPING_BYTES - 64
    body = room // count - messages.ROW_BYTES - len("text/plain")
    posted = [replace(m, body="b" * body) for m in made(gen, clock, count)]
    assert not messages.oversized([{(1, m.ticks, i): m for i, m in enumerate(posted)}], 1)
    sent = node.count_requests(store, monkeypatch)
    await store.write_messages(queue, posted, fresh=True)
    assert [what for what in sent if what != "ch_insert"] == ["batch"]
    assert len(await stored(store, clock)) == count + 1


async def test_shared_post_requests_full_as_counted_are_not_refused(
    store: CassandraStorage,
    clock: FakeClock,
    gen: IdGenerator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What the coalescer counts is not less than what Cassandra does: its fullest shared
    # requests (MOST_BYTES as counted) are not refused.
    queue = await work_queue(store)
    await store.write_messages(queue, made(gen, clock, 1), fresh=True)
    # Small messages: the rows' own cost, not their bodies, fills the requests.
    posted = [[replace(m, body=f"{i:03d}" + "w" * 20)] for i, m in enumerate(made(gen, clock, 400))]
    sent = node.count_requests(store, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="queuey.cassandra"):
        await asyncio.gather(*(store.write_messages(queue, post, fresh=True) for post in posted))
    assert "refused" not in caplog.text
    assert sent.count("batch") < len(posted) // 10  # they did go together
    assert set(await stored(store, clock)) >= {post[0].body for post in posted}


async def test_a_write_refused_for_its_size_is_sent_again_apart(
    store: CassandraStorage,
    clock: FakeClock,
    gen: IdGenerator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(messages, "BATCH_BYTES", 16 << 20)  # counted as small enough
    queue = await work_queue(store)
    posted = [replace(m, body=f"{i:03d}" + "x" * KIB) for i, m in enumerate(made(gen, clock, 100))]
    sent = node.count_requests(store, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="queuey.cassandra"):
        await store.write_messages(queue, posted, fresh=True)
    assert sent.count("batch") == 2  # refused, then the messages by themselves
    assert "refused a batch" in caplog.text
    assert await stored(store, clock) == [m.body for m in posted]


async def test_shared_post_requests_refused_for_their_size_are_sent_again_apart(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "BATCH_BYTES", 16 << 20)
    monkeypatch.setattr(coalescer, "MOST_BYTES", 16 << 20)
    queue = await work_queue(store)
    await store.write_messages(queue, made(gen, clock, 1), fresh=True)
    posted = [
        [replace(m, body=f"{i:03d}" + "y" * 8 * KIB)] for i, m in enumerate(made(gen, clock, 30))
    ]
    await asyncio.gather(*(store.write_messages(queue, post, fresh=True) for post in posted))
    assert set(await stored(store, clock)) >= {post[0].body for post in posted}


async def test_a_dead_letter_refused_for_its_size_is_copied_apart(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "BATCH_BYTES", 16 << 20)
    await work_queue(store, "dlq")
    queue = await work_queue(store, max_deliveries=1, dead_letter_queue="dlq")
    [message] = [replace(m, body="d" * 60 * KIB) for m in made(gen, clock, 1)]
    await store.write_messages(queue, [message], fresh=True)
    assert len(await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)) == 1
    clock.advance(LEASE_MS / 1000)
    assert await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False) == []
    assert await stored(store, clock, "dlq") == [message.body]
