"""The storage contract (:class:`queuey.storage.base.Storage`), run against every back-end.

Each test states one behaviour of the contract and runs unchanged on every back-end through the
``storage`` fixture; nothing here knows which back-end it talks to. Where a test adapts one of
the original Queuey's storage tests (docs/reference/original-tests.md, section G), its comment
names the item (``G51``). Items G49, G53 and G64 (a string instead of a list, a ``uuid.UUID``
id) are type errors here, and G65 tests the original's Message class, so they have no
counterpart.

Ids come from :class:`IdGenerator` on the fake clock, so ids are strictly increasing in time;
tests about ordering by (ticks, id) build ids at chosen ticks with :func:`uuid1_hex`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import overload

import pytest

from queuey.core.clock import FakeClock
from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound, StorageUnavailable
from queuey.core.ids import IdGenerator, ticks_from_ns, uuid1_hex
from queuey.core.models import Cursor, Message, Queue, QueueSettings
from queuey.storage.base import Storage

APP = "myapp"
OTHER_APP = "otherapp"
HOUR_MS = 3_600_000
# Two fixed clock-sequence + node parts (16 hex chars, variant bits 10xx) for ids at chosen ticks.
SUFFIX_A = "8000000000000001"
SUFFIX_B = "8000000000000002"


# --- helpers ------------------------------------------------------------------------------------


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


def now_s(clock: FakeClock) -> float:
    return clock.time_ns() / 1_000_000_000


def make_message(
    gen: IdGenerator,
    clock: FakeClock,
    partition: int = 1,
    body: str = "body",
    *,
    content_type: str = "text/plain",
    ttl_ms: int = HOUR_MS,
) -> Message:
    """A new message with a fresh id, expiring ``ttl_ms`` after the clock's now."""
    message_id, ticks = gen.next()
    return Message(
        id=message_id,
        ticks=ticks,
        partition=partition,
        body=body,
        content_type=content_type,
        expires_ms=now_ms(clock) + ttl_ms,
    )


def message_at(clock: FakeClock, ticks: int, suffix: str = SUFFIX_A, partition: int = 1) -> Message:
    """A live message whose id carries exactly ``ticks``."""
    return Message(
        id=uuid1_hex(ticks, suffix),
        ticks=ticks,
        partition=partition,
        body=f"at {ticks} {suffix}",
        content_type="text/plain",
        expires_ms=now_ms(clock) + HOUR_MS,
    )


def ids(messages: Sequence[Message]) -> list[str]:
    return [m.id for m in messages]


async def make_queue(
    storage: Storage,
    clock: FakeClock,
    name: str = "q",
    *,
    app: str = APP,
    partitions: int = 1,
) -> Queue:
    return await storage.create_queue(app, name, QueueSettings(partitions=partitions), now_s(clock))


async def read(
    storage: Storage,
    queue: Queue,
    clock: FakeClock,
    partitions: Sequence[int] = (1,),
    *,
    cursor: Cursor | None = None,
    descending: bool = False,
    limit: int = 1000,
) -> list[Message]:
    return await storage.read_messages(queue, partitions, cursor, descending, limit, now_ms(clock))


async def sweep_until_done(storage: Storage, now: int, limit: int, max_calls: int) -> list[int]:
    """Sweep until a call reclaims fewer than ``limit``; the counts of every call."""
    counts: list[int] = []
    while len(counts) < max_calls:
        counts.append(await storage.sweep(now, limit))
        if counts[-1] < limit:
            return counts
    raise AssertionError(f"sweep still busy after {max_calls} calls: {counts}")


class _Fault(Exception):
    """Raised by a batch in the middle of being written."""


class _FailingBatch(Sequence[Message]):
    """A batch whose item at ``fail_at`` cannot be produced: a fault in the middle of a write."""

    def __init__(self, messages: list[Message], fail_at: int) -> None:
        self._messages = messages
        self._fail_at = fail_at

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Message]: ...

    def __getitem__(self, index: int | slice) -> Message | Sequence[Message]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index == self._fail_at or index == self._fail_at - len(self):
            raise _Fault(f"item {index} cannot be produced")
        return self._messages[index]


# --- the store ----------------------------------------------------------------------------------


async def test_storage_declares_its_name_node_count_and_sharing(storage: Storage) -> None:
    assert storage.name in ("memory", "sqlite", "cassandra")
    assert isinstance(storage.nodes, int) and storage.nodes >= 1
    assert isinstance(storage.shared, bool)


async def test_ping_returns_when_the_store_answers(storage: Storage) -> None:
    await storage.ping()


# --- queues -------------------------------------------------------------------------------------


async def test_create_queue_returns_the_queue_with_its_settings_and_creation_time(
    storage: Storage, clock: FakeClock
) -> None:
    # G59, G63: a registered queue has the partitions it was registered with.
    settings = QueueSettings(
        partitions=3, type="public", consistency="weak", principles=("app:friend", "user:7")
    )
    queue = await storage.create_queue(APP, "fredrick", settings, 1_700_000_123.25)

    assert (queue.app, queue.name, queue.created, queue.settings) == (
        APP,
        "fredrick",
        1_700_000_123.25,
        settings,
    )
    assert queue.partitions == 3


async def test_get_queue_returns_what_create_queue_returned(
    storage: Storage, clock: FakeClock
) -> None:
    settings = QueueSettings(
        partitions=5, type="public", consistency="very_strong", principles=("app:friend",)
    )
    created = await storage.create_queue(APP, "fredrick", settings, now_s(clock))

    assert await storage.get_queue(APP, "fredrick") == created


async def test_get_queue_of_an_unknown_name_returns_none(
    storage: Storage, clock: FakeClock
) -> None:
    # G63: information about an unknown queue is empty.
    await make_queue(storage, clock, "fredrick")

    assert await storage.get_queue(APP, "smith") is None
    assert await storage.get_queue(OTHER_APP, "fredrick") is None


async def test_create_queue_raises_queue_exists_for_a_duplicate_name(
    storage: Storage, clock: FakeClock
) -> None:
    first = await make_queue(storage, clock, "fredrick", partitions=2)

    with pytest.raises(QueueExists) as raised:
        await storage.create_queue(APP, "fredrick", QueueSettings(partitions=7), now_s(clock) + 1)
    assert await storage.get_queue(APP, "fredrick") == first
    assert raised.value.existing == first  # the queue in the way, for the caller to compare


async def test_of_concurrent_creations_of_one_name_exactly_one_succeeds(
    storage: Storage, clock: FakeClock
) -> None:
    results = await asyncio.gather(
        *(
            storage.create_queue(APP, "race", QueueSettings(partitions=i), now_s(clock))
            for i in range(1, 11)
        ),
        return_exceptions=True,
    )

    winners = [r for r in results if isinstance(r, Queue)]
    assert len(winners) == 1
    losers = [r for r in results if not isinstance(r, Queue)]
    assert all(isinstance(r, QueueExists) for r in losers)
    assert await storage.get_queue(APP, "race") == winners[0]
    # Each loser learns the winner's settings from its own creation, not from a later read.
    assert [r.existing for r in losers if isinstance(r, QueueExists)] == winners * 9


async def test_every_created_queue_gets_a_qid_never_used_before(
    storage: Storage, clock: FakeClock
) -> None:
    queues = [await make_queue(storage, clock, name) for name in ("a", "b", "c")]
    queues += [await make_queue(storage, clock, name, app=OTHER_APP) for name in ("a", "b")]
    assert await storage.delete_queue(APP, "a")
    queues.append(await make_queue(storage, clock, "a"))
    assert await storage.delete_queue(APP, "a")
    queues.append(await make_queue(storage, clock, "a"))

    qids = [queue.qid for queue in queues]
    assert len(set(qids)) == len(qids)


async def test_queue_names_are_case_sensitive(storage: Storage, clock: FakeClock) -> None:
    lower = await make_queue(storage, clock, "fred", partitions=1)
    upper = await make_queue(storage, clock, "Fred", partitions=2)

    assert lower.qid != upper.qid
    assert await storage.get_queue(APP, "fred") == lower
    assert await storage.get_queue(APP, "Fred") == upper
    assert await storage.get_queue(APP, "FRED") is None


async def test_update_queue_replaces_the_settings_and_keeps_qid_and_created(
    storage: Storage, clock: FakeClock
) -> None:
    # G60: registering again with partitions=5 updates the queue.
    queue = await make_queue(storage, clock, "fredrick")
    clock.advance(60)
    settings = QueueSettings(
        partitions=5, type="public", consistency="very_strong", principles=("app:friend",)
    )

    updated = await storage.update_queue(APP, "fredrick", settings)

    assert (updated.app, updated.name, updated.qid, updated.created) == (
        APP,
        "fredrick",
        queue.qid,
        queue.created,
    )
    assert updated.settings == settings
    assert await storage.get_queue(APP, "fredrick") == updated


async def test_update_queue_with_equal_partitions_is_allowed(
    storage: Storage, clock: FakeClock
) -> None:
    await make_queue(storage, clock, "fredrick", partitions=4)

    updated = await storage.update_queue(
        APP, "fredrick", QueueSettings(partitions=4, consistency="weak")
    )

    assert updated.settings == QueueSettings(partitions=4, consistency="weak")
    assert await storage.get_queue(APP, "fredrick") == updated


async def test_update_queue_raises_invalid_update_when_partitions_decrease_and_changes_nothing(
    storage: Storage, clock: FakeClock
) -> None:
    queue = await make_queue(storage, clock, "fredrick", partitions=3)

    with pytest.raises(InvalidUpdate):
        await storage.update_queue(APP, "fredrick", QueueSettings(partitions=2, type="public"))
    assert await storage.get_queue(APP, "fredrick") == queue


async def test_update_queue_of_a_missing_queue_raises_queue_not_found(
    storage: Storage, clock: FakeClock
) -> None:
    await make_queue(storage, clock, "fredrick")

    with pytest.raises(QueueNotFound):
        await storage.update_queue(APP, "smith", QueueSettings())
    with pytest.raises(QueueNotFound):
        await storage.update_queue(OTHER_APP, "fredrick", QueueSettings())
    assert await storage.get_queue(APP, "smith") is None
    assert await storage.get_queue(OTHER_APP, "fredrick") is None


async def test_concurrent_updates_never_lower_the_partitions(
    storage: Storage, clock: FakeClock
) -> None:
    await make_queue(storage, clock, "fredrick", partitions=1)

    results = await asyncio.gather(
        storage.update_queue(APP, "fredrick", QueueSettings(partitions=5)),
        storage.update_queue(APP, "fredrick", QueueSettings(partitions=3)),
        return_exceptions=True,
    )

    assert all(isinstance(r, Queue | InvalidUpdate) for r in results)
    stored = await storage.get_queue(APP, "fredrick")
    assert stored is not None and stored.partitions == 5


async def test_end_consumers_moves_the_end_marker_and_keeps_the_rest_of_the_queue(
    storage: Storage, clock: FakeClock
) -> None:
    queue = await make_queue(storage, clock, "fredrick", partitions=2)
    assert queue.end_marker == 0

    ended = await storage.end_consumers(APP, "fredrick")

    assert ended.end_marker > queue.end_marker
    assert dataclasses.replace(ended, end_marker=queue.end_marker) == queue
    assert await storage.get_queue(APP, "fredrick") == ended
    again = await storage.end_consumers(APP, "fredrick")
    assert again.end_marker > ended.end_marker
    # An update of the settings keeps the marker where it is.
    updated = await storage.update_queue(APP, "fredrick", QueueSettings(partitions=2, delay=5))
    assert updated.end_marker == again.end_marker
    stored = await storage.get_queue(APP, "fredrick")
    assert stored is not None
    assert (stored.end_marker, stored.settings.delay) == (again.end_marker, 5)
    # A queue created again under the name starts afresh.
    assert await storage.delete_queue(APP, "fredrick")
    assert (await make_queue(storage, clock, "fredrick")).end_marker == 0


async def test_end_consumers_of_a_missing_queue_raises_queue_not_found(
    storage: Storage, clock: FakeClock
) -> None:
    await make_queue(storage, clock, "fredrick")

    with pytest.raises(QueueNotFound):
        await storage.end_consumers(APP, "smith")
    with pytest.raises(QueueNotFound):
        await storage.end_consumers(OTHER_APP, "fredrick")
    assert await storage.get_queue(APP, "smith") is None
    await storage.delete_queue(APP, "fredrick")
    with pytest.raises(QueueNotFound):
        await storage.end_consumers(APP, "fredrick")
    assert await storage.get_queue(APP, "fredrick") is None


async def test_concurrent_end_consumers_each_move_the_marker(
    storage: Storage, clock: FakeClock
) -> None:
    await make_queue(storage, clock, "fredrick")

    ended = await asyncio.gather(*(storage.end_consumers(APP, "fredrick") for _ in range(4)))

    markers = sorted(queue.end_marker for queue in ended)
    assert len(set(markers)) == 4 and markers[0] > 0
    stored = await storage.get_queue(APP, "fredrick")
    assert stored is not None and stored.end_marker == markers[-1]


async def test_update_queue_keeps_the_messages_and_opens_the_new_partitions(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=1)
    old = make_message(gen, clock, 1)
    await storage.write_messages(queue, [old])

    grown = await storage.update_queue(APP, "q", QueueSettings(partitions=3))
    new = make_message(gen, clock, 3)
    await storage.write_messages(grown, [new])

    assert await read(storage, grown, clock, (1, 2, 3)) == [old, new]
    assert await storage.count_messages(grown, now_ms(clock)) == 2


async def test_delete_queue_returns_true_then_false(storage: Storage, clock: FakeClock) -> None:
    # G62: removing a queue twice returns False the second time.
    await make_queue(storage, clock, "fredrick")

    assert await storage.delete_queue(APP, "fredrick") is True
    assert await storage.delete_queue(APP, "fredrick") is False
    assert await storage.delete_queue(APP, "never-was") is False


async def test_a_deleted_queue_is_gone_from_get_and_list(
    storage: Storage, clock: FakeClock
) -> None:
    await make_queue(storage, clock, "alpha")
    beta = await make_queue(storage, clock, "beta")

    await storage.delete_queue(APP, "alpha")

    assert await storage.get_queue(APP, "alpha") is None
    assert await storage.list_queues(APP, None, 10) == [beta]


async def test_messages_of_a_deleted_queue_are_never_returned_again(
    storage: Storage, clock: FakeClock
) -> None:
    # G52 (truncate): after removal, the messages are gone.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    messages = [make_message(gen, clock, 1), make_message(gen, clock, 2)]
    await storage.write_messages(queue, messages)

    await storage.delete_queue(APP, "q")

    now = now_ms(clock)
    assert await read(storage, queue, clock, (1, 2)) == []
    assert await storage.get_messages(queue, [(m.partition, m.id) for m in messages], now) == []
    assert await storage.count_messages(queue, now) == 0


async def test_a_recreated_queue_has_a_new_qid_and_none_of_the_old_messages(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    old_queue = await make_queue(storage, clock, partitions=2)
    old = make_message(gen, clock, 1)
    await storage.write_messages(old_queue, [old])
    await storage.delete_queue(APP, "q")

    new_queue = await make_queue(storage, clock, partitions=2)

    now = now_ms(clock)
    assert new_queue.qid != old_queue.qid
    assert await read(storage, new_queue, clock, (1, 2)) == []
    assert await storage.get_messages(new_queue, [(1, old.id)], now) == []
    assert await storage.count_messages(new_queue, now) == 0
    # The old incarnation stays dead after its name is reused.
    assert await read(storage, old_queue, clock, (1, 2)) == []
    assert await storage.count_messages(old_queue, now) == 0


async def test_dead_letter_senders_follow_creates_updates_and_deletes(
    storage: Storage, clock: FakeClock
) -> None:
    def sending_to(dlq: str | None) -> QueueSettings:
        return QueueSettings(max_deliveries=1, dead_letter_queue=dlq)

    for name in ("b", "a", "c"):
        await storage.create_queue(APP, name, sending_to("dead"), 1.0)
    await storage.create_queue(APP, "elsewhere", sending_to("other"), 1.0)
    await storage.create_queue(OTHER_APP, "a", sending_to("dead"), 1.0)
    assert await storage.dead_letter_senders(APP, "dead") == ["a", "b", "c"]

    await storage.update_queue(APP, "b", sending_to("other"))
    await storage.update_queue(APP, "c", sending_to(None))
    await storage.delete_queue(APP, "a")
    await storage.update_queue(APP, "elsewhere", sending_to("dead"))
    assert await storage.dead_letter_senders(APP, "dead") == ["elsewhere"]
    assert await storage.dead_letter_senders(APP, "other") == ["b"]
    assert await storage.dead_letter_senders(OTHER_APP, "dead") == ["a"]
    assert await storage.dead_letter_senders(APP, "nobody") == []

    await storage.create_queue(APP, "a", sending_to("dead"), 1.0)  # again
    assert await storage.dead_letter_senders(APP, "dead") == ["a", "elsewhere"]


async def test_list_queues_sorts_by_name(storage: Storage, clock: FakeClock) -> None:
    # Names use [A-Za-z0-9_.-]; the order is that of the characters' code points.
    names = ["smith", "Zed", "alpha", "a_1", "a.1", "a-1", "0", "B", "fredrick", "b"]
    for name in names:
        await make_queue(storage, clock, name)

    listed = await storage.list_queues(APP, None, 100)

    assert [q.name for q in listed] == sorted(names)
    assert listed == [await storage.get_queue(APP, name) for name in sorted(names)]


async def test_list_queues_offset_is_inclusive(storage: Storage, clock: FakeClock) -> None:
    # G59, G61: three queues are listed; listing from the second name gives the last two.
    for name in ("fredrick", "smith", "alpha"):
        await make_queue(storage, clock, name)

    results = await storage.list_queues(APP, None, 1000)
    assert [q.name for q in results] == ["alpha", "fredrick", "smith"]

    res = await storage.list_queues(APP, results[1].name, 1000)
    assert res == results[1:]


async def test_list_queues_offset_between_names_starts_at_the_next_name(
    storage: Storage, clock: FakeClock
) -> None:
    for name in ("alpha", "fredrick", "smith"):
        await make_queue(storage, clock, name)

    assert [q.name for q in await storage.list_queues(APP, "b", 10)] == ["fredrick", "smith"]
    assert [q.name for q in await storage.list_queues(APP, "", 10)] == [
        "alpha",
        "fredrick",
        "smith",
    ]
    assert await storage.list_queues(APP, "zzz", 10) == []


async def test_list_queues_returns_at_most_limit_queues(storage: Storage, clock: FakeClock) -> None:
    names = [f"q{i:02d}" for i in range(12)]
    for name in reversed(names):
        await make_queue(storage, clock, name)

    first = await storage.list_queues(APP, None, 5)
    second = await storage.list_queues(APP, "q05", 5)
    last = await storage.list_queues(APP, "q10", 5)

    assert [q.name for q in first] == names[:5]
    assert [q.name for q in second] == names[5:10]
    assert [q.name for q in last] == names[10:]


async def test_list_queues_of_an_app_without_queues_is_empty(
    storage: Storage, clock: FakeClock
) -> None:
    assert await storage.list_queues(APP, None, 10) == []
    await make_queue(storage, clock, "fredrick", app=OTHER_APP)
    assert await storage.list_queues(APP, None, 10) == []
    assert await storage.list_queues(APP, "a", 10) == []


async def test_applications_never_see_each_others_queues(
    storage: Storage, clock: FakeClock
) -> None:
    mine = await make_queue(storage, clock, "shared", partitions=1)
    await make_queue(storage, clock, "only-mine")
    theirs = await make_queue(storage, clock, "shared", app=OTHER_APP, partitions=2)

    assert mine.qid != theirs.qid
    assert await storage.get_queue(OTHER_APP, "shared") == theirs
    assert [q.name for q in await storage.list_queues(APP, None, 10)] == ["only-mine", "shared"]
    assert await storage.list_queues(OTHER_APP, None, 10) == [theirs]

    await storage.update_queue(APP, "shared", QueueSettings(partitions=4))
    assert await storage.get_queue(OTHER_APP, "shared") == theirs

    assert await storage.delete_queue(APP, "shared")
    assert await storage.get_queue(OTHER_APP, "shared") == theirs
    assert await storage.delete_queue(OTHER_APP, "only-mine") is False
    assert await storage.get_queue(APP, "only-mine") is not None


async def test_applications_never_see_each_others_messages(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    mine = await make_queue(storage, clock, "shared")
    theirs = await make_queue(storage, clock, "shared", app=OTHER_APP)
    my_message = make_message(gen, clock, body="mine")
    their_message = make_message(gen, clock, body="theirs")
    await storage.write_messages(mine, [my_message])
    await storage.write_messages(theirs, [their_message])

    now = now_ms(clock)
    assert await read(storage, mine, clock) == [my_message]
    assert await read(storage, theirs, clock) == [their_message]
    assert await storage.get_messages(mine, [(1, their_message.id)], now) == []
    assert await storage.count_messages(mine, now) == 1

    await storage.delete_messages(mine, [(1, their_message.id)])
    assert await read(storage, theirs, clock) == [their_message]

    await storage.delete_queue(APP, "shared")
    assert await read(storage, theirs, clock) == [their_message]


# --- writing and reading messages ---------------------------------------------------------------


async def test_read_of_an_empty_queue_returns_nothing(storage: Storage, clock: FakeClock) -> None:
    # G46
    queue = await make_queue(storage, clock, partitions=3)

    assert await read(storage, queue, clock, (1, 2, 3)) == []
    assert await read(storage, queue, clock, (1, 2, 3), descending=True) == []
    assert await storage.count_messages(queue, now_ms(clock)) == 0


async def test_a_written_message_reads_back_with_every_field(
    storage: Storage, clock: FakeClock
) -> None:
    # G47, G54, G55: the body, and the content type (the original's metadata), come back both
    # from a read and from a get by id.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    body = "héllo wörld ✓ 🎉\n\ttabs, \"quotes\", 'apostrophes', back\\slash, nul\x00end"
    message = make_message(
        gen, clock, 2, body, content_type="application/json; charset=utf-8", ttl_ms=259_200_000
    )

    await storage.write_messages(queue, [message])

    [got] = await read(storage, queue, clock, (2,))
    assert got == message
    assert (got.id, got.ticks, got.partition, got.body, got.content_type, got.expires_ms) == (
        message.id,
        message.ticks,
        2,
        body,
        "application/json; charset=utf-8",
        message.expires_ms,
    )
    assert await storage.get_messages(queue, [(2, message.id)], now_ms(clock)) == [message]


async def test_a_large_body_reads_back_intact(storage: Storage, clock: FakeClock) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    body = ("0123456789abcdeé" * 65536)[: 1 << 20]
    message = make_message(gen, clock, body=body)

    await storage.write_messages(queue, [message])

    [got] = await read(storage, queue, clock)
    assert got.body == body


async def test_a_batch_is_written_to_its_queue_only(storage: Storage, clock: FakeClock) -> None:
    # G48: a batch over two queues; each queue reads back its own messages in order.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, "q")
    other = await make_queue(storage, clock, "q2")
    first = make_message(gen, clock, body="first message")
    second = make_message(gen, clock, body="second message", content_type="application/json")
    another = make_message(gen, clock, body="another first")

    await storage.write_messages(queue, [first, second])
    await storage.write_messages(other, [another])

    got = await read(storage, queue, clock)
    assert got == [first, second]
    assert got[0].body == "first message"
    assert got[1].content_type == "application/json"
    assert await read(storage, other, clock) == [another]


async def test_read_returns_messages_in_time_order_ascending_or_descending(
    storage: Storage, clock: FakeClock
) -> None:
    # G51: A, B, C descending has B in the middle; ascending starts with A.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    a, b, c = (make_message(gen, clock, body=body) for body in "ABC")
    await storage.write_messages(queue, [a, b, c])

    assert await read(storage, queue, clock) == [a, b, c]
    assert await read(storage, queue, clock, descending=True) == [c, b, a]


async def test_read_orders_by_ticks_and_not_by_the_text_of_the_id(
    storage: Storage, clock: FakeClock
) -> None:
    # A version-1 UUID starts with the low 32 bits of its time, so when they wrap a later
    # message has a smaller id: "00000010..." is after "fffffff0...".
    queue = await make_queue(storage, clock)
    base = ticks_from_ns(clock.time_ns())
    t1 = (base & ~0xFFFFFFFF) | 0xFFFFFFF0
    early, late, later = (message_at(clock, t) for t in (t1, t1 + 0x20, t1 + 0x21))
    assert late.id < early.id
    await storage.write_messages(queue, [early, late, later])

    assert await read(storage, queue, clock) == [early, late, later]
    assert await read(storage, queue, clock, descending=True) == [later, late, early]
    after_early = Cursor(early.ticks, early.id, inclusive=False)
    assert await read(storage, queue, clock, cursor=after_early) == [late, later]
    before_late = Cursor(late.ticks, late.id, inclusive=False)
    assert await read(storage, queue, clock, cursor=before_late, descending=True) == [early]


async def test_read_orders_messages_of_one_tick_by_id(storage: Storage, clock: FakeClock) -> None:
    # Ids from two processes can share a tick; (ticks, id) still orders them totally.
    queue = await make_queue(storage, clock)
    tick = ticks_from_ns(clock.time_ns())
    low, high = message_at(clock, tick, SUFFIX_A), message_at(clock, tick, SUFFIX_B)
    await storage.write_messages(queue, [high, low])

    assert await read(storage, queue, clock) == [low, high]
    assert await read(storage, queue, clock, descending=True) == [high, low]
    assert await read(storage, queue, clock, cursor=Cursor(tick, low.id, False)) == [high]


async def test_messages_written_out_of_time_order_read_in_time_order(
    storage: Storage, clock: FakeClock
) -> None:
    # As PUT-by-id does: a message can be created with an older id than those stored.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    messages = [make_message(gen, clock, body=str(i)) for i in range(6)]

    await storage.write_messages(queue, [messages[4], messages[5]])
    await storage.write_messages(queue, [messages[2], messages[0]], replace=True)
    await storage.write_messages(queue, [messages[3], messages[1]])

    assert await read(storage, queue, clock) == messages
    assert await read(storage, queue, clock, descending=True) == messages[::-1]


async def test_read_returns_up_to_limit_messages_from_each_partition(
    storage: Storage, clock: FakeClock
) -> None:
    # G51: limit=1 descending gives exactly the newest.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=3)
    p1 = [make_message(gen, clock, 1) for _ in range(4)]
    p2 = [make_message(gen, clock, 2) for _ in range(4)]
    p3 = [make_message(gen, clock, 3)]
    await storage.write_messages(queue, p1 + p2 + p3)

    assert await read(storage, queue, clock, (1, 2, 3), limit=2) == p1[:2] + p2[:2] + p3
    assert await read(storage, queue, clock, (1, 2, 3), limit=2, descending=True) == [
        p1[3],
        p1[2],
        p2[3],
        p2[2],
        p3[0],
    ]
    assert await read(storage, queue, clock, (1,), limit=1, descending=True) == [p1[3]]
    assert await read(storage, queue, clock, (1,), limit=4) == p1


async def test_read_groups_messages_by_partition_in_the_order_requested(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=3)
    messages = [make_message(gen, clock, 1 + i % 3, body=str(i)) for i in range(9)]
    await storage.write_messages(queue, messages)
    by_partition = {p: [m for m in messages if m.partition == p] for p in (1, 2, 3)}

    assert await read(storage, queue, clock, (3, 1, 2)) == (
        by_partition[3] + by_partition[1] + by_partition[2]
    )
    assert await read(storage, queue, clock, (2, 3), descending=True) == (
        by_partition[2][::-1] + by_partition[3][::-1]
    )
    assert await read(storage, queue, clock, (2,)) == by_partition[2]


async def test_an_inclusive_cursor_includes_its_position_in_both_directions(
    storage: Storage, clock: FakeClock
) -> None:
    # G51: start_at=<B's id> gives B and what follows.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    a, b, c, d = (make_message(gen, clock, body=body) for body in "ABCD")
    await storage.write_messages(queue, [a, b, c, d])
    at_b = Cursor(b.ticks, b.id, inclusive=True)

    assert await read(storage, queue, clock, cursor=at_b) == [b, c, d]
    assert await read(storage, queue, clock, cursor=at_b, descending=True) == [b, a]
    assert await read(storage, queue, clock, cursor=at_b, limit=2) == [b, c]


async def test_an_exclusive_cursor_excludes_its_position_in_both_directions(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    a, b, c, d = (make_message(gen, clock, body=body) for body in "ABCD")
    await storage.write_messages(queue, [a, b, c, d])
    after_b = Cursor(b.ticks, b.id, inclusive=False)

    assert await read(storage, queue, clock, cursor=after_b) == [c, d]
    assert await read(storage, queue, clock, cursor=after_b, descending=True) == [a]
    at_d = Cursor(d.ticks, d.id, inclusive=False)
    assert await read(storage, queue, clock, cursor=at_d) == []
    at_a = Cursor(a.ticks, a.id, inclusive=False)
    assert await read(storage, queue, clock, cursor=at_a, descending=True) == []


async def test_a_cursor_from_a_bare_timestamp_includes_every_id_at_that_tick(
    storage: Storage, clock: FakeClock
) -> None:
    queue = await make_queue(storage, clock)
    tick = ticks_from_ns(clock.time_ns())
    before = message_at(clock, tick - 1, SUFFIX_B)
    low, high = message_at(clock, tick, SUFFIX_A), message_at(clock, tick, SUFFIX_B)
    after = message_at(clock, tick + 1, SUFFIX_A)
    await storage.write_messages(queue, [before, low, high, after])

    ascending = Cursor(tick, "", inclusive=True)
    descending = Cursor(tick, "~", inclusive=True)
    assert await read(storage, queue, clock, cursor=ascending) == [low, high, after]
    assert await read(storage, queue, clock, cursor=descending, descending=True) == [
        high,
        low,
        before,
    ]
    # Positions compare as (ticks, id) pairs, so no id at the tick is on the excluded side.
    assert await read(storage, queue, clock, cursor=Cursor(tick, "", False)) == [low, high, after]
    between = Cursor(tick + 1, "", inclusive=True)
    assert await read(storage, queue, clock, cursor=between, descending=True) == [
        high,
        low,
        before,
    ]


async def test_a_cursor_need_not_name_a_stored_message(storage: Storage, clock: FakeClock) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    a, b, c = (make_message(gen, clock, body=body) for body in "ABC")
    await storage.write_messages(queue, [a, b, c])
    await storage.delete_messages(queue, [(1, b.id)])
    at_b = Cursor(b.ticks, b.id, inclusive=True)

    assert await read(storage, queue, clock, cursor=at_b) == [c]
    assert await read(storage, queue, clock, cursor=at_b, descending=True) == [a]


async def test_partitions_outside_the_queues_range_read_nothing(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    messages = [make_message(gen, clock, 1), make_message(gen, clock, 2)]
    await storage.write_messages(queue, messages)

    assert await read(storage, queue, clock, (0, -1, 3, 200)) == []
    assert await read(storage, queue, clock, (3, 2, 0, 1)) == [messages[1], messages[0]]


async def test_expired_messages_are_never_read_got_or_counted(
    storage: Storage, clock: FakeClock
) -> None:
    # G66, G67: a message pushed already expired is not returned. expires_ms <= now_ms is dead.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    past = make_message(gen, clock, 1, ttl_ms=-10_000)
    due = make_message(gen, clock, 2, ttl_ms=0)
    live = make_message(gen, clock, 1, ttl_ms=1)
    await storage.write_messages(queue, [past, due, live])
    all_ids = [(m.partition, m.id) for m in (past, due, live)]
    now = now_ms(clock)

    assert await read(storage, queue, clock, (1, 2)) == [live]
    assert await read(storage, queue, clock, (1, 2), descending=True) == [live]
    assert await storage.get_messages(queue, all_ids, now) == [live]
    assert await storage.count_messages(queue, now) == 1

    assert await storage.read_messages(queue, [1, 2], None, False, 10, now - 1) == [live, due]
    assert await storage.get_messages(queue, all_ids, now + 1) == []
    assert await storage.count_messages(queue, now + 1) == 0
    assert await storage.read_messages(queue, [1, 2], None, True, 10, now + 1) == []


async def test_expired_messages_do_not_use_up_the_read_limit(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    dead_first = [make_message(gen, clock, ttl_ms=0) for _ in range(3)]
    live = [make_message(gen, clock) for _ in range(3)]
    dead_last = [make_message(gen, clock, ttl_ms=0) for _ in range(3)]
    await storage.write_messages(queue, dead_first + live + dead_last)

    assert await read(storage, queue, clock, limit=2) == live[:2]
    assert await read(storage, queue, clock, limit=2, descending=True) == [live[2], live[1]]
    from_first = Cursor(dead_first[0].ticks, dead_first[0].id, inclusive=True)
    assert await read(storage, queue, clock, cursor=from_first, limit=1) == live[:1]


async def test_messages_of_one_queue_are_invisible_through_another(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, "q")
    other = await make_queue(storage, clock, "q2")
    message = make_message(gen, clock)
    await storage.write_messages(queue, [message])

    now = now_ms(clock)
    assert await read(storage, other, clock) == []
    assert await storage.get_messages(other, [(1, message.id)], now) == []
    assert await storage.count_messages(other, now) == 0
    await storage.delete_messages(other, [(1, message.id)])
    assert await read(storage, queue, clock) == [message]


async def test_write_without_replace_keeps_an_already_stored_message(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    original = make_message(gen, clock, body="original")
    await storage.write_messages(queue, [original])
    clash = Message(original.id, original.ticks, 1, "clash", "text/html", original.expires_ms + 1)

    await storage.write_messages(queue, [clash])

    assert await read(storage, queue, clock) == [original]
    assert await storage.count_messages(queue, now_ms(clock)) == 1


async def test_write_with_replace_overwrites_body_content_type_and_expiry_and_keeps_id_and_ticks(
    storage: Storage, clock: FakeClock
) -> None:
    # G58: pushing again with the same id overwrites; the count stays 1.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    before, original, after = (make_message(gen, clock, body=b) for b in ("0", "original", "2"))
    await storage.write_messages(queue, [before, original, after])
    clock.advance(30)
    update = Message(
        original.id, original.ticks, 1, "updated", "application/json", now_ms(clock) + 60_000
    )

    await storage.write_messages(queue, [update], replace=True)

    assert await read(storage, queue, clock) == [before, update, after]
    [got] = await storage.get_messages(queue, [(1, original.id)], now_ms(clock))
    assert (got.id, got.ticks, got.body, got.content_type, got.expires_ms) == (
        original.id,
        original.ticks,
        "updated",
        "application/json",
        now_ms(clock) + 60_000,
    )
    assert await storage.count_messages(queue, now_ms(clock)) == 3


async def test_write_with_replace_creates_a_message_that_does_not_exist(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    stored, created = make_message(gen, clock, body="stored"), make_message(gen, clock, body="new")
    await storage.write_messages(queue, [stored])

    await storage.write_messages(queue, [created], replace=True)

    assert await read(storage, queue, clock) == [stored, created]
    assert await storage.get_messages(queue, [(1, created.id)], now_ms(clock)) == [created]


async def test_write_with_replace_restarts_or_ends_a_messages_life(
    storage: Storage, clock: FakeClock
) -> None:
    # A PUT restarts the TTL: an expired (not yet swept) message comes back with the new
    # expiry, and a live one given an expiry in the past is gone.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    expiring, living = make_message(gen, clock, ttl_ms=1_000), make_message(gen, clock)
    await storage.write_messages(queue, [expiring, living])
    clock.advance(5)
    assert await read(storage, queue, clock) == [living]

    revived = Message(expiring.id, expiring.ticks, 1, "again", "text/plain", now_ms(clock) + 1)
    ended = Message(living.id, living.ticks, 1, "gone", "text/plain", now_ms(clock))
    await storage.write_messages(queue, [revived, ended], replace=True)

    assert await read(storage, queue, clock) == [revived]
    assert await storage.count_messages(queue, now_ms(clock)) == 1


async def test_a_new_id_at_the_same_tick_is_a_new_message(
    storage: Storage, clock: FakeClock
) -> None:
    # G58: pushing at the same timestamp from another node makes a second message.
    queue = await make_queue(storage, clock)
    first = make_message(IdGenerator(clock), clock, body="first")
    second = make_message(IdGenerator(clock), clock, body="second")
    assert first.ticks == second.ticks and first.id != second.id

    await storage.write_messages(queue, [first])
    await storage.write_messages(queue, [second], replace=True)

    assert sorted(ids(await read(storage, queue, clock))) == sorted([first.id, second.id])
    assert await storage.count_messages(queue, now_ms(clock)) == 2


async def test_the_same_id_in_another_partition_is_another_message(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    one = make_message(gen, clock, 1, body="one")
    two = Message(one.id, one.ticks, 2, "two", "text/plain", one.expires_ms)

    await storage.write_messages(queue, [one])
    await storage.write_messages(queue, [two], replace=True)

    assert await read(storage, queue, clock, (1, 2)) == [one, two]
    now = now_ms(clock)
    assert await storage.get_messages(queue, [(1, one.id)], now) == [one]
    assert await storage.get_messages(queue, [(2, one.id)], now) == [two]
    assert await storage.count_messages(queue, now) == 2


async def test_write_to_a_deleted_queue_raises_queue_not_found_and_stores_nothing(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    await storage.delete_queue(APP, "q")
    messages = [make_message(gen, clock) for _ in range(3)]

    with pytest.raises(QueueNotFound):
        await storage.write_messages(queue, messages)
    with pytest.raises(QueueNotFound):
        await storage.write_messages(queue, messages, replace=True)

    # The deleted queue had no messages: anything the sweeper finds was written after all.
    assert await sweep_until_done(storage, now_ms(clock), 100, 2) == [0]
    assert await read(storage, queue, clock) == []


async def test_write_through_a_stale_queue_after_recreation_raises_and_stores_nothing(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    stale = await make_queue(storage, clock)
    await storage.delete_queue(APP, "q")
    fresh = await make_queue(storage, clock)
    message = make_message(gen, clock)

    with pytest.raises(QueueNotFound):
        await storage.write_messages(stale, [message])

    assert await read(storage, fresh, clock) == []
    assert await storage.count_messages(fresh, now_ms(clock)) == 0
    assert await sweep_until_done(storage, now_ms(clock), 100, 2) == [0]


async def test_a_batch_that_fails_partway_stores_nothing(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    kept = make_message(gen, clock, 1)
    await storage.write_messages(queue, [kept])
    batch = [make_message(gen, clock, 1 + i % 2) for i in range(10)]

    with pytest.raises((_Fault, StorageUnavailable)):
        await storage.write_messages(queue, _FailingBatch(batch, fail_at=6))
    with pytest.raises((_Fault, StorageUnavailable)):
        await storage.write_messages(queue, _FailingBatch(batch, fail_at=9), replace=True)

    assert await read(storage, queue, clock, (1, 2)) == [kept]
    assert await storage.count_messages(queue, now_ms(clock)) == 1
    # The store still works after the failed batches.
    await storage.write_messages(queue, batch)
    assert await storage.count_messages(queue, now_ms(clock)) == 11


async def test_concurrent_readers_see_all_of_a_batch_or_none_of_it(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    batch = [make_message(gen, clock, 1 + i % 2) for i in range(400)]

    async def count_visible() -> int:
        return len(await read(storage, queue, clock, (1, 2)))

    results = await asyncio.gather(
        count_visible(),
        count_visible(),
        storage.write_messages(queue, batch),
        *(count_visible() for _ in range(20)),
    )

    seen = [r for r in results if r is not None]
    assert set(seen) <= {0, 400}
    assert await count_visible() == 400


async def test_get_messages_returns_only_the_live_messages_among_the_ids(
    storage: Storage, clock: FakeClock
) -> None:
    # G50: a message that does not exist is left out.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    a, b = make_message(gen, clock, 1), make_message(gen, clock, 2)
    dead = make_message(gen, clock, 1, ttl_ms=0)
    never_written = make_message(gen, clock, 1)
    await storage.write_messages(queue, [a, b, dead])
    now = now_ms(clock)

    got = await storage.get_messages(
        queue,
        [(1, a.id), (1, never_written.id), (2, a.id), (1, b.id), (2, b.id), (1, dead.id)],
        now,
    )

    assert sorted(ids(got)) == sorted([a.id, b.id])
    assert {m.id: m for m in got} == {a.id: a, b.id: b}
    assert await storage.get_messages(queue, [(1, never_written.id)], now) == []
    assert await storage.get_messages(queue, [], now) == []


async def test_delete_messages_deletes_those_that_exist_and_ignores_the_rest(
    storage: Storage, clock: FakeClock
) -> None:
    # G56: deleting id2 leaves 1, deleting id1 leaves 0.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock)
    first, second = make_message(gen, clock), make_message(gen, clock)
    missing = make_message(gen, clock)
    await storage.write_messages(queue, [first, second])

    await storage.delete_messages(queue, [(1, second.id), (1, missing.id)])
    assert await read(storage, queue, clock) == [first]
    assert await storage.count_messages(queue, now_ms(clock)) == 1

    await storage.delete_messages(queue, [(1, first.id), (1, second.id), (1, first.id)])
    assert await read(storage, queue, clock) == []
    assert await storage.count_messages(queue, now_ms(clock)) == 0
    await storage.delete_messages(queue, [])


async def test_delete_messages_deletes_only_in_the_partition_named(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    one = make_message(gen, clock, 1)
    two = Message(one.id, one.ticks, 2, "two", "text/plain", one.expires_ms)
    await storage.write_messages(queue, [one, two])

    await storage.delete_messages(queue, [(2, one.id)])

    assert await read(storage, queue, clock, (1, 2)) == [one]


async def test_count_messages_counts_live_messages_over_all_partitions(
    storage: Storage, clock: FakeClock
) -> None:
    # G57: the count goes 1, 2, 3, 4 with each push; a queue with none counts 0.
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=3)
    empty = await make_queue(storage, clock, "empty")

    assert await storage.count_messages(queue, now_ms(clock)) == 0
    for expected, partition in enumerate((1, 3, 3, 2), start=1):
        await storage.write_messages(queue, [make_message(gen, clock, partition)])
        assert await storage.count_messages(queue, now_ms(clock)) == expected
    await storage.write_messages(queue, [make_message(gen, clock, 2, ttl_ms=0)])
    assert await storage.count_messages(queue, now_ms(clock)) == 4
    assert await storage.count_messages(empty, now_ms(clock)) == 0


# --- sweeping -----------------------------------------------------------------------------------


async def test_sweep_reclaims_at_most_limit_expired_messages_per_call_and_returns_how_many(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    mine = await make_queue(storage, clock, "q", partitions=2)
    theirs = await make_queue(storage, clock, "q", app=OTHER_APP)
    mine_dead = [make_message(gen, clock, 1 + i % 2, ttl_ms=-i) for i in range(6)]
    their_dead = [make_message(gen, clock, ttl_ms=0) for _ in range(4)]
    mine_live = [make_message(gen, clock, 1 + i % 2, ttl_ms=1 + i) for i in range(3)]
    their_live = [make_message(gen, clock, ttl_ms=HOUR_MS) for _ in range(2)]
    await storage.write_messages(mine, mine_dead[:3] + mine_live + mine_dead[3:])
    await storage.write_messages(theirs, their_dead[:2] + their_live + their_dead[2:])
    now = now_ms(clock)

    assert [await storage.sweep(now, 4) for _ in range(4)] == [4, 4, 2, 0]

    assert await storage.count_messages(mine, now) == 3
    assert await storage.count_messages(theirs, now) == 2
    by_partition = [m for m in mine_live if m.partition == 1] + [
        m for m in mine_live if m.partition == 2
    ]
    assert await storage.read_messages(mine, [1, 2], None, False, 10, now) == by_partition
    assert await storage.read_messages(theirs, [1], None, False, 10, now) == their_live

    # Later, the messages that have expired since are dead in turn.
    assert await storage.sweep(now + 2, 100) == 2
    assert await storage.count_messages(mine, now + 2) == 1
    assert await storage.count_messages(theirs, now + 2) == 2


async def test_sweep_leaves_live_messages_untouched(storage: Storage, clock: FakeClock) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    live = [make_message(gen, clock, 1 + i % 2, ttl_ms=1) for i in range(10)]
    await storage.write_messages(queue, live)

    assert await storage.sweep(now_ms(clock), 100) == 0
    assert await storage.count_messages(queue, now_ms(clock)) == 10
    assert await storage.get_messages(queue, [(m.partition, m.id) for m in live], now_ms(clock))


async def test_sweep_eventually_reclaims_the_messages_of_deleted_queues(
    storage: Storage, clock: FakeClock
) -> None:
    # Whether a back-end reclaims a deleted queue's messages at once or in the sweep, sweeping
    # until a call reclaims fewer than its limit leaves nothing dead, and no live message of
    # another queue is touched.
    gen = IdGenerator(clock)
    doomed = await make_queue(storage, clock, "doomed", partitions=3)
    kept = await make_queue(storage, clock, "kept", partitions=2)
    doomed_messages = [make_message(gen, clock, 1 + i % 3) for i in range(12)]
    doomed_messages += [make_message(gen, clock, 1, ttl_ms=0) for _ in range(3)]
    kept_messages = [make_message(gen, clock, 1 + i % 2) for i in range(5)]
    await storage.write_messages(doomed, doomed_messages)
    await storage.write_messages(kept, kept_messages)
    await storage.delete_queue(APP, "doomed")
    now = now_ms(clock)

    counts = await sweep_until_done(storage, now, 4, max_calls=5)

    assert all(0 <= count <= 4 for count in counts)
    assert sum(counts) <= len(doomed_messages)
    assert await storage.sweep(now, 4) == 0
    assert await storage.count_messages(kept, now) == 5
    got = await storage.read_messages(kept, [1, 2], None, False, 10, now)
    assert sorted(ids(got)) == sorted(ids(kept_messages))
    assert await storage.read_messages(doomed, [1, 2, 3], None, False, 10, now) == []


# --- concurrency --------------------------------------------------------------------------------


async def test_concurrent_writes_all_land_and_read_back_in_id_order(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    queue = await make_queue(storage, clock, partitions=2)
    messages = [make_message(gen, clock, 1 + i % 2, body=str(i)) for i in range(50)]

    # Started newest first, so the store receives them out of id order.
    await asyncio.gather(*(storage.write_messages(queue, [m]) for m in reversed(messages)))

    now = now_ms(clock)
    assert await storage.count_messages(queue, now) == 50
    assert await read(storage, queue, clock, (1, 2)) == (
        [m for m in messages if m.partition == 1] + [m for m in messages if m.partition == 2]
    )


async def test_concurrent_operations_on_many_queues_keep_each_queue_whole(
    storage: Storage, clock: FakeClock
) -> None:
    gen = IdGenerator(clock)
    names = [f"q{i}" for i in range(10)]
    queues = await asyncio.gather(*(make_queue(storage, clock, name) for name in names))
    batches = {q.name: [make_message(gen, clock, body=q.name) for _ in range(5)] for q in queues}

    results = await asyncio.gather(
        *(storage.write_messages(q, batches[q.name]) for q in queues),
        *(storage.delete_queue(APP, name) for name in names[:3]),
        return_exceptions=True,
    )

    # A write racing its queue's deletion either lands first or finds the queue gone.
    assert all(isinstance(r, QueueNotFound) for r in results[:3] if r is not None)
    assert results[3:] == [None] * 7 + [True] * 3

    for queue in queues[3:]:
        assert await read(storage, queue, clock) == batches[queue.name]
    for queue in queues[:3]:
        assert await read(storage, queue, clock) == []
    assert [q.name for q in await storage.list_queues(APP, None, 100)] == names[3:]


async def test_list_queue_names_matches_list_queues_at_every_offset(
    storage: Storage, clock: FakeClock
) -> None:
    for name in ("b", "a", "d", "c", "B"):
        await make_queue(storage, clock, name)
    await make_queue(storage, clock, "x", app=OTHER_APP)
    for offset in (None, "", "a", "bb", "d", "z"):
        for limit in (1, 2, 10):
            queues = await storage.list_queues(APP, offset, limit)
            names = await storage.list_queue_names(APP, offset, limit)
            assert names == [q.name for q in queues]
    assert await storage.list_queue_names(APP, None, 10) == ["B", "a", "b", "c", "d"]
    assert await storage.list_queue_names("nobody", None, 10) == []
