"""``queuey export`` and ``queuey import`` on an open store: one application's queues and live
messages as the lines of :mod:`.records`, a page at a time (constant memory at any size)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from typing import BinaryIO

from queuey.core.clock import Clock
from queuey.core.errors import QueueExists
from queuey.core.limits import Limits
from queuey.core.models import Message, Queue, QueueSettings
from queuey.storage.base import Storage
from queuey.transfer import records
from queuey.transfer.records import BadRecord, Header, MessageRecord, QueueRecord

PAGE = 1000  # queues listed, and messages read or written, at a time
Tick = Callable[[int], None]  # told of each page of messages done (a progress bar)


def now_ms(clock: Clock) -> int:
    return clock.time_ns() // 1_000_000


@dataclass
class Exported:
    queues: int = 0
    messages: int = 0


async def export_app(
    store: Storage, app: str, out: BinaryIO, clock: Clock, tick: Tick | None = None
) -> Exported:
    """Write ``app``'s queues, each followed by its unexpired messages (partition by
    partition, in (ticks, id) order), to ``out``."""
    done = Exported()
    out.write(records.header_line(app, now_ms(clock)))
    offset: str | None = None
    while True:
        page = await store.list_queues(app, offset, PAGE)
        for queue in page:
            if queue.name == offset:  # the listing starts at the offset: done already
                continue
            out.write(records.queue_line(queue))
            done.queues += 1
            for partition in range(1, queue.partitions + 1):
                async for found in each_page(store, queue, partition, clock):
                    now = now_ms(clock)
                    out.write(b"".join(records.message_line(queue.name, m, now) for m in found))
                    done.messages += len(found)
                    if tick is not None:
                        tick(len(found))
        if len(page) < PAGE:
            return done
        offset = page[-1].name


async def each_page(
    store: Storage,
    queue: Queue,
    partition: int,
    clock: Clock,
    after: tuple[int, str] | None = None,
    size: int = PAGE,
) -> AsyncIterator[list[Message]]:
    """The partition's unexpired messages after ``after``, ``size`` at a time (the last page
    may be empty)."""
    while True:
        found = await store.scan_messages(queue, partition, after, size, now_ms(clock))
        yield found
        if len(found) < size:
            return
        after = (found[-1].ticks, found[-1].id)


class ImportFailed(Exception):
    """An import stopped at a line it could not use (``line`` is its number)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


@dataclass
class Imported:
    queues_created: int = 0
    queues_found: int = 0
    messages: int = 0  # written, or found stored already
    expired: int = 0  # expired since the export: left out


async def import_lines(
    store: Storage,
    lines: Iterable[bytes],
    clock: Clock,
    limits: Limits,
    app: str | None = None,
    tick: Tick | None = None,
) -> Imported:
    """Store the queues and messages of an export's ``lines`` into application ``app`` (the
    export's own by default). A queue that exists is kept as it is (its partitions raised if
    the export has more); a message stored already is left as it is, so importing the same
    lines again stores nothing twice. Raises ImportFailed at a line that is not a record."""
    done = Imported()
    target: str | None = None
    queue: Queue | None = None
    batch: list[Message] = []

    async def flush() -> None:
        if queue is not None and batch:
            now = now_ms(clock)
            live = [m for m in batch if m.expires_ms > now]
            done.expired += len(batch) - len(live)
            if live:
                await store.write_messages(queue, live)
            done.messages += len(live)
            if tick is not None:
                tick(len(batch))
        batch.clear()

    number = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = records.parse(line, limits)
        except BadRecord as error:
            raise ImportFailed(number, str(error)) from None
        if isinstance(record, Header):
            target = app or record.app
        elif target is None:
            raise ImportFailed(number, "the export's header line must come first")
        elif isinstance(record, QueueRecord):
            await flush()
            queue = await _queue(store, target, record, done)
        elif isinstance(record, MessageRecord):
            if queue is None or record.queue != queue.name:
                raise ImportFailed(number, f"message of queue {record.queue!r} out of place")
            if record.message.partition > queue.partitions:
                raise ImportFailed(number, f"partition {record.message.partition} out of range")
            batch.append(record.message)
            if len(batch) >= PAGE:
                await flush()
    await flush()
    if target is None:
        raise ImportFailed(number + 1, "no export header: nothing imported")
    return done


async def _queue(store: Storage, app: str, record: QueueRecord, done: Imported) -> Queue:
    queue, created = await ensure_queue(store, app, record.name, record.settings, record.created)
    if created:
        done.queues_created += 1
    else:
        done.queues_found += 1
    return queue


async def ensure_queue(
    store: Storage, app: str, name: str, settings: QueueSettings, created: float
) -> tuple[Queue, bool]:
    """The queue ``name`` of ``app``, created with ``settings`` and creation time ``created``
    unless it exists (then kept as it is, its partitions raised to ``settings``' if fewer), and
    whether it was created now."""
    while True:
        try:
            return await store.create_queue(app, name, settings, created), True
        except QueueExists as exists:
            found = exists.existing or await store.get_queue(app, name)
        if found is None:  # deleted again meanwhile
            continue
        if found.partitions < settings.partitions:
            wider = replace(found.settings, partitions=settings.partitions)
            return await store.update_queue(app, name, wider), False
        return found, False
