"""The walk through a change log that every store shared between processes takes: one store
writes, another (of another process or server) learns which queues changed."""

from __future__ import annotations

import asyncio
import time

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, QueueSettings
from queuey.storage.base import Storage

APP = "app"
HOUR_MS = 3_600_000


async def next_changes(
    watcher: Storage, position: int, timeout: float = 5.0
) -> tuple[int, set[tuple[str, str]] | None]:
    """What ``watcher.changes(position)`` answers once it names something (a shared store may
    record a write a moment after the write returned), or its empty answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        after, keys = await watcher.changes(position)
        if keys != set() or time.monotonic() > deadline:
            return after, keys
        await asyncio.sleep(0.01)


def fresh(gen: IdGenerator, clock: FakeClock, count: int) -> list[Message]:
    expires = clock.time_ns() // 1_000_000 + HOUR_MS
    return [Message(*gen.next(), 1, f"m{i}", "text/plain", expires) for i in range(count)]


async def another_process_learns_which_queues_changed(
    writer: Storage, watcher: Storage, clock: FakeClock, gen: IdGenerator
) -> None:
    a = await writer.create_queue(APP, "a", QueueSettings(), 0)
    await writer.create_queue(APP, "b", QueueSettings(), 0)
    position, keys = await watcher.changes(None)
    assert keys is None  # no position to start from: any queue may have changed

    await writer.write_messages(a, fresh(gen, clock, 2))
    position, keys = await next_changes(watcher, position)
    assert keys == {(APP, "a")}

    assert await watcher.changes(position) == (position, set())  # nothing since

    await writer.write_messages(a, fresh(gen, clock, 1))
    position, keys = await next_changes(watcher, position)
    assert keys == {(APP, "a")}

    await writer.update_queue(APP, "b", QueueSettings(paused=True))
    now_ms = clock.time_ns() // 1_000_000
    await writer.write_unique(a, fresh(gen, clock, 1), ["d"], now_ms, 1000)
    keys = set()
    for _ in range(2):  # the update's row is written with it, the post's just after
        position, news = await next_changes(watcher, position)
        keys |= news or set()
        if keys == {(APP, "a"), (APP, "b")}:
            break
    assert keys == {(APP, "a"), (APP, "b")}

    ended = await writer.end_consumers(APP, "b")  # written before it answers, as an update
    position, keys = await watcher.changes(position)
    assert keys == {(APP, "b")}
    seen = await watcher.get_queue(APP, "b")
    assert seen is not None and seen.end_marker <= ended.end_marker  # (Cassandra: cached 1 s)

    await writer.delete_queue(APP, "b")
    position, keys = await watcher.changes(position)
    assert keys == {(APP, "b")}
