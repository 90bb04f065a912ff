"""MemoryStorage: the reference back-end. Everything lives in this process and dies with it."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace as dc_replace

from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound
from queuey.core.ids import ticks_of
from queuey.core.models import Cursor, Message, Queue, QueueSettings


class _Partition:
    """Messages of one queue partition, kept sorted by (ticks, id)."""

    __slots__ = ("keys", "messages")

    def __init__(self) -> None:
        self.keys: list[tuple[int, str]] = []
        self.messages: list[Message] = []

    def put(self, message: Message, replace: bool) -> None:
        key = (message.ticks, message.id)
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)
            self.messages.append(message)
            return
        index = bisect.bisect_left(self.keys, key)
        if index < len(self.keys) and self.keys[index] == key:
            if replace:
                self.messages[index] = message
            return
        self.keys.insert(index, key)
        self.messages.insert(index, message)

    def find(self, key: tuple[int, str]) -> int | None:
        index = bisect.bisect_left(self.keys, key)
        if index < len(self.keys) and self.keys[index] == key:
            return index
        return None

    def remove(self, index: int) -> None:
        del self.keys[index]
        del self.messages[index]


class MemoryStorage:
    name = "memory"
    nodes = 1
    shared = False

    def __init__(self) -> None:
        self._queues: dict[str, dict[str, Queue]] = {}
        self._names: dict[str, list[str]] = {}
        self._partitions: dict[tuple[int, int], _Partition] = {}
        self._qids = itertools.count(1)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        queues = self._queues.setdefault(app, {})
        if name in queues:
            raise QueueExists()
        queue = Queue(app=app, name=name, qid=next(self._qids), created=now, settings=settings)
        queues[name] = queue
        bisect.insort(self._names.setdefault(app, []), name)
        return queue

    async def get_queue(self, app: str, name: str) -> Queue | None:
        return self._queues.get(app, {}).get(name)

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        current = self._queues.get(app, {}).get(name)
        if current is None:
            raise QueueNotFound()
        if settings.partitions < current.settings.partitions:
            raise InvalidUpdate()
        updated = dc_replace(current, settings=settings)
        self._queues[app][name] = updated
        return updated

    async def delete_queue(self, app: str, name: str) -> bool:
        queue = self._queues.get(app, {}).pop(name, None)
        if queue is None:
            return False
        names = self._names[app]
        del names[bisect.bisect_left(names, name)]
        for partition in range(1, queue.partitions + 1):
            self._partitions.pop((queue.qid, partition), None)
        return True

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        queues = self._queues.get(app, {})
        return [queues[name] for name in await self.list_queue_names(app, offset, limit)]

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        names = self._names.get(app, [])
        start = bisect.bisect_left(names, offset) if offset is not None else 0
        return names[start : start + limit]

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        total = 0
        for partition in range(1, queue.partitions + 1):
            stored = self._partitions.get((queue.qid, partition))
            if stored is not None:
                total += sum(1 for m in stored.messages if m.expires_ms > now_ms)
        return total

    def _current(self, queue: Queue) -> Queue:
        current = self._queues.get(queue.app, {}).get(queue.name)
        if current is None or current.qid != queue.qid:
            raise QueueNotFound()
        return current

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False
    ) -> None:
        self._current(queue)
        batch = list(messages)  # all or nothing: take every message before storing any
        for message in batch:
            key = (queue.qid, message.partition)
            stored = self._partitions.get(key)
            if stored is None:
                stored = self._partitions[key] = _Partition()
            stored.put(message, replace)

    async def read_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        found: list[Message] = []
        for partition in partitions:
            stored = self._partitions.get((queue.qid, partition))
            if stored is None or partition > queue.partitions:
                continue
            found.extend(_scan(stored, cursor, descending, limit, now_ms))
        return found

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        found: list[Message] = []
        for stored, index in self._locate(queue, ids):
            if stored.messages[index].expires_ms > now_ms:
                found.append(stored.messages[index])
        return found

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        for stored, index in self._locate(queue, ids):
            stored.remove(index)

    def _locate(
        self, queue: Queue, ids: Sequence[tuple[int, str]]
    ) -> Iterator[tuple[_Partition, int]]:
        for partition, message_id in ids:
            stored = self._partitions.get((queue.qid, partition))
            ticks = ticks_of(message_id)
            if stored is None or ticks is None:
                continue
            index = stored.find((ticks, message_id))
            if index is not None:
                yield stored, index

    async def sweep(self, now_ms: int, limit: int) -> int:
        removed = 0
        for stored in self._partitions.values():
            index = 0
            while index < len(stored.messages) and removed < limit:
                if stored.messages[index].expires_ms <= now_ms:
                    stored.remove(index)
                    removed += 1
                else:
                    index += 1
            if removed >= limit:
                break
        return removed


def _scan(
    stored: _Partition, cursor: Cursor | None, descending: bool, limit: int, now_ms: int
) -> list[Message]:
    keys, messages = stored.keys, stored.messages
    out: list[Message] = []
    if descending:
        if cursor is None:
            index = len(keys) - 1
        else:
            key = (cursor.ticks, cursor.id)
            point = bisect.bisect_right if cursor.inclusive else bisect.bisect_left
            index = point(keys, key) - 1
        while index >= 0 and len(out) < limit:
            if messages[index].expires_ms > now_ms:
                out.append(messages[index])
            index -= 1
    else:
        if cursor is None:
            index = 0
        else:
            key = (cursor.ticks, cursor.id)
            point = bisect.bisect_left if cursor.inclusive else bisect.bisect_right
            index = point(keys, key)
        while index < len(keys) and len(out) < limit:
            if messages[index].expires_ms > now_ms:
                out.append(messages[index])
            index += 1
    return out
