"""What the export, import, migration and backup tests share: a store filled with queues of
several applications holding messages in every state."""

from __future__ import annotations

from dataclasses import dataclass

from queuey.core.clock import FakeClock
from queuey.core.ids import IdGenerator
from queuey.core.models import Message, Queue, QueueSettings
from queuey.storage.base import Storage

HOUR_MS = 3_600_000
# Bodies a copy must give back exactly: markup, JSON, NUL and control characters, line ends,
# text from other scripts, a large one.
BODIES = (
    "plain", "", '{"json": [1, 2]}', "nul\x00inside", "tab\tcr\rlf\n", "\x1b[1mbold\x1b[0m",
    "Grüße, 日本語, emoji 🙂", "\u2028line separator", "x" * 70_000,
)  # fmt: skip


def now_ms(clock: FakeClock) -> int:
    return clock.time_ns() // 1_000_000


@dataclass
class Filled:
    queues: list[Queue]
    messages: int  # unexpired ones


async def fill(
    store: Storage, clock: FakeClock, apps: tuple[str, ...], queues: int, per_queue: int
) -> Filled:
    """``queues`` queues in each of ``apps`` (two partitions, varied settings), each with
    ``per_queue`` messages over both partitions, some delayed, some claimed, plus one expired
    one (not counted)."""
    gen = IdGenerator(clock)
    made: list[Queue] = []
    count = 0
    for app in apps:
        for q in range(queues):
            settings = QueueSettings(
                partitions=2, principles=("app:other",) if q % 2 else (), max_deliveries=q % 4,
                delay=q % 3, dedup_window=60 + q, paused=q % 5 == 0,
                dead_letter_queue=f"dead-{q}" if q % 3 == 0 else None,
            )  # fmt: skip
            queue = await store.create_queue(app, f"queue-{q:03}", settings, 1_700_000_000.5 + q)
            made.append(queue)
            now = now_ms(clock)
            batch = []
            for i in range(per_queue):
                message_id, ticks = gen.next()
                body = BODIES[(q + i) % len(BODIES)]
                due = now + 600_000 if i % 7 == 3 else 0
                content_type = f"application/x-{i % 3}"
                batch.append(Message(message_id, ticks, 1 + i % 2, f"{body}/{i}", content_type,
                                     now + HOUR_MS + i, due))  # fmt: skip
            await store.write_messages(queue, batch)
            await store.claim_messages(queue, [1, 2], 2, now, 30_000, False)
            message_id, ticks = gen.next()
            expired = Message(message_id, ticks, 1, "expired", "text/plain", now - 1)
            await store.write_messages(queue, [expired])
            count += per_queue
            clock.advance(0.001)
    return Filled(made, count)


async def contents(store: Storage, clock: FakeClock) -> dict[tuple[str, str], object]:
    """Every queue of the store (its settings and creation time) with its unexpired messages,
    whatever their state: what a copy must hold the same."""
    found: dict[tuple[str, str], object] = {}
    after: str | None = None
    now = now_ms(clock)
    while True:
        page = await store.scan_queues(after, 100)
        for _, queue in page:
            messages: list[Message] = []
            for partition in range(1, queue.partitions + 1):
                messages += await store.scan_messages(queue, partition, None, 100_000, now)
            found[queue.app, queue.name] = (queue.settings, queue.created, messages)
        if len(page) < 100:
            return found
        after = page[-1][0]
