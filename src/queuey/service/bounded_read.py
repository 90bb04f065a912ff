"""Reads bounded over all their partitions: at most ``max_read_messages`` messages and
``max_read_bytes`` bytes of bodies in one answer, with where to go on when it is cut short."""

from __future__ import annotations

from dataclasses import dataclass

from queuey.core.limits import Limits
from queuey.core.models import Message, Queue
from queuey.service.params import ReadParams
from queuey.service.settle import settle_window_ms, settled
from queuey.storage.base import Storage


@dataclass(frozen=True, slots=True)
class Rest:
    """Where a read cut short by the bound goes on: in ``partition`` (the first of the asked
    partitions not read to its end) after the message ``after`` (None: from the read's own
    cursor, nothing of that partition was returned); then the asked partitions after it, from
    the read's own cursor."""

    partition: int
    after: str | None


@dataclass(frozen=True, slots=True)
class Read:
    messages: list[Message]
    held: bool  # whether the settle window held a message back
    rest: Rest | None  # None: the read is complete


def body_bytes(message: Message) -> int:
    body = message.body
    return len(body) if body.isascii() else len(body.encode())


async def bounded_read(
    storage: Storage, limits: Limits, queue: Queue, asked: ReadParams, now_ms: int
) -> Read:
    """The read ``asked`` for, cut at the bound. The store is asked for a few partitions at a
    time and never for more messages than the bound has room for (plus one, to learn whether
    there is more), so a read of many full partitions costs no more than the answer it gives.
    An answer always holds at least one message, however large."""
    most, most_bytes = limits.max_read_messages, limits.max_read_bytes
    window = settle_window_ms(storage, queue.settings.consistency)
    partitions = asked.partitions
    step = max(1, most // min(asked.limit, most))
    shown: list[Message] = []
    size = 0
    held = False
    for start in range(0, len(partitions), step):
        room = most - len(shown)
        found = await storage.read_messages(
            queue, partitions[start : start + step], asked.cursor, asked.descending,
            min(asked.limit, room + 1), now_ms,
        )  # fmt: skip
        visible = settled(found, window, now_ms)
        held = held or len(visible) < len(found)
        for message in visible:
            weight = body_bytes(message)
            if shown and (len(shown) == most or size + weight > most_bytes):
                last = shown[-1]
                after = last.id if last.partition == message.partition else None
                return Read(shown, held, Rest(message.partition, after))
            shown.append(message)
            size += weight
    return Read(shown, held, None)
