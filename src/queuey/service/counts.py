"""Queue counts (``stats``, ``include_count``) reused while nothing can have changed them.

Counting a queue's messages costs time in proportion to the messages (about 0.1 s per 200,000
on SQLite). A count is kept with the store's data version (:meth:`Storage.data_version`, which
changes with every committed write, from any process) and the time it was taken; it is given
again while the version is the same, the time at which a lease ends or a delayed message falls
due (:meth:`Storage.next_change_ms`) has not come, and less than ``max_age_ms`` has passed
since it was taken (since the count ended: a slow count is not taken again at once). So
a count is exact after every write, and at most ``max_age_ms`` late only about messages that
expired meanwhile; a queue polled for its stats with no write in between is counted once per
``max_age_ms``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from queuey.core.clock import Clock
from queuey.core.models import Queue
from queuey.storage.base import Storage

T = TypeVar("T")

_KEPT = 4096  # counts kept at most (the oldest go first)


class CountCache(Generic[T]):
    def __init__(self, storage: Storage, clock: Clock, max_age_ms: int) -> None:
        self._storage = storage
        self._clock = clock
        self._max_age_ms = max_age_ms
        # qid -> (data version, valid until epoch ms, count)
        self._kept: dict[int, tuple[int, int, T]] = {}

    async def get(self, queue: Queue, now_ms: int, count: Callable[[], Awaitable[T]]) -> T:
        version = await self._storage.data_version()
        kept = self._kept.get(queue.qid)
        if kept is not None and kept[0] == version and now_ms < kept[1]:
            return kept[2]
        value = await count()
        until = self._clock.time_ns() // 1_000_000 + self._max_age_ms
        change = await self._storage.next_change_ms(queue, now_ms)
        if change is not None:
            until = min(until, change)
        if len(self._kept) >= _KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[queue.qid] = (version, until, value)
        return value
