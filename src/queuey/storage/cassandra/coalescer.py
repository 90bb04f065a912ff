"""Concurrent writes to one Cassandra partition, sent as shared requests.

Posts of new messages to one queue's bucket all land in one Cassandra partition, and an
unlogged batch of one partition is one mutation: atomic and isolated, whatever the number of
rows. So while a bucket has ``IN_FLIGHT`` requests out, the writes that come meanwhile wait
and go together, as one batch, when one of them answers: under load a request carries what
arrived during a round trip, one driver request instead of one per post. A write to a bucket
with fewer requests out goes at once, so an idle queue's post waits for nothing.

Each write keeps its own outcome: its values are serialized by themselves (one the driver
refuses fails alone), and a shared request that fails fails every write it carried (none of
them answered as stored, as when each had failed by itself)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from queuey.core.errors import StorageUnavailable
from queuey.storage.cassandra.session import Rows, Session, Statements, unavailable

IN_FLIGHT = 2  # requests a bucket has out before the writes that come wait to go together
MOST_ROWS = 1000  # statements in one shared request at most (one write may have more)

Lane = tuple[int, int, str]  # (qid, bucket, consistency level)
_Waiting = tuple[Statements, "asyncio.Future[None]"]


class _Lane:
    __slots__ = ("out", "waiting")

    def __init__(self) -> None:
        self.out = 0  # requests sent and not answered
        self.waiting: list[_Waiting] = []


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
        lane.waiting.append((statements, future))
        if lane.out < IN_FLIGHT:
            self._send(key, lane)
        return future

    def _send(self, key: Lane, lane: _Lane) -> None:
        """Send what ``lane`` has waiting (up to MOST_ROWS statements) as one request."""
        taken: list[_Waiting] = []
        size = 0
        waiting = lane.waiting
        while waiting and (not taken or size + len(waiting[0][0]) <= MOST_ROWS):
            statements, future = waiting.pop(0)
            if not future.done():  # a caller that left is not written for
                taken.append((statements, future))
                size += len(statements)
        if not taken:
            self._idle(key, lane)
            return
        level = key[2]
        sent: asyncio.Future[Any] | None
        if len(taken) == 1:
            sent = self._session.batch(taken[0][0], level, logged=False)
        else:
            sent = self._merged(taken, level)
        if sent is None:
            self._idle(key, lane)
            return
        lane.out += 1
        sent.add_done_callback(lambda done: self._answered(key, lane, taken, done))

    def _merged(self, taken: list[_Waiting], level: str) -> asyncio.Future[Any] | None:
        """One batch of the writes ``taken``, each serialized by itself: one with a value the
        driver refuses fails alone (and is left out). None when none is left."""
        session = self._session
        rows: Rows = []
        route: tuple[str, Sequence[Any]] | None = None
        for statements, future in taken:
            try:
                own = session.rows(statements)
            except Exception as exc:
                future.set_exception(unavailable(exc, "batch"))
                continue
            rows += own
            if route is None:
                route = statements[0]
        if route is None:
            return None
        return session.submit(lambda: session.batch_of(route, rows, level, logged=False), "batch")

    def _answered(
        self, key: Lane, lane: _Lane, taken: list[_Waiting], done: asyncio.Future[Any]
    ) -> None:
        lane.out -= 1
        failure = StorageUnavailable() if done.cancelled() else done.exception()
        for _, future in taken:
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
