"""Streams: the stream requests of one server process, and the feeds that serve them.

The seam to the rest of Queuey is small: :class:`Streams` is built from the service, checks a
stream's parameters and rights through it, reads and claims through its storage, and wakes on
its Notifier (see :meth:`queuey.streams.feeds.Feed._watch_notifier`). Acks and extensions of
claims (over a WebSocket or ``/claims``) are reported with :meth:`Streams.settle` so that
round-robin credit comes back at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from queuey.core.errors import TooManyStreams
from queuey.core.ids import ticks_of
from queuey.core.limits import MAX_CLAIM_TTL, Limits
from queuey.core.models import POLICIES, Caller, Queue
from queuey.core.validation import Errors, check_choice, check_int
from queuey.service import QueueService
from queuey.service.params import _cursor, _partition_list
from queuey.service.rights import Right
from queuey.streams.feeds import Broadcast, Feed, Lease, RoundRobin
from queuey.streams.subscriber import Framing, Position, Subscriber

DEFAULT_CREDIT = 10
MAX_CREDIT = 1000
_BROADCAST_ONLY = ("after", "since", "last_event_id")
_ROUNDROBIN_ONLY = ("ttl", "credit")


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A stream the caller may open: checked parameters and the queue."""

    queue: Queue
    mode: str
    partitions: frozenset[int] | None  # None: all of the queue's
    position: Position | None  # broadcast: after this message; None: from now on
    ttl: int  # round-robin lease, seconds
    credit: int  # round-robin unacked messages
    expires: float = float("inf")  # epoch seconds: when the caller's token expires


class Streams:
    """Every open stream of this process, by queue and mode."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self._feeds: dict[tuple[str, str, str], Feed] = {}
        self._beats: asyncio.Task[None] | None = None

    @property
    def limits(self) -> Limits:
        return self.service.limits

    @property
    def open(self) -> int:
        """How many streams are open."""
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    def open_of(self, app: str) -> int:
        """How many of ``app``'s streams are open."""
        return sum(len(feed.subscribers) for key, feed in self._feeds.items() if key[0] == app)

    def _admit(self, app: str) -> None:
        """Raise when this process, or ``app`` in it, holds as many streams as it may."""
        if self.open >= self.limits.max_streams:
            raise TooManyStreams()
        self.service.quotas.admit_stream(app, self.open_of(app))

    async def check(
        self,
        caller: Caller,
        app: str,
        name: str,
        params: Mapping[str, str],
        last_event_id: str | None = None,
    ) -> StreamRequest:
        """The stream asked for, or the error (400/401/403/404/429/503) to answer instead."""
        errors = Errors()
        mode = check_choice(errors, "mode", params.get("mode"), POLICIES, None)
        partitions = None
        if params.get("partitions"):
            limit = self.limits.max_partitions
            partitions = frozenset(_partition_list(errors, params["partitions"], limit))
        position = _start(errors, params, last_event_id)
        ttl = check_int(errors, "ttl", params.get("ttl"), 0, 1, MAX_CLAIM_TTL)
        credit = check_int(errors, "credit", params.get("credit"), DEFAULT_CREDIT, 1, MAX_CREDIT)
        errors.raise_if_any()
        assert ttl is not None and credit is not None
        right = Right.CLAIM if mode == "roundrobin" else Right.READ
        if caller.grant is not None:  # a token opens streams with its stream right
            await self.service.queue(caller, app, name, Right.STREAM)
            right = Right.CLAIM if mode == "roundrobin" else Right.STREAM
        queue = await self.service.queue(caller, app, name, right)
        if mode is None:
            mode = queue.settings.policy
            if mode == "roundrobin":
                queue = await self.service.queue(caller, app, name, Right.CLAIM)
        other, needed = (
            (_ROUNDROBIN_ONLY, "roundrobin")
            if mode == "broadcast"
            else (_BROADCAST_ONLY, "broadcast")
        )
        for key in other:
            if params.get(key):
                errors[key] = f"Only with mode={needed}"
        errors.raise_if_any()
        self._admit(app)
        return StreamRequest(
            queue, mode, partitions, position if mode == "broadcast" else None,
            ttl or queue.settings.claim_ttl, credit,
            caller.grant.expires if caller.grant is not None else float("inf"),
        )  # fmt: skip

    async def subscribe(
        self, request: StreamRequest, framing: Framing, consumer: bool = False
    ) -> Subscriber:
        """Open the stream: its subscriber receives frames until it ends. A ``consumer``'s
        also ends when the queue's consumers are ended (:meth:`QueueService.end_consumers`)
        after it bound, through whichever process."""
        queue = request.queue
        self._admit(queue.app)
        subscriber = Subscriber(
            framing, request.partitions, self.limits.stream_buffer, request.position
        )
        feed = self._feed(queue, request.mode)
        if consumer:
            subscriber.end_marker = max(queue.end_marker, feed.end_marker)
        if self._beats is None:
            self._beats = asyncio.create_task(self._heartbeats())
        if isinstance(feed, RoundRobin):
            feed.join(subscriber, Lease(request.ttl, request.credit))
        else:
            assert isinstance(feed, Broadcast)
            await feed.join(subscriber, queue)
        if request.expires != float("inf"):  # a token's stream ends when the token does
            subscriber.expire_in(request.expires - self.service.now_ms() / 1000)
        return subscriber

    def _feed(self, queue: Queue, mode: str) -> Feed:
        key = (queue.app, queue.name, mode)
        feed = self._feeds.get(key)
        if feed is None:
            kind = RoundRobin if mode == "roundrobin" else Broadcast
            feed = self._feeds[key] = kind(self.service, key[:2], self._idle)
        return feed

    def _idle(self, feed: Feed) -> None:
        mode = "roundrobin" if isinstance(feed, RoundRobin) else "broadcast"
        key = (*feed.key, mode)
        if self._feeds.get(key) is feed:
            del self._feeds[key]

    def settle(
        self, app: str, name: str, claim_ids: Iterable[str], until_ms: int | None = None
    ) -> None:
        """Claims of the queue were acknowledged (``until_ms`` None) or extended until
        ``until_ms``: round-robin subscribers holding them get their credit back."""
        feed = self._feeds.get((app, name, "roundrobin"))
        if isinstance(feed, RoundRobin):
            feed.settle(claim_ids, until_ms)

    def credit(self, app: str, name: str, subscriber: Subscriber, credit: int) -> None:
        """A round-robin subscriber's new credit."""
        feed = self._feeds.get((app, name, "roundrobin"))
        if isinstance(feed, RoundRobin):
            lease = feed.leases.get(subscriber)
            if lease is not None:
                lease.credit = credit
                feed.kick()

    async def _heartbeats(self) -> None:
        """One timer for every stream of the process: a stream that sent nothing for
        ``stream_heartbeat`` seconds (less a quarter of it, the timer's period) gets a
        heartbeat. Ends when no stream is left."""
        loop = asyncio.get_running_loop()
        try:
            while self._feeds:
                heartbeat = self.limits.stream_heartbeat
                period = heartbeat / 4
                await asyncio.sleep(period)
                idle_since = loop.time() - (heartbeat - period)
                for feed in list(self._feeds.values()):
                    for subscriber in feed.subscribers:
                        if subscriber.active <= idle_since:
                            subscriber.heartbeat()
        finally:
            self._beats = None

    async def stop(self) -> None:
        """End every stream (server shutdown): clients reconnect, elsewhere if need be."""
        feeds = list(self._feeds.values())
        await asyncio.gather(*(feed.stop() for feed in feeds))
        if self._beats is not None:
            self._beats.cancel()
            await asyncio.gather(self._beats, return_exceptions=True)


def _start(errors: Errors, params: Mapping[str, str], last_event_id: str | None) -> Position | None:
    """Where a broadcast stream starts: after ``Last-Event-ID`` (a reconnection: it wins),
    after ``after``, at ``since``; None: with what comes next."""
    resumed = params.get("last_event_id") or last_event_id
    if resumed:
        ticks = ticks_of(resumed.lower())
        if ticks is None:
            field = "last_event_id" if params.get("last_event_id") else "Last-Event-ID"
            errors[field] = f'"{resumed}" is not a message id'
            return None
        return (ticks, resumed.lower())
    since, after = params.get("since"), params.get("after")
    cursor = _cursor(errors, since, after, False)
    if cursor is None:
        return (0, "") if since and "since" not in errors else None
    if not cursor.inclusive:
        return (cursor.ticks, cursor.id)
    if cursor.id == "":
        return (cursor.ticks, "")
    before = int(cursor.id[16:], 16) - 1  # the position just before the id itself
    return (cursor.ticks, "" if before < 0 else f"{cursor.id[:16]}{before:016x}")
