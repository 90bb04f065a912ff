"""The sweeper: a background task reclaiming dead messages while the service runs."""

from __future__ import annotations

import asyncio
import logging
import time

from queuey.core.clock import Clock
from queuey.core.errors import StorageUnavailable
from queuey.core.observer import Observer, Unobserved
from queuey.storage.base import Storage

log = logging.getLogger("queuey")


class Sweeper:
    def __init__(self, storage: Storage, clock: Clock, observer: Observer | None = None) -> None:
        self._storage = storage
        self._clock = clock
        self._observer: Observer = observer or Unobserved()
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float, batch: int) -> None:
        """Sweep every ``interval`` seconds, in batches of ``batch``, until :meth:`stop`."""
        self._task = asyncio.create_task(self._sweep_forever(interval, batch))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def sweep_once(self, batch: int) -> int:
        """Reclaim dead messages in batches of ``batch`` until none is left; returns the count.
        Yields to other tasks between batches, so requests are never held up for long."""
        total = 0
        start = time.perf_counter()
        try:
            while True:
                removed = await self._storage.sweep(self._clock.time_ns() // 1_000_000, batch)
                total += removed
                if removed < batch:
                    self._observer.sweep(time.perf_counter() - start, total, False)
                    return total
                await asyncio.sleep(0)
        except StorageUnavailable:
            self._observer.sweep(time.perf_counter() - start, total, True)
            raise

    async def _sweep_forever(self, interval: float, batch: int) -> None:
        while True:
            try:
                removed = await self.sweep_once(batch)
                if removed:
                    log.debug("sweep reclaimed %d messages", removed)
            except StorageUnavailable as error:
                log.warning("sweep failed, will retry: %s", error)
            await asyncio.sleep(interval)
