"""MemoryStorage: the reference back-end. Everything lives in this process and dies with it."""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace as dc_replace

from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound
from queuey.core.ids import ticks_of
from queuey.core.models import (
    Claim,
    ClaimRef,
    Cursor,
    Message,
    Queue,
    QueueSettings,
    QueueStats,
    new_claim_token,
)
from queuey.core.observer import Observer, Unobserved
from queuey.core.quotas import Usage
from queuey.storage.base import Storage
from queuey.storage.counts import CountCache, Markers, earliest
from queuey.storage.keys import parse_queue_position, queue_position


class _Partition:
    """Messages of one queue partition, kept sorted by (ticks, id)."""

    __slots__ = ("claims", "keys", "messages")

    def __init__(self) -> None:
        self.keys: list[tuple[int, str]] = []
        self.messages: list[Message] = []
        # message id -> (token, lease end in epoch ms) of its last claim
        self.claims: dict[str, tuple[int, int]] = {}

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
        self.claims.pop(self.messages.pop(index).id, None)

    def available(self, index: int, now_ms: int) -> bool:
        message = self.messages[index]
        if message.expires_ms <= now_ms or message.due_ms > now_ms:
            return False
        claim = self.claims.get(message.id)
        return claim is None or claim[1] <= now_ms

    def current(self, ref: ClaimRef, now_ms: int) -> int | None:
        """The index of the message ``ref`` holds a current claim on, or None."""
        claim = self.claims.get(ref.id)
        if claim is None or claim[0] != ref.token or claim[1] <= now_ms:
            return None
        ticks = ticks_of(ref.id)
        return None if ticks is None else self.find((ticks, ref.id))


class MemoryStorage(Storage):
    name = "memory"
    nodes = 1
    shared = False

    def __init__(self, observer: Observer | None = None) -> None:
        self._observer: Observer = observer or Unobserved()
        self._queues: dict[str, dict[str, Queue]] = {}
        self._names: dict[str, list[str]] = {}
        # (app, dead-letter queue) -> the queues that send their dead letters there
        self._senders: dict[tuple[str, str], set[str]] = {}
        self._partitions: dict[tuple[int, int], _Partition] = {}
        self._qids = itertools.count(1)
        self._dead_lettered: dict[int, int] = {}
        # qid -> dedup id -> (first message with it, remembered until epoch ms)
        self._dedup: dict[int, dict[str, tuple[Message, int]]] = {}
        # qid -> change marker: moves on every change of the queue's messages or claims, so
        # that the counts kept in ``counts`` are taken again (storage/counts.py).
        self._markers = Markers()
        self.counts = CountCache()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        queues = self._queues.setdefault(app, {})
        if name in queues:
            raise QueueExists(queues[name])
        queue = Queue(app=app, name=name, qid=next(self._qids), created=now, settings=settings)
        queues[name] = queue
        bisect.insort(self._names.setdefault(app, []), name)
        self._sends(queue, True)
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
        self._sends(current, False)
        self._sends(updated, True)
        return updated

    async def end_consumers(self, app: str, name: str) -> Queue:
        current = self._queues.get(app, {}).get(name)
        if current is None:
            raise QueueNotFound()
        ended = dc_replace(current, end_marker=current.end_marker + 1)
        self._queues[app][name] = ended
        return ended

    def _sends(self, queue: Queue, sends: bool) -> None:
        """Record (or forget) that ``queue`` sends its dead letters where it names."""
        target = queue.settings.dead_letter_queue
        if target is None:
            return
        key = (queue.app, target)
        senders = self._senders.setdefault(key, set())
        if sends:
            senders.add(queue.name)
        else:
            senders.discard(queue.name)
            if not senders:
                del self._senders[key]

    async def dead_letter_senders(self, app: str, name: str) -> list[str]:
        return sorted(self._senders.get((app, name), ()))

    async def delete_queue(self, app: str, name: str) -> bool:
        queue = self._queues.get(app, {}).pop(name, None)
        if queue is None:
            return False
        names = self._names[app]
        del names[bisect.bisect_left(names, name)]
        self._sends(queue, False)
        for partition in range(1, queue.partitions + 1):
            self._partitions.pop((queue.qid, partition), None)
        self._dead_lettered.pop(queue.qid, None)
        self._dedup.pop(queue.qid, None)
        self._markers.changed(queue.qid)
        return True

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        queues = self._queues.get(app, {})
        return [queues[name] for name in await self.list_queue_names(app, offset, limit)]

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        names = self._names.get(app, [])
        start = bisect.bisect_left(names, offset) if offset is not None else 0
        return names[start : start + limit]

    async def scan_queues(self, after: str | None, limit: int) -> list[tuple[str, Queue]]:
        start = parse_queue_position(after) if after is not None else None
        found: list[tuple[str, Queue]] = []
        for app in sorted(self._queues):
            if start is not None and app < start[0]:
                continue
            names = self._names.get(app, [])
            first = 0
            if start is not None and app == start[0]:
                first = bisect.bisect_right(names, start[1])
            for name in names[first : first + limit - len(found)]:
                found.append((queue_position(app, name), self._queues[app][name]))
            if len(found) >= limit:
                break
        return found

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        stats = await self.queue_stats(queue, now_ms)
        return stats.available + stats.claimed

    async def usage(self, app: str, now_ms: int) -> Usage:
        total = Usage()
        for queue in self._queues.get(app, {}).values():
            for partition in range(1, queue.partitions + 1):
                stored = self._partitions.get((queue.qid, partition))
                if stored is not None:
                    live = (m.body for m in stored.messages if m.expires_ms > now_ms)
                    total += Usage.of(live)
        return total

    def _current(self, queue: Queue) -> Queue:
        current = self._queues.get(queue.app, {}).get(queue.name)
        if current is None or current.qid != queue.qid:
            raise QueueNotFound()
        return current

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False, fresh: bool = False
    ) -> None:
        self._current(queue)
        self._store(queue.qid, list(messages), replace)

    def _store(self, qid: int, batch: list[Message], replace: bool) -> None:
        if batch:
            self._markers.changed(qid)
        for message in batch:
            key = (qid, message.partition)
            stored = self._partitions.get(key)
            if stored is None:
                stored = self._partitions[key] = _Partition()
            stored.put(message, replace)

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        self._current(queue)
        seen = self._dedup.setdefault(queue.qid, {})
        fresh: dict[str, Message] = {}
        result: list[Message | None] = []
        batch: list[Message] = []
        for message, dedup_id in zip(messages, dedup_ids, strict=True):
            first: Message | None = None
            if dedup_id is not None:
                known = seen.get(dedup_id)
                first = known[0] if known is not None and known[1] > now_ms else None
                first = first or fresh.get(dedup_id)
                if first is None:
                    fresh[dedup_id] = message
            if first is None:
                batch.append(message)
            result.append(first)
        for dedup_id, message in fresh.items():
            seen[dedup_id] = (message, now_ms + window_ms)
        self._store(queue.qid, batch, False)
        return result

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

    async def scan_messages(
        self,
        queue: Queue,
        partition: int,
        after: tuple[int, str] | None,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        stored = self._partitions.get((queue.qid, partition))
        if stored is None or self._live(queue) is None or partition > queue.partitions:
            return []
        index = bisect.bisect_right(stored.keys, after) if after is not None else 0
        found: list[Message] = []
        for message in itertools.islice(stored.messages, index, None):
            if len(found) >= limit:
                break
            if message.expires_ms > now_ms:
                found.append(message)
        return found

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        found: list[Message] = []
        for stored, index in self._locate(queue, ids):
            message = stored.messages[index]
            if message.expires_ms > now_ms and message.due_ms <= now_ms:
                found.append(message)
        return found

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        for stored, index in self._locate(queue, ids):
            stored.remove(index)
            self._markers.changed(queue.qid)

    async def purge_messages(self, queue: Queue, now_ms: int) -> int:
        self._markers.changed(queue.qid)
        purged = 0
        for partition in range(1, queue.partitions + 1):
            stored = self._partitions.pop((queue.qid, partition), None)
            if stored is not None:
                purged += sum(1 for m in stored.messages if m is not None and m.expires_ms > now_ms)
        return purged

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

    # --- claims -------------------------------------------------------------------------

    def _live(self, queue: Queue) -> Queue | None:
        current = self._queues.get(queue.app, {}).get(queue.name)
        return current if current is not None and current.qid == queue.qid else None

    def _exhausted(self, queue: Queue, message: Message) -> bool:
        limit = queue.settings.max_deliveries
        return limit > 0 and message.deliveries >= limit

    def _dead_letter(self, queue: Queue, stored: _Partition, index: int) -> None:
        """Move an exhausted message to the queue's dead-letter queue (or drop it)."""
        message = stored.messages[index]
        stored.remove(index)
        self._markers.changed(queue.qid)
        self._dead_lettered[queue.qid] = self._dead_lettered.get(queue.qid, 0) + 1
        self._observer.event(queue.app, "dead_lettered", 1)
        name = queue.settings.dead_letter_queue
        target = self._queues.get(queue.app, {}).get(name) if name else None
        if target is not None:
            partition = message.partition if message.partition <= target.partitions else 1
            moved = dc_replace(message, partition=partition, due_ms=0)
            self._store(target.qid, [moved], False)

    def _available(
        self, queue: Queue, partitions: Sequence[int], now_ms: int
    ) -> Iterator[tuple[tuple[int, str], int, int]]:
        """(key, partition, index) of available messages, oldest first over the partitions."""

        def scan(partition: int) -> Iterator[tuple[tuple[int, str], int, int]]:
            stored = self._partitions.get((queue.qid, partition))
            if stored is None or partition > queue.partitions:
                return
            for index, key in enumerate(stored.keys):
                if stored.available(index, now_ms):
                    yield key, partition, index

        return heapq.merge(*(scan(p) for p in partitions))

    async def claim_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        limit: int,
        now_ms: int,
        lease_ms: int,
        remove: bool,
    ) -> list[Claim]:
        current = self._live(queue)
        if current is None:
            return []
        chosen: list[tuple[int, str]] = []
        exhausted: list[tuple[int, str]] = []
        for (_, message_id), partition, index in self._available(current, partitions, now_ms):
            message = self._partitions[current.qid, partition].messages[index]
            if self._exhausted(current, message):
                exhausted.append((partition, message_id))
                continue
            chosen.append((partition, message_id))
            if len(chosen) == limit:
                break
        for stored, index in self._locate(current, exhausted):
            self._dead_letter(current, stored, index)
        token = new_claim_token()
        expires_ms = now_ms + lease_ms
        claims: list[Claim] = []
        if chosen:
            self._markers.changed(current.qid)
        for stored, index in self._locate(current, chosen):
            message = stored.messages[index]
            claimed = dc_replace(message, deliveries=message.deliveries + 1)
            claims.append(Claim(claimed, token, expires_ms))
            if remove:
                stored.remove(index)
            else:
                stored.messages[index] = claimed
                stored.claims[message.id] = (token, expires_ms)
        return claims

    def _current_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> Iterator[tuple[_Partition, int] | None]:
        """Each claim's message if the claim is current, for the caller to change (ack,
        extend or give back): the queue counts as changed when one is."""
        for ref in claims:
            stored = self._partitions.get((queue.qid, ref.partition))
            index = stored.current(ref, now_ms) if stored is not None else None
            if stored is None or index is None:
                yield None
            else:
                self._markers.changed(queue.qid)
                yield stored, index

    async def ack_messages(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> list[bool]:
        done: list[bool] = []
        for found in self._current_claims(queue, claims, now_ms):  # lazily: indexes move
            done.append(found is not None)
            if found is not None:
                found[0].remove(found[1])
        return done

    async def current_claims(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        found: list[ClaimRef | None] = []
        for partition, message_id in ids:
            stored = self._partitions.get((queue.qid, partition))
            claim = stored.claims.get(message_id) if stored is not None else None
            ticks = ticks_of(message_id)
            if stored is None or claim is None or claim[1] <= now_ms or ticks is None:
                found.append(None)
                continue
            index = stored.find((ticks, message_id))
            live = index is not None and stored.messages[index].expires_ms > now_ms
            found.append(ClaimRef(partition, message_id, claim[0]) if live else None)
        return found

    async def extend_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int, lease_ms: int
    ) -> list[bool]:
        done: list[bool] = []
        for ref, found in zip(claims, self._current_claims(queue, claims, now_ms), strict=True):
            done.append(found is not None)
            if found is not None:
                found[0].claims[ref.id] = (ref.token, now_ms + lease_ms)
        return done

    async def unclaim_messages(
        self, queue: Queue, claims: Sequence[Claim], now_ms: int, removed: bool
    ) -> list[bool]:
        if removed:
            current = self._live(queue)
            if current is None:
                return [False] * len(claims)
            self._store(current.qid, [claim.unclaimed() for claim in claims], replace=False)
            return [True] * len(claims)
        refs = [claim.ref for claim in claims]
        done: list[bool] = []
        for ref, found in zip(refs, self._current_claims(queue, refs, now_ms), strict=True):
            done.append(found is not None)
            if found is not None:
                stored, index = found
                message = stored.messages[index]
                stored.messages[index] = dc_replace(
                    message, deliveries=max(message.deliveries - 1, 0)
                )
                del stored.claims[ref.id]
        return done

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        # The partitions too: this back-end counts those of the object passed in.
        marker = (self._markers.of(queue.qid), queue.partitions)
        stats = self.counts.get(queue.qid, marker, now_ms)
        if stats is None:
            stats, until_ms = self._count(queue, now_ms)
            self.counts.put(queue.qid, marker, now_ms, until_ms, stats)
        return stats

    def _count(self, queue: Queue, now_ms: int) -> tuple[QueueStats, int | None]:
        """The queue's stats at ``now_ms``, and when they next change by the clock alone (the
        earliest expiry, due time or lease end to come of a message counted)."""
        available = claimed = delayed = 0
        oldest: int | None = None
        newest: int | None = None
        until: list[int | None] = []
        for partition in range(1, queue.partitions + 1):
            stored = self._partitions.get((queue.qid, partition))
            if stored is None:
                continue
            for message in stored.messages:
                if message.expires_ms <= now_ms:
                    continue
                until.append(message.expires_ms)
                if message.due_ms > now_ms:
                    delayed += 1
                    until.append(message.due_ms)
                    continue
                claim = stored.claims.get(message.id)
                if claim is not None and claim[1] > now_ms:
                    claimed += 1
                    until.append(claim[1])
                else:
                    available += 1
                oldest = message.ticks if oldest is None else min(oldest, message.ticks)
                newest = message.ticks if newest is None else max(newest, message.ticks)
        dead = self._dead_lettered.get(queue.qid, 0)
        stats = QueueStats(available, claimed, delayed, dead, oldest, newest)
        return stats, earliest(until)

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        times: list[int] = []
        for partition in range(1, queue.partitions + 1):
            stored = self._partitions.get((queue.qid, partition))
            if stored is None:
                continue
            times += (m.due_ms for m in stored.messages if m.due_ms > now_ms)
            times += (end for _, end in stored.claims.values() if end > now_ms)
        return min(times, default=None)

    async def changes(self, since: int | None) -> tuple[int, set[tuple[str, str]] | None]:
        return 0, set()  # not shared: this process's writes are all there is

    async def sweep(self, now_ms: int, limit: int) -> int:
        done = 0
        by_qid = {q.qid: q for queues in self._queues.values() for q in queues.values()}
        for (qid, _), stored in list(self._partitions.items()):
            queue = by_qid.get(qid)
            index = 0
            while index < len(stored.messages) and done < limit:
                message = stored.messages[index]
                if message.expires_ms <= now_ms:
                    stored.remove(index)
                    self._markers.changed(qid)
                    done += 1
                    if queue is not None:
                        self._observer.event(queue.app, "expired", 1)
                    continue
                claim = stored.claims.get(message.id)
                if claim is not None and claim[1] <= now_ms:
                    self._markers.changed(qid)
                    done += 1
                    if queue is not None and self._exhausted(queue, message):
                        self._dead_letter(queue, stored, index)
                        continue
                    del stored.claims[message.id]
                index += 1
            if done >= limit:
                return done
        for seen in self._dedup.values():
            for dedup_id in [d for d, (_, until) in seen.items() if until <= now_ms]:
                if done >= limit:
                    return done
                del seen[dedup_id]
                done += 1
        return done


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
            message = messages[index]
            if message.expires_ms > now_ms and message.due_ms <= now_ms:
                out.append(message)
            index -= 1
    else:
        if cursor is None:
            index = 0
        else:
            key = (cursor.ticks, cursor.id)
            point = bisect.bisect_left if cursor.inclusive else bisect.bisect_right
            index = point(keys, key)
        while index < len(keys) and len(out) < limit:
            message = messages[index]
            if message.expires_ms > now_ms and message.due_ms <= now_ms:
                out.append(message)
            index += 1
    return out
