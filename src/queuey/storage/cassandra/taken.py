"""The rows this process's claims are taking right now, and the ones they took lately."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from queuey.storage.cassandra.rows import Key

TAKEN_S = 1.0  # how long a process passes over rows it just claimed when they show up again
_PRUNE_ABOVE = 4096  # taken rows of one queue kept before the old ones are forgotten


class TakenRows:
    """Claim candidates read before a claim of this process took them may still show as
    available: they are passed over rather than failing a conditional batch."""

    def __init__(self) -> None:
        self._inflight: dict[int, set[Key]] = {}  # qid -> rows being taken
        self._taken: dict[int, dict[Key, tuple[int, float]]] = {}  # (lease end, loop time)

    def inflight(self, qid: int) -> int:
        """How many rows of ``qid`` this process's claims are taking."""
        return len(self._inflight.get(qid, ()))

    def passed_over(self, qid: int, key: Key, now_ms: int, loop_now: float) -> bool:
        """Whether a claim leaves the row ``key`` alone: another claim of this process is
        taking it, or took it since it was read."""
        if key in self._inflight.get(qid, ()):
            return True
        took = self._taken.get(qid, {}).get(key)
        return took is not None and took[0] > now_ms and loop_now - took[1] < TAKEN_S

    @contextmanager
    def taking(self, qid: int, keys: list[Key]) -> Iterator[None]:
        """``keys`` are being taken within the block."""
        inflight = self._inflight.setdefault(qid, set())
        inflight.update(keys)
        try:
            yield
        finally:
            inflight.difference_update(keys)
            if not inflight and self._inflight.get(qid) is inflight:
                del self._inflight[qid]

    def took(self, qid: int, keys: list[Key], cexp: int) -> None:
        """A claim took ``keys``, leased until ``cexp``."""
        taken = self._taken.setdefault(qid, {})
        loop_now = asyncio.get_running_loop().time()
        if len(taken) > _PRUNE_ABOVE:
            for key in [k for k, (_, at) in taken.items() if loop_now - at >= TAKEN_S]:
                del taken[key]
        for key in keys:
            taken[key] = (cexp, loop_now)

    def acked(self, qid: int, key: Key) -> None:
        taken = self._taken.get(qid)
        if taken:
            taken.pop(key, None)

    def extended(self, qid: int, key: Key, cexp: int) -> None:
        """A lease was changed (a release makes the row available to this process at once)."""
        taken = self._taken.get(qid, {})
        if key in taken:
            taken[key] = (cexp, taken[key][1])
