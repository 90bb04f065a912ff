"""What CassandraStorage does for work queues beyond the shared contract: claim columns and
their TTLs, several servers claiming from one queue, lightweight transactions whose outcome is
unknown, long polling across servers, and the columns added to tables of the earlier schema."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace
from functools import partial
from typing import Any

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Caller, Claim, QueueSettings
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage.cassandra import CassandraStorage, candidates, floors
from queuey.storage.cassandra.session import unavailable
from tests import cassandra as node
from tests.cassandra import APP, LEASE_MS, cql, messages, now_ms, refs, row_of, work_queue

store = pytest.fixture(node.fresh_store, name="store")
second = pytest.fixture(node.second_store, name="second")
gen = pytest.fixture(node.ids, name="gen")


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


# --- requests of claims and acks ------------------------------------------------------------


async def test_concurrent_claims_share_one_read_and_one_round_and_an_ack_of_many_is_one_round(
    store: CassandraStorage,
    clock: FakeClock,
    gen: IdGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(floors, "FLOOR_REFRESH_S", 600.0)  # no floor read or raise meanwhile
    monkeypatch.setattr(candidates, "POOL_S", 600.0)
    queue = await work_queue(store)
    posted = messages(gen, clock, 300)
    await store.write_messages(queue, posted)
    await store.changes_log.drain()  # the change rows of writes: not part of what is counted
    # The first claim makes the floor, the second starts there and its read brings
    # candidates for the next claims.
    for message in posted[:2]:
        [claim] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
        assert claim.message.id == message.id
    sent = node.count_requests(store, monkeypatch)

    # A claim of 10 is its one transaction round (all 10 rows) beside the one batch of its
    # leases' index rows.
    ten = await store.claim_messages(queue, [1], 10, now_ms(clock), LEASE_MS, False)
    assert [c.message.id for c in ten] == [m.id for m in posted[2:12]]
    assert sorted(sent) == ["batch", "conditional batch"]
    sent.clear()
    assert await store.ack_messages(queue, refs(ten), now_ms(clock)) == [True] * 10
    assert sent == ["conditional batch"]  # an ack of 10: one round

    # Eight concurrent claims take different rows, in one round between them, and index their
    # leases in one batch.
    sent.clear()
    claims = partial(store.claim_messages, queue, [1], 10, now_ms(clock), LEASE_MS, False)
    eight = await asyncio.gather(*(claims() for _ in range(8)))
    ids = sorted(c.message.id for got in eight for c in got)
    assert ids == [m.id for m in posted[12:92]]
    assert sorted(sent) == ["batch", "conditional batch"]
    sent.clear()
    acks = [store.ack_messages(queue, refs(got), now_ms(clock)) for got in eight]
    assert await asyncio.gather(*acks) == [[True] * 10] * 8
    assert sent == ["conditional batch"]

    # A claim given back is claimed first again: it drops the candidates read past it.
    [given] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    assert await store.unclaim_messages(queue, [given], now_ms(clock), False) == [True]
    [again] = await store.claim_messages(queue, [1], 1, now_ms(clock), LEASE_MS, False)
    assert again.message.id == given.message.id == posted[92].id


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
    service = QueueService(store, [APP], clock, Notifier(store, POLL_INTERVAL))
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
    # The other server's change row is read within a poll interval (50 ms).
    assert statistics.median(latencies) < 0.1, latencies


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
