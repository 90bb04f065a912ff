"""The storage contract of full scans (export, import and migration): every queue of every
application by position, and a partition's unexpired messages by (ticks, id), whatever their
state. Runs unchanged on every back-end through the ``storage`` fixture."""

from __future__ import annotations

import pytest

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, Queue
from queuey.storage.base import Storage
from tests.contract.test_storage import (
    APP,
    HOUR_MS,
    OTHER_APP,
    SUFFIX_A,
    SUFFIX_B,
    make_message,
    make_queue,
    message_at,
    now_ms,
)


@pytest.fixture
def gen(clock: FakeClock) -> IdGenerator:
    return IdGenerator(clock)


async def scan_all_queues(storage: Storage, page: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    after: str | None = None
    while True:
        found = await storage.scan_queues(after, page)
        assert len(found) <= page
        seen += [(queue.app, queue.name) for _, queue in found]
        if len(found) < page:
            return seen
        after = found[-1][0]


async def scan_partition(
    storage: Storage, queue: Queue, partition: int, now: int, page: int
) -> list[Message]:
    seen: list[Message] = []
    after: tuple[int, str] | None = None
    while True:
        found = await storage.scan_messages(queue, partition, after, page, now)
        assert len(found) <= page
        seen += found
        if len(found) < page:
            return seen
        after = (found[-1].ticks, found[-1].id)


async def test_a_scan_of_queues_visits_every_queue_of_every_application_once(
    storage: Storage, clock: FakeClock
) -> None:
    assert await storage.scan_queues(None, 10) == []
    names = [(APP, f"q{i:02}") for i in range(7)] + [(OTHER_APP, f"r{i}") for i in range(4)]
    for app, name in names:
        await make_queue(storage, clock, name, app=app, partitions=2)
    for page in (1, 3, 100):
        assert sorted(await scan_all_queues(storage, page)) == sorted(names)
    found = await storage.scan_queues(None, 100)
    assert all(queue.partitions == 2 and queue.settings.partitions == 2 for _, queue in found)
    assert len({position for position, _ in found}) == len(names)


async def test_a_scan_of_queues_resumes_at_a_position_kept_as_text(
    storage: Storage, clock: FakeClock
) -> None:
    for i in range(6):
        await make_queue(storage, clock, f"q{i}")
    first = await storage.scan_queues(None, 3)
    position = str(first[-1][0])  # as a checkpoint file gives it back
    await storage.delete_queue(APP, first[0][1].name)  # gone behind the position: no matter
    rest = await storage.scan_queues(position, 100)
    seen = [q.name for _, q in first] + [q.name for _, q in rest]
    assert sorted(seen) == [f"q{i}" for i in range(6)]
    assert await storage.scan_queues(rest[-1][0], 100) == []


async def test_a_scan_of_messages_holds_every_unexpired_one_in_order_whatever_its_state(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await make_queue(storage, clock, partitions=2)
    now = now_ms(clock)
    ticks = gen.next()[1] + 10
    plain = [message_at(clock, ticks + i) for i in range(5)]
    # Two ids at one tick: ordered by id.
    twins = [message_at(clock, ticks + 100, SUFFIX_B), message_at(clock, ticks + 100, SUFFIX_A)]
    delayed = Message(
        message_at(clock, ticks + 200).id, ticks + 200, 1, "later", "application/json",
        now + HOUR_MS, due_ms=now + 60_000, deliveries=0,
    )  # fmt: skip
    expired = Message(
        message_at(clock, ticks + 300).id, ticks + 300, 1, "gone", "text/plain", now - 1
    )
    other = make_message(gen, clock, partition=2, body="two")
    await storage.write_messages(queue, [*plain, *twins, other])
    await storage.write_messages(queue, [delayed, expired])
    [claimed] = await storage.claim_messages(queue, [1], 1, now, 30_000, False)
    expected = sorted([*plain, *twins, delayed], key=lambda m: (m.ticks, m.id))
    for page in (1, 2, 100):
        scanned = await scan_partition(storage, queue, 1, now, page)
        assert [m.id for m in scanned] == [m.id for m in expected]
    by_id = {m.id: m for m in await scan_partition(storage, queue, 1, now, 100)}
    assert by_id[claimed.message.id].deliveries == 1
    assert by_id[delayed.id].due_ms == delayed.due_ms
    assert (by_id[delayed.id].body, by_id[delayed.id].content_type) == ("later", "application/json")
    assert by_id[plain[4].id].expires_ms == plain[4].expires_ms
    assert [m.id for m in await storage.scan_messages(queue, 2, None, 10, now)] == [other.id]
    assert await storage.scan_messages(queue, 3, None, 10, now) == []
    later = plain[4].expires_ms
    assert await storage.scan_messages(queue, 1, None, 10, later) == []


async def test_a_scan_of_a_deleted_queue_finds_nothing(
    storage: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    queue = await make_queue(storage, clock)
    await storage.write_messages(queue, [make_message(gen, clock)])
    assert len(await storage.scan_messages(queue, 1, None, 10, now_ms(clock))) == 1
    await storage.delete_queue(APP, queue.name)
    assert await storage.scan_messages(queue, 1, None, 10, now_ms(clock)) == []
