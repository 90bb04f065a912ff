"""One open stream: what is queued for it, how it ends, and how it is framed.

A feed (broadcast or round-robin) pushes encoded frames into a subscriber; the HTTP layer
takes them out and writes them. The frames are the framing's own (bytes for server-sent events
and NDJSON, text for WebSocket), made by a :class:`Framing`, so a broadcast message is encoded
once per framing however many subscribers get it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from typing import Protocol

from queuey.core.models import Claim, Message

Chunk = bytes | str
Position = tuple[int, str]  # (ticks, id): the order of messages in a queue


class End(enum.Enum):
    """Why a stream ended."""

    DELETED = "deleted"  # the queue was deleted
    OVERFLOW = "overflow"  # more than stream_buffer bytes were queued for it
    SHUTDOWN = "shutdown"  # the server is stopping
    GONE = "gone"  # the client went away


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
        self.ended: End | None = None
        self.on_end: Callable[[Subscriber], None] | None = None
        self.on_drain: Callable[[], None] | None = None
        self._buffer = buffer
        self._chunks: list[Chunk] = []
        self._size = 0
        self._ready = asyncio.Event()
        self._beat = False
        #: Event-loop time of the last frames or heartbeat taken.
        self.active = asyncio.get_running_loop().time()

    @property
    def queued(self) -> int:
        """How many frames wait to be written."""
        return len(self._chunks)

    @property
    def queued_bytes(self) -> int:
        return self._size

    def wants(self, partition: int) -> bool:
        return self.partitions is None or partition in self.partitions

    def push(self, chunks: Sequence[Chunk], size: int) -> None:
        """Queue frames of ``size`` bytes; past the buffer the stream ends (OVERFLOW)."""
        if self.ended is not None:
            return
        self._size += size
        if self._size > self._buffer:
            self.end(End.OVERFLOW)
            return
        self._chunks.extend(chunks)
        self._ready.set()

    def end(self, reason: End) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if reason is End.OVERFLOW:
            self._chunks.clear()
            self._size = 0
        self._ready.set()
        if self.on_end is not None:
            self.on_end(self)

    def heartbeat(self) -> None:
        """A heartbeat is due (nothing was sent for a while)."""
        self._beat = True
        self._ready.set()

    async def take(self) -> list[Chunk]:
        """The frames queued so far, waiting for one; [] when a heartbeat is due or the
        stream ended."""
        if not self._chunks and self.ended is None and not self._beat:
            await self._ready.wait()
        self._ready.clear()
        self._beat = False
        self.active = asyncio.get_running_loop().time()
        chunks, self._chunks, self._size = self._chunks, [], 0
        if chunks and self.on_drain is not None:
            self.on_drain()
        return chunks
