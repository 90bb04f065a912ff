"""Long polling: a read or claim that found nothing waits for something to change."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from queuey.core.clock import Clock
from queuey.core.models import Queue
from queuey.notify import Notifier
from queuey.storage.base import Storage


class Client(Protocol):
    """Whoever a long poll answers, as the HTTP layer knows them."""

    @property
    def gone(self) -> bool:
        """Whether the client has gone away (disconnected)."""
        ...

    async def departed(self) -> None:
        """Return when the client goes away."""
        ...

    def undelivered(self, undo: Callable[[], Awaitable[None]]) -> None:
        """Have ``undo`` run if the answer does not reach the client."""
        ...


class LongPoll:
    def __init__(self, storage: Storage, notifier: Notifier, clock: Clock) -> None:
        self._storage = storage
        self._notifier = notifier
        self._clock = clock
        #: Long polls waiting now (a gauge of the metrics).
        self.waiting = 0

    @staticmethod
    def deadline(wait: float) -> float:
        """The event-loop time ``wait`` seconds from now."""
        return asyncio.get_running_loop().time() + wait

    async def wait(
        self,
        queue: Queue,
        deadline: float,
        cap: float | None = None,
        client: Client | None = None,
    ) -> bool:
        """Wait until something may have changed for ``queue``: a write through this process
        or another, a delayed message falling due or a lease ending (or ``cap`` seconds).
        False when ``deadline`` (event-loop time) has passed or the ``client`` has gone (the
        wait ends as soon as it goes)."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0 or (client is not None and client.gone):
            return False
        if cap is not None:
            remaining = min(remaining, cap)
        now_ms = self._clock.time_ns() // 1_000_000
        next_ms = await self._storage.next_change_ms(queue, now_ms)
        if next_ms is not None:
            remaining = min(remaining, (next_ms - now_ms) / 1000 + 0.001)
        changed = self._notifier.wait((queue.app, queue.name), remaining)
        self.waiting += 1
        try:
            if client is None:
                await changed
                return True
            waits = [asyncio.ensure_future(changed), asyncio.ensure_future(client.departed())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
            return not client.gone
        finally:
            self.waiting -= 1
