"""CassandraStorage's change log: another server on the cluster learns which queues changed."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.ids import IdGenerator
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.storage.cassandra import CassandraStorage, changes
from queuey.storage.cassandra.session import Session
from tests import cassandra as node
from tests.cassandra import APP, KEYSPACE, LEASE_MS, cql, messages, now_ms, refs, work_queue
from tests.contract.changes import another_process_learns_which_queues_changed, next_changes

store = pytest.fixture(node.fresh_store, name="store")
second = pytest.fixture(node.second_store, name="second")
gen = pytest.fixture(node.ids, name="gen")


async def test_another_server_learns_which_queues_changed(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    await another_process_learns_which_queues_changed(store, second, clock, gen)


async def test_claims_acks_and_extensions_are_no_change_a_release_and_an_unclaim_are(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 3))
    await store.changes_log.drain()
    position, _ = await second.changes(None)
    first, held, third = await store.claim_messages(queue, [1], 3, now_ms(clock), LEASE_MS, False)
    await store.ack_messages(queue, refs([first]), now_ms(clock))
    await store.extend_claims(queue, refs([held]), now_ms(clock), 60_000)
    assert await second.changes(position) == (position, set())

    await store.extend_claims(queue, refs([held]), now_ms(clock), 0)  # released
    position, keys = await second.changes(position)
    assert keys == {(APP, "work")}

    assert await store.unclaim_messages(queue, [third], now_ms(clock), False) == [True]
    assert (await second.changes(position))[1] == {(APP, "work")}


async def test_a_post_is_one_request_its_change_row_follows_shared_by_concurrent_posts(
    store: CassandraStorage, clock: FakeClock, gen: IdGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await work_queue(store)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)  # queue copy made
    await store.changes_log.drain()
    sent = node.count_requests(store, monkeypatch)
    await store.write_messages(queue, messages(gen, clock, 1), fresh=True)
    assert len(sent) == 1 and sent != ["ch_insert"]  # answered: the change row comes after
    await store.changes_log.drain()
    assert sent[1:] == ["ch_insert"]
    rows = cql(store, f"SELECT app, name FROM {KEYSPACE}.changes")
    assert rows == [(APP, "work")]

    sent.clear()
    posts = [store.write_messages(queue, [m], fresh=True) for m in messages(gen, clock, 40)]
    await asyncio.gather(*posts)
    await store.changes_log.drain()
    assert len(sent) - sent.count("ch_insert") <= 40  # posts that wait go together
    assert 1 <= sent.count("ch_insert") <= 20  # a row per round trip, not per post


def late_row(store: CassandraStorage, seconds: int, name: str) -> None:
    """A change row of ``name`` in the bucket ``seconds`` from now, as written by a server
    whose clock is off or whose write committed late."""
    bucket = changes.bucket_now() + seconds
    cql(
        store,
        f"INSERT INTO {KEYSPACE}.changes (bucket, app, name, at) VALUES (%s, %s, %s, %s)",
        bucket, APP, name, uuid.uuid4(),
    )  # fmt: skip


async def test_rows_of_slow_or_fast_clocks_and_late_commits_count_once_within_the_window(
    store: CassandraStorage,
) -> None:
    position, _ = await store.changes(None)
    late_row(store, -changes.BEHIND, "behind")
    late_row(store, changes.AHEAD, "ahead")
    position, keys = await store.changes(position)
    assert keys == {(APP, "behind"), (APP, "ahead")}
    assert await store.changes(position) == (position, set())  # read again, not named again

    late_row(store, -changes.BEHIND - 2, "too late")  # past the window: not read
    assert await store.changes(position) == (position, set())


async def test_each_reader_of_one_store_keeps_its_own_position(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store)
    one, _ = await second.changes(None)
    two, _ = await second.changes(None)
    await store.write_messages(queue, messages(gen, clock, 1))
    one, keys = await next_changes(second, one)
    assert keys == {(APP, "work")}
    two, keys = await second.changes(two)
    assert keys == {(APP, "work")}
    assert await second.changes(one) == (one, set())


async def test_a_window_busier_than_one_read_cannot_tell(
    store: CassandraStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "ROWS", 2)
    position, _ = await store.changes(None)
    for name in ("a", "b"):
        late_row(store, 0, name)
    position, keys = await store.changes(position)
    assert keys is None


async def test_a_failed_write_records_its_change_again_a_little_later(
    store: CassandraStorage,
    second: CassandraStorage,
    clock: FakeClock,
    gen: IdGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(changes, "FOLLOW_UP_S", 0.2)
    queue = await work_queue(store)
    position, _ = await second.changes(None)
    batch = Session.batch

    def timed_out(self: Session, *args: object, **kwargs: object) -> asyncio.Future[object]:
        sent = batch(self, *args, **kwargs)  # type: ignore[arg-type]
        failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def fail(_: object) -> None:  # applied, but the answer says it timed out
            failed.set_exception(StorageUnavailable("Back-end storage unavailable: timeout"))

        sent.add_done_callback(fail)
        return failed

    monkeypatch.setattr(Session, "batch", timed_out)
    with pytest.raises(StorageUnavailable):
        await store.write_messages(queue, messages(gen, clock, 1), fresh=True)
    monkeypatch.setattr(Session, "batch", batch)
    cql(store, f"TRUNCATE {KEYSPACE}.changes")  # as if the batch's change row were lost
    assert await second.changes(position) == (position, set())
    await asyncio.sleep(0.5)
    assert (await second.changes(position))[1] == {(APP, "work")}


async def test_a_write_through_another_server_wakes_only_the_waiters_of_its_queue(
    store: CassandraStorage, second: CassandraStorage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await work_queue(store, "x")
    await work_queue(store, "y")
    notifier = Notifier(store, POLL_INTERVAL)
    with notifier.subscribe((APP, "x")) as x, notifier.subscribe((APP, "y")) as y:
        await x.wait(0)  # the first look wakes everyone once: let it pass
        await asyncio.sleep(0.2)
        await x.wait(0)
        await y.wait(0)
        await second.write_messages(queue, messages(gen, clock, 1))
        started = time.monotonic()
        await x.wait(2.0)
        woken_after = time.monotonic() - started
        y_waited = time.monotonic()
        await y.wait(0.5)
        assert time.monotonic() - y_waited >= 0.45  # not woken
    await notifier.stop()
    assert woken_after < 0.5
