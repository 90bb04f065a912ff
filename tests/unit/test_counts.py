"""Queue counts (stats, include_count) are taken again only when something may have changed
them: a committed write, a lease or delay ending, or their age."""

from __future__ import annotations

from queuey.core.clock import FakeClock
from queuey.core.models import Caller, Queue, QueueStats
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage.memory import MemoryStorage

OWNER = Caller("app")


class Counted(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.counted = 0

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        self.counted += 1
        return await super().queue_stats(queue, now_ms)

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        self.counted += 1
        return await super().count_messages(queue, now_ms)


async def test_counts_are_taken_again_only_after_a_write_a_lease_end_or_their_age() -> None:
    clock = FakeClock()
    storage = Counted()
    service = QueueService(storage, ["app"], clock, Notifier(storage, POLL_INTERVAL))
    await service.create_queue(OWNER, "app", {"queue_name": "q"})
    await service.post_raw(OWNER, "app", "q", b"one", None, None, None)

    for _ in range(3):
        assert (await service.stats(OWNER, "app", "q"))[1].available == 1
    assert storage.counted == 1

    await service.post_raw(OWNER, "app", "q", b"two", None, None, None)
    assert (await service.stats(OWNER, "app", "q"))[1].available == 2
    assert storage.counted == 2

    await service.claim(OWNER, "app", "q", {"ttl": "5"})
    assert (await service.stats(OWNER, "app", "q"))[1].claimed == 1
    clock.advance(5)  # the lease ends: no write, yet the count changes
    assert (await service.stats(OWNER, "app", "q"))[1].claimed == 0
    assert storage.counted == 4

    listed = [(await service.list_queues(OWNER, "app", {"include_count": "1"}))[1]]
    listed.append((await service.list_queues(OWNER, "app", {"include_count": "1"}))[1])
    assert listed == [[2], [2]]
    assert storage.counted == 5
    clock.advance(4.9)
    await service.list_queues(OWNER, "app", {"include_count": "1"})
    assert storage.counted == 5
    clock.advance(0.1)  # max_count_age_ms
    await service.list_queues(OWNER, "app", {"include_count": "1"})
    assert storage.counted == 6
