"""Feeds: the one reader of a queue's messages for all of this process's streams on it.

A feed wakes when the queue may have changed (:meth:`Feed.kick`: the Notifier's wake-ups of
the queue, a falling-due message or ending lease, a subscriber's freed credit) and at least
every :data:`IDLE_CHECK` seconds; it never polls the store per subscriber.

- :class:`Broadcast` reads new messages once, encodes each once per framing and hands the
  frames to every subscriber. A subscriber that starts behind (``after``, ``since``,
  ``Last-Event-ID``) reads its own way up to where the feed was when it joined, while the feed
  keeps what it publishes meanwhile for it, then joins: nothing is missed or repeated.
- :class:`RoundRobin` claims messages (the claim machinery every consumer shares) for the
  subscribers that have credit left and hands each to one of them in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence

from queuey.core.errors import StorageUnavailable
from queuey.core.models import Claim, Cursor, Message, Queue
from queuey.service import QueueService, claim_id, settle_window_ms, settled
from queuey.streams.subscriber import UNDELIVERED, Chunk, End, Framing, Position, Subscriber

log = logging.getLogger("queuey")

Key = tuple[str, str]  # (application, queue name)

#: Seconds a feed waits at most before it looks at its queue again.
IDLE_CHECK = 1.0
#: Messages read per partition per page.
PAGE = 500
#: Seconds before retrying a store that did not answer.
RETRY = 0.5
#: How far back (in 100-ns ticks: 300 ms) a broadcast feed on a store shared by several
#: processes looks again: another process may commit a message stamped before the newest one
#: the feed has published (its id was made before its commit). Such a late message is
#: published when found, out of order rather than never.
LATE_TICKS = 3_000_000


def position_of(message: Message) -> Position:
    return (message.ticks, message.id)


async def read_page(
    service: QueueService,
    queue: Queue,
    partitions: Sequence[int],
    after: Position | None,
    now_ms: int,
) -> tuple[list[Message], bool, bool]:
    """The live messages after ``after`` in (ticks, id) order over all ``partitions``, up to
    a page per partition; whether more may follow, and whether the settle window held some
    back (stores of several nodes)."""
    cursor = None if after is None else Cursor(after[0], after[1], inclusive=False)
    found = await service.storage.read_messages(queue, partitions, cursor, False, PAGE, now_ms)
    found.sort(key=position_of)
    counts: dict[int, int] = {}
    for message in found:
        counts[message.partition] = counts.get(message.partition, 0) + 1
    full = [p for p, count in counts.items() if count >= PAGE]
    more = bool(full)
    if more:  # a full partition may have more before the others' later messages
        last = min(position_of([m for m in found if m.partition == p][-1]) for p in full)
        found = [m for m in found if position_of(m) <= last]
    shown = settled(found, settle_window_ms(service.storage, queue.settings.consistency), now_ms)
    return shown, more, len(shown) < len(found)


class Feed:
    """A task that serves the subscribers of one queue in one mode while any is open."""

    def __init__(self, service: QueueService, key: Key, on_idle: Callable[[Feed], None]) -> None:
        self.service = service
        self.key = key
        self.subscribers: list[Subscriber] = []
        self._on_idle = on_idle
        self._kicked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.qid: int | None = None
        self.end_marker = 0  # the highest of the queue's end markers read
        self.paused = False
        self.resumed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve())
        self._watch = asyncio.create_task(self._watch_notifier())

    def kick(self) -> None:
        """Look at the queue again soon."""
        self._kicked.set()

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)
        subscriber.on_end = self._remove
        if self._task is None:
            self.start()

    def _remove(self, subscriber: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(subscriber)
        if not self.subscribers:
            self.kick()  # the task sees nobody is left and ends

    def end_all(self, reason: End) -> None:
        for subscriber in list(self.subscribers):
            subscriber.end(reason)

    async def _watch_notifier(self) -> None:
        """Turns the Notifier's wake-ups of this queue (its writes through this process or,
        on a shared store, through another) into kicks, through one subscription held while
        the feed serves."""
        with self.service.notifier.subscribe(self.key) as subscription:
            while True:
                await subscription.wait(3600.0)
                self.kick()

    async def _wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(timeout, IDLE_CHECK))):
                await self._kicked.wait()
        self._kicked.clear()

    async def _serve(self) -> None:
        try:
            while self.subscribers:
                self._kicked.clear()
                try:
                    timeout = await self._step()
                except StorageUnavailable as error:
                    log.warning("stream of %s/%s cannot read the store: %s", *self.key, error)
                    timeout = RETRY
                except Exception:  # a bug: end the streams (clients reconnect) rather than hang
                    log.exception("stream of %s/%s failed", *self.key)
                    self.end_all(End.SHUTDOWN)
                    break
                if timeout is None:  # the queue is gone
                    self.end_all(End.DELETED)
                    break
                if timeout > 0:
                    await self._wait(timeout)
            await self._left()
        finally:
            if self._watch is not None:
                self._watch.cancel()
            self._task = None
            self._on_idle(self)

    async def _queue(self) -> Queue | None:
        """The queue, or None once it was deleted (or deleted and created again). Consumers
        bound before its end marker last moved end here."""
        app, name = self.key
        queue = await self.service.storage.get_queue(app, name)
        if queue is None or (self.qid is not None and queue.qid != self.qid):
            return None
        self.qid = queue.qid
        if queue.end_marker > self.end_marker:
            self.end_marker = queue.end_marker
            for subscriber in list(self.subscribers):
                bound = subscriber.end_marker
                if bound is not None and bound < queue.end_marker:
                    subscriber.end(End.DELETED)
        self.paused = queue.settings.paused
        if self.paused:
            self.resumed.clear()
        else:
            self.resumed.set()
        return queue

    async def _step(self) -> float | None:
        """Serve what is there; seconds until the next look (0: at once), None when the
        queue is gone."""
        raise NotImplementedError

    async def _left(self) -> None:
        """Settle what subscribers that left hold (before each step, and when the last
        one has left)."""

    async def _until_change(self, queue: Queue, now_ms: int) -> float:
        next_ms = await self.service.storage.next_change_ms(queue, now_ms)
        return IDLE_CHECK if next_ms is None else (next_ms - now_ms) / 1000 + 0.001

    async def stop(self) -> None:
        self.end_all(End.SHUTDOWN)
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


class Broadcast(Feed):
    """Every subscriber gets every message of its partitions, in order."""

    def __init__(self, service: QueueService, key: Key, on_idle: Callable[[Feed], None]) -> None:
        super().__init__(service, key, on_idle)
        self.position: Position | None = None  # the last message published
        self.ready = asyncio.Event()  # set once the feed knows where it starts
        self._catching: dict[Subscriber, list[Message]] = {}
        self._catchers: dict[Subscriber, asyncio.Task[None]] = {}
        self._recent: dict[str, int] = {}  # ids published within LATE_TICKS → their ticks

    async def join(self, subscriber: Subscriber, queue: Queue) -> None:
        """Add a subscriber; one with a position first catches up with its own reads (what
        the feed publishes meanwhile is kept for it)."""
        start = subscriber.position
        if start is not None:
            self._catching[subscriber] = []
        self.add(subscriber)
        await self.ready.wait()
        if start is None:
            if subscriber.position is None:
                subscriber.position = self.position
            return
        task = asyncio.create_task(self._catch_up(subscriber, queue, self.position))
        self._catchers[subscriber] = task

    async def _catch_up(self, subscriber: Subscriber, queue: Queue, until: Position | None) -> None:
        """Read from the subscriber's position up to ``until`` (where the feed stood when it
        joined), then hand it what the feed published meanwhile."""
        partitions = sorted(subscriber.partitions or range(1, queue.partitions + 1))
        try:
            while until is not None and subscriber.ended is None:
                position = subscriber.position
                if position is not None and position >= until:
                    break
                await self.resumed.wait()
                now_ms = self.service.now_ms()
                page, more, _ = await read_page(self.service, queue, partitions, position, now_ms)
                mine = [m for m in page if position_of(m) <= until]
                if mine:
                    self._deliver(subscriber, mine)
                if len(mine) < len(page) or not more:
                    break
                while subscriber.queued_bytes and subscriber.ended is None:
                    await asyncio.sleep(0.01)  # the client takes this page before the next
        except StorageUnavailable as error:
            log.warning("stream of %s/%s cannot catch up: %s", *self.key, error)
            subscriber.end(End.SHUTDOWN)
        finally:
            waiting = self._catching.pop(subscriber, [])
            self._catchers.pop(subscriber, None)
        if waiting:
            self._deliver(subscriber, waiting)

    def _deliver(
        self,
        subscriber: Subscriber,
        messages: Iterable[Message],
        encoded: dict[tuple[int, int], Chunk] | None = None,
        late: bool = False,
    ) -> None:
        """Queue frames of the messages of its partitions past the subscriber's position
        (``late``: behind it too, leaving it); ``encoded`` keeps frames made for other
        subscribers of this batch."""
        chunks: list[Chunk] = []
        size = 0
        position = subscriber.position
        framing = subscriber.framing
        cache: dict[tuple[int, int], Chunk] = {} if encoded is None else encoded
        for index, message in enumerate(messages):
            at = position_of(message)
            if not subscriber.wants(message.partition) or (
                not late and position is not None and at <= position
            ):
                continue
            chunk = _encoded(cache, framing, index, message)
            chunks.append(chunk)
            size += len(chunk)
            if not late:
                position = at
        subscriber.position = position
        if chunks:
            _push(subscriber, chunks, size)

    def _remove(self, subscriber: Subscriber) -> None:
        task = self._catchers.pop(subscriber, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()  # it ended while catching up (its client left, or the queue went)
        self._catching.pop(subscriber, None)
        super()._remove(subscriber)

    async def stop(self) -> None:
        catchers = list(self._catchers.values())
        await super().stop()
        for task in catchers:
            task.cancel()
        await asyncio.gather(*catchers, return_exceptions=True)

    async def _step(self) -> float | None:
        queue = await self._queue()
        if queue is None:
            return None
        now_ms = self.service.now_ms()
        partitions = range(1, queue.partitions + 1)
        looks_back = self.service.storage.shared and not settle_window_ms(
            self.service.storage, queue.settings.consistency
        )
        if not self.ready.is_set():
            self.position = await self._newest(queue, now_ms)
            if looks_back:  # what is there now is not late
                self._recent = {m.id: m.ticks for m in await self._late(queue, now_ms)}
            self.ready.set()
        if self.paused:
            return IDLE_CHECK
        page, more, held = await read_page(self.service, queue, partitions, self.position, now_ms)
        if looks_back:
            late = await self._late(queue, now_ms)
            if late:
                self._publish(late, late=True)
        if page:
            self._publish(page)
        if more:
            return 0
        if held:
            return 0.1
        return await self._until_change(queue, now_ms)

    async def _newest(self, queue: Queue, now_ms: int) -> Position | None:
        """Where a stream with no position starts: after the newest live message."""
        partitions = range(1, queue.partitions + 1)
        found = await self.service.storage.read_messages(queue, partitions, None, True, 1, now_ms)
        return max((position_of(m) for m in found), default=None)

    async def _late(self, queue: Queue, now_ms: int) -> list[Message]:
        """Messages up to LATE_TICKS before the feed's position that it has not published."""
        if self.position is None:
            return []
        floor = self.position[0] - LATE_TICKS
        self._recent = {i: ticks for i, ticks in self._recent.items() if ticks >= floor}
        page, _, _ = await read_page(
            self.service, queue, range(1, queue.partitions + 1), (floor, ""), now_ms
        )
        position = self.position
        return [m for m in page if position_of(m) <= position and m.id not in self._recent]

    def _publish(self, messages: list[Message], late: bool = False) -> None:
        """Encode each message once per framing in use and queue the frames; subscribers
        of every partition at the feed's position get one joined chunk per framing. Late
        messages (behind the feed's position) go to every subscriber of their partition."""
        recent = self._recent
        for message in messages:
            recent[message.id] = message.ticks
        if late:
            encoded_late: dict[tuple[int, int], Chunk] = {}
            for subscriber in self.subscribers:
                waiting = self._catching.get(subscriber)
                if waiting is not None:
                    waiting.extend(messages)
                elif subscriber.ended is None:
                    self._deliver(subscriber, messages, encoded_late, late=True)
            return
        self.position = position_of(messages[-1])
        first = position_of(messages[0])
        shared: dict[int, tuple[list[Chunk], int]] = {}  # framing id → frames, size
        encoded: dict[tuple[int, int], Chunk] = {}  # (framing id, message index) → frame
        for subscriber in self.subscribers:
            if subscriber.ended is not None:
                continue
            waiting = self._catching.get(subscriber)
            if waiting is not None:
                waiting.extend(messages)
                continue
            framing = subscriber.framing
            fid = id(framing)
            if subscriber.partitions is None and (
                subscriber.position is None or subscriber.position < first
            ):
                frames = shared.get(fid)
                if frames is None:
                    chunks = [_encoded(encoded, framing, i, m) for i, m in enumerate(messages)]
                    size = sum(len(c) for c in chunks)
                    if framing.joinable:
                        chunks = [b"".join(chunks)]
                    frames = shared[fid] = (chunks, size)
                subscriber.position = self.position
                _push(subscriber, *frames)
                continue
            self._deliver(subscriber, messages, encoded)


def _encoded(
    cache: dict[tuple[int, int], Chunk], framing: Framing, index: int, message: Message
) -> Chunk:
    key = (id(framing), index)
    chunk = cache.get(key)
    if chunk is None:
        chunk = cache[key] = framing.message(message)
    return chunk


def _push(subscriber: Subscriber, chunks: list[Chunk], size: int) -> None:
    if subscriber.framing.joinable and len(chunks) > 1:
        chunks = [b"".join(chunks)]
    subscriber.push(chunks, size)


class Lease:
    """A round-robin subscriber's unacknowledged claims (claim id → when its lease ends)."""

    def __init__(self, ttl: int, credit: int) -> None:
        self.ttl = ttl
        self.credit = credit
        self.held: dict[str, int] = {}

    def expire(self, now_ms: int) -> list[str]:
        """Forget the claims whose lease ended; their ids."""
        ended = [item for item, until in self.held.items() if until <= now_ms]
        for item in ended:
            del self.held[item]
        return ended


class RoundRobin(Feed):
    """Claims messages for subscribers with credit left; each goes to one of them in turn."""

    def __init__(self, service: QueueService, key: Key, on_idle: Callable[[Feed], None]) -> None:
        super().__init__(service, key, on_idle)
        self.leases: dict[Subscriber, Lease] = {}
        self._holders: dict[str, Lease] = {}  # claim id → the lease holding it
        self._turn = 0
        self.at_most_once = False
        self._queue_seen: Queue | None = None
        self._unsent: list[Claim] = []  # of subscribers that left before their frames went

    def join(self, subscriber: Subscriber, lease: Lease) -> None:
        self.leases[subscriber] = lease
        subscriber.on_drain = self._drained
        self.add(subscriber)
        self.kick()

    def _drained(self) -> None:
        if self.at_most_once:  # frames written: credit comes back
            self.kick()

    def _remove(self, subscriber: Subscriber) -> None:
        lease = self.leases.pop(subscriber, None)
        if lease is not None:
            for item in lease.held:
                self._holders.pop(item, None)
        if subscriber.ended in UNDELIVERED:  # claims whose frames never went: given back
            self._unsent += subscriber.unsent
        subscriber.unsent = []
        super()._remove(subscriber)

    async def _left(self) -> None:
        """Give back the messages claimed for subscribers that left before their frames
        were written, as they were: no delivery counted. (Frames written stay claimed until
        their lease ends: they may have reached the client.)"""
        claims, self._unsent = self._unsent, []
        await self._give_back(claims)

    async def _give_back(self, claims: list[Claim]) -> None:
        queue = self._queue_seen
        if not claims or queue is None:
            return
        try:
            await self.service.give_back(queue, claims, self.at_most_once)
        except StorageUnavailable as error:  # their leases end: delivered again then
            log.warning("stream of %s/%s cannot give back claims: %s", *self.key, error)

    def free(self, subscriber: Subscriber) -> int:
        lease = self.leases.get(subscriber)
        if lease is None or subscriber.ended is not None:
            return 0
        held = subscriber.queued if self.at_most_once else len(lease.held)
        return max(0, lease.credit - held)

    def settle(self, claim_ids: Iterable[str], until_ms: int | None = None) -> None:
        """Claims acknowledged (``until_ms`` None) or extended: credit comes back or the
        lease's end moves."""
        moved = until_ms if until_ms is not None and until_ms > self.service.now_ms() else None
        holders = self._holders
        for item in claim_ids:
            lease = holders.get(item)
            if lease is None:
                continue
            if moved is not None:
                lease.held[item] = moved
            else:
                del holders[item]
                lease.held.pop(item, None)
        self.kick()

    async def _step(self) -> float | None:
        await self._left()
        queue = await self._queue()
        if queue is None:
            return None
        self._queue_seen = queue
        now_ms = self.service.now_ms()
        self.at_most_once = queue.settings.delivery == "at_most_once"
        for lease in self.leases.values():
            for item in lease.expire(now_ms):
                self._holders.pop(item, None)
        if not self.paused:
            groups: dict[tuple[int, frozenset[int] | None], list[Subscriber]] = {}
            for subscriber, lease in self.leases.items():
                if self.free(subscriber):
                    groups.setdefault((lease.ttl, subscriber.partitions), []).append(subscriber)
            full = False
            for (ttl, partitions), members in groups.items():
                full |= await self._claim(queue, ttl, partitions, members, now_ms)
            if full:
                return 0
        timeout = await self._until_change(queue, now_ms)
        ends = [until for lease in self.leases.values() for until in lease.held.values()]
        if ends:
            timeout = min(timeout, (min(ends) - now_ms) / 1000 + 0.001)
        return timeout

    async def _claim(
        self,
        queue: Queue,
        ttl: int,
        partitions: frozenset[int] | None,
        members: list[Subscriber],
        now_ms: int,
    ) -> bool:
        """Claim for the members as much as their credit allows; whether all of it came."""
        wanted = min(sum(self.free(s) for s in members), 100)
        chosen = sorted(partitions) if partitions is not None else range(1, queue.partitions + 1)
        claims = await self.service.storage.claim_messages(
            queue, list(chosen), wanted, now_ms, ttl * 1000, remove=self.at_most_once
        )
        # What nobody could take (its subscribers went away meanwhile) was never delivered.
        await self._give_back(self._hand_out(claims, members))
        return len(claims) == wanted

    def _hand_out(self, claims: list[Claim], members: list[Subscriber]) -> list[Claim]:
        """Give the claims to the members in turn, each its share (an equal part of what is
        left, within its credit) in one push, so that claims handed out together are written
        together and can be acked in one frame; the ones nobody could take."""
        pending = list(claims)
        while pending:
            open_ = [s for s in members if self.free(s)]
            if not open_:
                break
            share = -(-len(pending) // len(open_))
            for subscriber in _rotate(open_, self._turn):
                count = min(share, self.free(subscriber), len(pending))
                if count <= 0:
                    continue
                given, pending = pending[:count], pending[count:]
                chunks = [subscriber.framing.claim(claim) for claim in given]
                if not subscriber.push(chunks, sum(len(chunk) for chunk in chunks), given):
                    pending = given + pending  # it overflowed and left: the claims are not its
                    continue
                if not self.at_most_once:
                    lease = self.leases[subscriber]
                    for claim in given:
                        item = claim_id(claim)
                        lease.held[item] = claim.expires_ms
                        self._holders[item] = lease
            self._turn += 1
        return pending


def _rotate(items: list[Subscriber], turn: int) -> list[Subscriber]:
    start = turn % len(items)
    return items[start:] + items[:start]
