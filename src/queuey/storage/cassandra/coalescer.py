"""Concurrent writes to one Cassandra partition, sent as shared requests.

Posts of new messages to one queue's bucket all land in one Cassandra partition, and an
unlogged batch of one partition is one mutation: atomic and isolated, whatever the number of
rows. So while a bucket has ``IN_FLIGHT`` requests out, the writes that come meanwhile wait
and go together, as one batch, when one of them answers: under load a request carries what
arrived during a round trip, one driver request instead of one per post. A write to a bucket
with fewer requests out goes at once, so an idle queue's post waits for nothing.

A shared request holds at most ``MOST_ROWS`` statements and ``MOST_BYTES`` (a
write bigger than that goes alone, as it would have): a batch that also holds bookkeeping
rows spans several partitions, and Cassandra refuses those over ``batch_size_fail_threshold``
(50 KiB unless configured), so merged writes stay below it. Once a full request's worth
waits, it goes at once whatever the requests out: big writes (batches of a hundred
messages) are not held to ``IN_FLIGHT`` requests at a time, only small ones are merged.

Each write keeps its own outcome: its values are serialized by themselves (one the driver
refuses fails alone), and a shared request that fails fails every write it carried (none of
them answered as stored, as when each had failed by itself)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from queuey.core.errors import StorageUnavailable
from queuey.storage.cassandra.session import Rows, Session, Statements, unavailable

IN_FLIGHT = 2  # requests a bucket has out before the writes that come wait to go together
MOST_ROWS = 1000  # statements in one shared request at most
MOST_BYTES = 40 * 1024  # bytes in one shared request at most, as Cassandra counts them: the
STATEMENT_BYTES = 192  # values, and per statement its cells' timestamps and TTLs (a message
# row counts 145 bytes more than its values on Cassandra 5), and its key in an index row

Lane = tuple[int, int, str]  # (qid, bucket, consistency level)


class _Write:
    __slots__ = ("statements", "future", "rows", "size")

    def __init__(self, statements: Statements, future: asyncio.Future[None]) -> None:
        self.statements = statements
        self.future = future
        self.rows: Rows | None = None  # serialized once it waits with others
        self.size = 0  # bytes of its values, once serialized


class _Lane:
    __slots__ = ("out", "waiting", "rows", "size")

    def __init__(self) -> None:
        self.out = 0  # requests sent and not answered
        self.waiting: deque[_Write] = deque()
        self.rows = 0  # statements and bytes of the serialized writes waiting
        self.size = 0

    def measured(self, write: _Write, sign: int) -> None:
        """Count ``write`` (serialized) among the waiting ones (1), or no more (-1)."""
        if write.rows is not None:
            self.rows += sign * len(write.rows)
            self.size += sign * write.size

    def full(self) -> bool:
        return self.rows >= MOST_ROWS or self.size >= MOST_BYTES


class Coalescer:
    """Sends the single-bucket writes of new messages, merging those that wait (see the
    module's docstring). Used from the event loop only."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lanes: dict[Lane, _Lane] = {}

    def write(
        self, qid: int, bucket: int, level: str, statements: Statements
    ) -> asyncio.Future[None]:
        """Write ``statements`` (rows of one bucket of queue ``qid``, and bookkeeping rows),
        alone or with other writes of that bucket; the future fails with StorageUnavailable."""
        key = (qid, bucket, level)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        future: asyncio.Future[None] = self._session.loop.create_future()
        write = _Write(statements, future)
        lane.waiting.append(write)
        if lane.out < IN_FLIGHT:
            self._send(key, lane)
        elif self._serialize(write) is not None:
            lane.measured(write, 1)
            if lane.full():  # a full request's worth: no reason to wait
                self._send(key, lane)
        return future

    def _send(self, key: Lane, lane: _Lane) -> None:
        """Send what ``lane`` has waiting as one request (within MOST_ROWS and MOST_BYTES)."""
        waiting = lane.waiting
        while waiting and waiting[0].future.done():  # a caller that left is not written for
            lane.measured(waiting.popleft(), -1)
        if not waiting:
            self._idle(key, lane)
            return
        level = key[2]
        taken: list[_Write]
        session = self._session
        if len(waiting) == 1 and waiting[0].rows is None:  # alone: sent as any write is
            taken = [waiting.popleft()]
            lane.measured(taken[0], -1)
            sent = session.batch(taken[0].statements, level, logged=False)
        else:  # serialized while it waited: not bound again
            taken, rows = self._take(lane)
            if not taken:
                self._idle(key, lane)
                return
            route = taken[0].statements[0]
            sent = session.submit(
                lambda: session.batch_of(route, rows, level, logged=False), "batch"
            )
        lane.out += 1
        sent.add_done_callback(lambda done: self._answered(key, lane, taken, done))

    def _take(self, lane: _Lane) -> tuple[list[_Write], Rows]:
        """The writes at the head of ``lane``'s waiting ones that go together, and their
        rows."""
        waiting = lane.waiting
        taken: list[_Write] = []
        rows: Rows = []
        size = 0
        while waiting:
            write = waiting[0]
            own = None if write.future.done() else self._serialize(write)
            if own is None:  # a caller that left, or a write that failed
                lane.measured(waiting.popleft(), -1)
                continue
            if taken and (len(rows) + len(own) > MOST_ROWS or size + write.size > MOST_BYTES):
                break
            lane.measured(waiting.popleft(), -1)
            taken.append(write)
            rows += own
            size += write.size
        return taken, rows

    def _serialize(self, write: _Write) -> Rows | None:
        """``write``'s rows, serialized by themselves once; None (and the write failed) when
        the driver refuses one of its values."""
        if write.rows is None and not write.future.done():
            try:
                write.rows = self._session.rows(write.statements)
            except Exception as exc:
                write.future.set_exception(unavailable(exc, "batch"))
                return None
            write.size = sum(sum(map(len, filter(None, values))) for _, values in write.rows)
            write.size += STATEMENT_BYTES * len(write.rows)
        return write.rows

    def _answered(
        self, key: Lane, lane: _Lane, taken: list[_Write], done: asyncio.Future[Any]
    ) -> None:
        lane.out -= 1
        failure = StorageUnavailable() if done.cancelled() else done.exception()
        for write in taken:
            future = write.future
            if future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(_own_copy(failure))
        if lane.waiting:
            self._send(key, lane)
        else:
            self._idle(key, lane)

    def _idle(self, key: Lane, lane: _Lane) -> None:
        if lane.out == 0 and not lane.waiting and self._lanes.get(key) is lane:
            del self._lanes[key]


def _own_copy(failure: BaseException) -> BaseException:
    """A failure for one of the writes a shared request carried (each raises its own)."""
    if not isinstance(failure, StorageUnavailable):
        return failure
    error = StorageUnavailable(str(failure))
    error.__cause__ = failure.__cause__
    return error
