"""Counts of a queue kept between calls, for back-ends whose stats would otherwise read every
message of the queue on each call (``stats``, ``include_count``).

A count taken at ``at_ms`` stays exact while two things hold: the queue's change marker is the
one it was taken under (the back-end moves the marker on every write that can change a count:
posts, deletes, claims, acks, extensions, releases, purges, dead letters, sweeps), and the clock
has not reached ``until_ms``, the earliest time at which a counted message expires, a delayed one
falls due or a lease ends (the back-end finds it in the query that counts). A clock that went
back before ``at_ms`` recounts too. Two calls at once for one queue and marker share one count
(:meth:`CountCache.kept`, for back-ends that count asynchronously; the others count on the event
loop, so a second call finds the first one's count kept).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass

from queuey.core.models import QueueStats

#: The stats of a queue without messages (or that no longer exists).
EMPTY = QueueStats(0, 0, 0, 0, None, None)


def earliest(times: Iterable[int | None]) -> int | None:
    """The earliest of the times that are known, or None."""
    return min((t for t in times if t is not None), default=None)


#: What counts a queue: its stats, and until when they stay exact by the clock (None: for ever).
Counter = Callable[[], Awaitable[tuple[QueueStats, int | None]]]


class Markers:
    """Change markers kept in this process: one per queue (by any hashable key) and one of the
    whole store. A marker is the pair of both, so a change of the store moves every queue's."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._capacity = capacity
        self._of: dict[Hashable, int] = {}
        self._all = 0

    def changed(self, key: Hashable) -> None:
        if key not in self._of and len(self._of) >= self._capacity:
            self._of.clear()  # forgotten markers would start again: move every one
            self._all += 1
        self._of[key] = self._of.get(key, 0) + 1

    def changed_all(self) -> None:
        self._all += 1

    def of(self, key: Hashable) -> tuple[int, int]:
        return self._of.get(key, 0), self._all


@dataclass(frozen=True, slots=True)
class _Flight:
    marker: Hashable
    at_ms: int
    task: asyncio.Future[tuple[QueueStats, int | None]]


@dataclass(frozen=True, slots=True)
class _Counted:
    marker: Hashable
    at_ms: int
    until_ms: int | None  # None: nothing changes by the clock alone
    stats: QueueStats


class CountCache:
    """The last count of each queue (by qid), with what it stays exact for."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._counted: dict[int, _Counted] = {}
        self._flights: dict[int, _Flight] = {}
        #: Counts answered from the cache, and counts taken.
        self.hits = 0
        self.counts = 0

    def get(self, qid: int, marker: Hashable, now_ms: int) -> QueueStats | None:
        """The count of queue ``qid`` at ``now_ms`` if the one kept is still exact, else None."""
        found = self._counted.get(qid)
        if (
            found is None
            or found.marker != marker
            or now_ms < found.at_ms
            or (found.until_ms is not None and now_ms >= found.until_ms)
        ):
            return None
        self.hits += 1
        return found.stats

    def put(
        self, qid: int, marker: Hashable, now_ms: int, until_ms: int | None, stats: QueueStats
    ) -> None:
        """Keep a count of queue ``qid`` taken at ``now_ms`` under ``marker``, exact until
        ``until_ms`` (exclusive; None: for as long as the marker stays)."""
        self.counts += 1
        if qid not in self._counted and len(self._counted) >= self._capacity:
            self._counted.clear()
        self._counted[qid] = _Counted(marker, now_ms, until_ms, stats)

    async def kept(self, qid: int, marker: Hashable, now_ms: int, count: Counter) -> QueueStats:
        """The count of queue ``qid`` at ``now_ms``: the one kept if still exact, else that of
        a call under way for the same marker (counting at or before ``now_ms``, when it stays
        exact until ``now_ms``), else one that ``count`` takes now (and keeps)."""
        found = self.get(qid, marker, now_ms)
        if found is not None:
            return found
        flight = self._flights.get(qid)
        if flight is not None and flight.marker == marker and flight.at_ms <= now_ms:
            stats, until_ms = await asyncio.shield(flight.task)
            if until_ms is None or now_ms < until_ms:
                self.hits += 1
                return stats
        task = asyncio.ensure_future(count())
        task.add_done_callback(_retrieved)  # its failure is the callers'; none may be left
        flight = self._flights[qid] = _Flight(marker, now_ms, task)
        try:
            stats, until_ms = await asyncio.shield(task)
        finally:
            if self._flights.get(qid) is flight:
                del self._flights[qid]
        self.put(qid, marker, now_ms, until_ms, stats)
        return stats


def _retrieved(task: asyncio.Future[tuple[QueueStats, int | None]]) -> None:
    """Mark a count's failure as seen (its callers, if any is left, get it themselves)."""
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()
