"""Counts of a queue kept between calls, for back-ends whose stats would otherwise read every
message of the queue on each call (``stats``, ``include_count``).

A count taken at ``at_ms`` stays exact while two things hold: the queue's change marker is the
one it was taken under (the back-end moves the marker on every write that can change a count:
posts, deletes, claims, acks, extensions, releases, purges, dead letters, sweeps), and the clock
has not reached ``until_ms``, the earliest time at which a counted message expires, a delayed one
falls due or a lease ends (the back-end finds it in the query that counts). A clock that went
back before ``at_ms`` recounts too.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from queuey.core.models import QueueStats

#: The stats of a queue without messages (or that no longer exists).
EMPTY = QueueStats(0, 0, 0, 0, None, None)


def earliest(times: Iterable[int | None]) -> int | None:
    """The earliest of the times that are known, or None."""
    return min((t for t in times if t is not None), default=None)


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

    def drop(self, qid: int) -> None:
        self._counted.pop(qid, None)
