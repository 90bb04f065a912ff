"""One open stream: what is queued for it, how it ends, and how it is framed.

A feed (broadcast or round-robin) pushes encoded frames into a subscriber; the HTTP layer
takes them out and writes them, or, once it attached a direct writer (:meth:`Subscriber.attach`),
a push writes them at once (one transport write a subscriber, no task woken) whenever nothing
is queued or being written before them. The frames are the framing's own (server-sent events
and NDJSON text, a WebSocket text frame's payload: UTF-8 bytes all), made by a
:class:`Framing`, so a broadcast message is encoded once per framing however many subscribers
get it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from typing import Protocol

from queuey.core.models import Claim, Message

Chunk = bytes
Position = tuple[int, str]  # (ticks, id): the order of messages in a queue


class End(enum.Enum):
    """Why a stream ended."""

    DELETED = "deleted"  # the queue was deleted (or its consumers ended, for a consumer)
    OVERFLOW = "overflow"  # more than stream_buffer bytes were queued for it
    SHUTDOWN = "shutdown"  # the server is stopping
    GONE = "gone"  # the client went away
    EXPIRED = "expired"  # the token it was opened with expired


#: Ends after which the frames still queued are dropped: their claims are given back.
UNDELIVERED = frozenset({End.OVERFLOW, End.GONE})


class Framing(Protocol):
    """How messages are written on one kind of stream."""

    #: Whether consecutive frames can be written as one chunk (a byte stream can).
    joinable: bool

    def message(self, message: Message) -> Chunk:
        """A broadcast message."""
        ...

    def claim(self, claim: Claim) -> Chunk:
        """A message claimed for one round-robin subscriber."""
        ...


class Subscriber:
    """The frames queued for one stream, bounded by ``buffer`` bytes."""

    def __init__(
        self,
        framing: Framing,
        partitions: frozenset[int] | None,
        buffer: int,
        position: Position | None = None,
    ) -> None:
        self.framing = framing
        self.partitions = partitions  # None: all of the queue's
        self.position = position  # the last message given (broadcast)
        #: A consumer's (bound with ``consumer``): the queue's end marker when it bound; it
        #: ends (DELETED) once its feed reads a higher one. None: it ends with the queue only.
        self.end_marker: int | None = None
        self.ended: End | None = None
        self.on_end: Callable[[Subscriber], None] | None = None
        self.on_drain: Callable[[], None] | None = None
        self._buffer = buffer
        self._chunks: list[Chunk] = []
        self._size = 0
        #: Round-robin claims whose frames are queued, not yet taken to be written.
        self.unsent: list[Claim] = []
        self._ready = asyncio.Event()
        self._beat = False
        self._expiry: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        #: Event-loop time of the last frames or heartbeat taken or written.
        self.active = self._loop.time()
        # Writes frames to the client now; False when it cannot (see attach).
        self._sink: Callable[[list[Chunk]], bool] | None = None
        self._heartbeat = b""
        self._in_flight = False  # frames taken are being written

    @property
    def queued(self) -> int:
        """How many frames wait to be written."""
        return len(self._chunks)

    @property
    def queued_bytes(self) -> int:
        return self._size

    def wants(self, partition: int) -> bool:
        return self.partitions is None or partition in self.partitions

    def attach(self, sink: Callable[[list[Chunk]], bool], heartbeat: bytes) -> None:
        """Write frames (and ``heartbeat``) with ``sink`` from now on when nothing is queued
        or being written before them; ``sink`` returns False when it cannot write at once
        (the client does not keep up, the connection closes): the frames are queued then."""
        self._sink = sink
        self._heartbeat = heartbeat

    def _direct(self, chunks: Sequence[Chunk]) -> bool:
        """Whether the frames were written at once."""
        sink = self._sink
        if sink is None or self._chunks or self._in_flight or not sink(list(chunks)):
            return False
        self.active = self._loop.time()
        return True

    def push(self, chunks: Sequence[Chunk], size: int, claims: Sequence[Claim] = ()) -> bool:
        """Write frames of ``size`` bytes (those of round-robin ``claims``), or queue them;
        past the buffer (what is queued and these frames) the stream ends (OVERFLOW), written
        at once or not. Whether they were written or queued."""
        if self.ended is not None:
            return False
        if self._size + size > self._buffer:
            self.end(End.OVERFLOW)
            return False
        if self._direct(chunks):
            if self.on_drain is not None:
                self.on_drain()
            return True
        self._size += size
        self._chunks.extend(chunks)
        self.unsent.extend(claims)
        self._ready.set()
        return True

    def expire_in(self, seconds: float) -> None:
        """End the stream (EXPIRED) ``seconds`` from now, unless it ended before."""
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, seconds), self.end, End.EXPIRED)

    def end(self, reason: End) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if self._expiry is not None:
            self._expiry.cancel()
        if reason in UNDELIVERED:  # what is queued will never be written
            self._chunks.clear()
            self._size = 0
        self._ready.set()
        if self.on_end is not None:
            self.on_end(self)

    def heartbeat(self) -> None:
        """A heartbeat is due (nothing was sent for a while)."""
        if self._heartbeat and self._direct([self._heartbeat]):
            return
        self._beat = True
        self._ready.set()

    async def take(self) -> list[Chunk]:
        """The frames queued so far, waiting for one; [] when a heartbeat is due or the
        stream ended."""
        self._in_flight = False  # what it took before is written
        if not self._chunks and self.ended is None and not self._beat:
            await self._ready.wait()
        self._ready.clear()
        self._beat = False
        self.active = asyncio.get_running_loop().time()
        chunks, self._chunks, self._size = self._chunks, [], 0
        self.unsent = []  # their frames are being written: delivered, as far as we can tell
        if chunks:
            self._in_flight = True
            if self.on_drain is not None:
                self.on_drain()
        return chunks
