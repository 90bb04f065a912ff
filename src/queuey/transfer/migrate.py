"""``queuey migrate``: copy every application's queues and live messages from one open store to
another, resumably, then verify both sides.

The copy walks the source's queues in :meth:`Storage.scan_queues` order, a page at a time,
copying the queues of a page side by side. A checkpoint file records the position of the last
finished page and, for each queue of the current page, how far its copy got (partition and last
message); a new run with the same checkpoint starts there. Writes never replace a stored
message, so whatever an interrupted run wrote twice is stored once.

The verification counts every queue's unexpired messages on both sides, as of one instant, and
checksums them (id, partition, content type, expiry, due time, deliveries and body) with the
queue's settings; a queue missing, different or extra on the target is a mismatch.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from queuey.core.clock import Clock, FakeClock
from queuey.core.models import Message, Queue
from queuey.storage.base import Storage
from queuey.transfer.dump import each_page, ensure_queue, now_ms

QUEUE_PAGE = 256  # queues scanned at a time; a checkpoint's page
WORKERS = 16  # queues copied (or verified) side by side
SAVE_EVERY_S = 1.0  # the checkpoint is written at most this often while a page is copied
Tick = Callable[[int], None]


class CheckpointError(Exception):
    """The checkpoint file cannot be used (unreadable, or of another pair of stores)."""


@dataclass
class Checkpoint:
    """How far a migration got; kept in ``path`` (None: nowhere, it cannot be resumed)."""

    path: Path | None
    source: str
    target: str
    after: str | None = None  # position of the last queue of the last finished page
    # position -> [partition, ticks, id] copied up to, or None when the queue is done
    queues: dict[str, list[Any] | None] = field(default_factory=dict)
    copied: int = 0  # messages written (again, after an interruption)
    finished: bool = False

    @classmethod
    def load(cls, path: Path | None, source: str, target: str) -> Checkpoint:
        """The checkpoint in ``path``, or a new one when there is no such file."""
        if path is None or not path.exists():
            return cls(path, source, target)
        try:
            data = orjson.loads(path.read_bytes())
            found = cls(path, data["source"], data["target"], data["after"], data["queues"],
                        data["copied"], data["finished"])  # fmt: skip
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path}: not a migration checkpoint ({error})") from None
        if (found.source, found.target) != (source, target):
            raise CheckpointError(
                f"{path} is the checkpoint of a migration from {found.source} to "
                f"{found.target}, not from {source} to {target}"
            )
        return found

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "source": self.source, "target": self.target, "after": self.after,
            "queues": self.queues, "copied": self.copied, "finished": self.finished,
        }  # fmt: skip
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(orjson.dumps(data))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


@dataclass
class Ticks:
    """What a migration tells of its progress (progress bars)."""

    queues: Tick = lambda n: None
    messages: Tick = lambda n: None


async def count_queues(store: Storage) -> int:
    """How many queues the store holds, all applications."""
    total = 0
    async for page in _queue_pages(store, None):
        total += len(page)
    return total


async def migrate(
    source: Storage,
    target: Storage,
    checkpoint: Checkpoint,
    clock: Clock,
    ticks: Ticks | None = None,
    workers: int = WORKERS,
) -> None:
    """Copy what ``checkpoint`` says is left to copy; the checkpoint is saved as the copy goes,
    when it fails and when it is finished."""
    ticks = ticks or Ticks()
    loop = asyncio.get_running_loop()
    saved = loop.time()

    def progress() -> None:
        nonlocal saved
        if loop.time() - saved >= SAVE_EVERY_S:
            checkpoint.save()
            saved = loop.time()

    async def copy(position: str, queue: Queue) -> None:
        start = checkpoint.queues.get(position, [1, None, None])
        if start is None:  # copied before an interruption
            ticks.queues(1)
            return
        copy_to, _ = await ensure_queue(
            target, queue.app, queue.name, queue.settings, queue.created
        )
        first, after = start[0], (start[1], start[2]) if start[1] is not None else None
        for partition in range(first, queue.partitions + 1):
            async for found in each_page(source, queue, partition, clock, after):
                if found:
                    await target.write_messages(copy_to, found)
                    last = found[-1]
                    checkpoint.queues[position] = [partition, last.ticks, last.id]
                    checkpoint.copied += len(found)
                    ticks.messages(len(found))
                    progress()
            after = None
        checkpoint.queues[position] = None
        ticks.queues(1)

    try:
        async for page in _queue_pages(source, checkpoint.after):
            await _each(workers, (copy(position, queue) for position, queue in page))
            checkpoint.after = page[-1][0]
            checkpoint.queues.clear()
            checkpoint.save()
            saved = loop.time()
        checkpoint.finished = True
    finally:
        checkpoint.save()


@dataclass
class Side:
    queues: int = 0
    messages: int = 0
    digest: int = 0  # XOR of the queues' SHA-256: the same in any order of queues

    @property
    def checksum(self) -> str:
        return f"{self.digest:064x}"


@dataclass
class Verification:
    source: Side
    target: Side
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.source == self.target


async def verify(
    source: Storage,
    target: Storage,
    clock: Clock,
    ticks: Ticks | None = None,
    workers: int = WORKERS,
) -> Verification:
    """Count and checksum both stores' queues and unexpired messages as of now."""
    ticks = ticks or Ticks()
    now = now_ms(clock)
    result = Verification(Side(), Side(), [])

    async def check(queue: Queue) -> None:
        mine = await _queue_digest(source, queue, now)
        copy = await target.get_queue(queue.app, queue.name)
        theirs = None if copy is None else await _queue_digest(target, copy, now)
        for side, digest in ((result.source, mine), (result.target, theirs)):
            if digest is not None:
                side.queues += 1
                side.messages += digest[0]
                side.digest ^= digest[1]
        if theirs is None:
            result.mismatches.append(f"{queue.app}/{queue.name}: missing on the target")
        elif theirs != mine:
            result.mismatches.append(
                f"{queue.app}/{queue.name}: {mine[0]} messages on the source, {theirs[0]} on the"
                " target" + ("" if mine[0] != theirs[0] else ", with other contents or settings")
            )
        ticks.queues(1)
        ticks.messages(mine[0])

    async for page in _queue_pages(source, None):
        await _each(workers, (check(queue) for _, queue in page))
    extra = await count_queues(target) - result.target.queues
    if extra:
        result.mismatches.append(f"the target has {extra} queues the source does not have")
    return result


async def _queue_digest(store: Storage, queue: Queue, now: int) -> tuple[int, int]:
    """How many unexpired messages the queue holds, and a SHA-256 of them and its settings."""
    digest = hashlib.sha256(orjson.dumps([queue.app, queue.name, repr(queue.settings)]))
    count = 0
    as_of = FakeClock(start_ns=now * 1_000_000)  # both sides' messages live at one instant
    for partition in range(1, queue.partitions + 1):
        async for found in each_page(store, queue, partition, as_of):
            for message in found:
                digest.update(_message_bytes(message))
            count += len(found)
    return count, int.from_bytes(digest.digest(), "big")


def _message_bytes(m: Message) -> bytes:
    body = m.body.encode("utf-8", "surrogatepass")
    head = orjson.dumps([m.partition, m.id, m.content_type, m.expires_ms, m.due_ms, m.deliveries])
    return struct.pack(">II", len(head), len(body)) + head + body


async def _queue_pages(store: Storage, after: str | None) -> AsyncIterator[list[tuple[str, Queue]]]:
    """The store's queues from position ``after`` on, a page of (position, queue) at a time."""
    while True:
        page = await store.scan_queues(after, QUEUE_PAGE)
        if page:
            yield page
        if len(page) < QUEUE_PAGE:
            return
        after = page[-1][0]


async def _each(workers: int, jobs: Iterable[Awaitable[None]]) -> None:
    """Run ``jobs``, at most ``workers`` at a time; the first failure stops them all."""
    pending = iter(jobs)

    async def worker() -> None:
        for job in pending:
            await job

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    except BaseExceptionGroup as failed:  # the first failure, as if the jobs ran in turn
        raise failed.exceptions[0] from None
