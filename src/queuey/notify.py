"""Long polling: requests that wait for a queue to get a message.

A waiter sleeps on a future of its queue. Writes made through this process wake the queue's
waiters at once (:meth:`Notifier.wake`). Writes made by other processes sharing the store are
noticed by one poller task per process, which runs only while someone waits: every
``poll_interval`` seconds it asks the store for its data version, one cheap query whatever the
number of waiters, and wakes every waiter when it changed. Waiters also wake by themselves at a
time the caller gives (when a delayed message falls due or a lease ends). A woken waiter looks
again; nothing is handed over, so a wake-up that finds nothing just waits on. While the store
cannot answer, the poller wakes everyone at every tick, so their own queries report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from queuey.core.errors import StorageUnavailable
from queuey.storage.base import Storage

log = logging.getLogger("queuey")

Key = tuple[str, str]  # (application, queue name)


class Notifier:
    def __init__(self, storage: Storage, poll_interval: float = 0.05) -> None:
        self._storage = storage
        self._poll_interval = poll_interval
        self._waiters: dict[Key, set[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._version: int | None = None

    @property
    def waiting(self) -> int:
        """How many requests wait now."""
        return sum(len(futures) for futures in self._waiters.values())

    def wake(self, key: Key) -> None:
        """Wake the requests waiting on one queue (after a write to it)."""
        futures = self._waiters.pop(key, None)
        if futures:
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def _wake_all(self) -> None:
        for key in list(self._waiters):
            self.wake(key)

    async def wait(self, key: Key, timeout: float) -> None:
        """Return when ``key`` is woken, the store changed, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(future)
        if self._storage.shared and self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            futures = self._waiters.get(key)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiters[key]

    async def _poll(self) -> None:
        """Wake every waiter when another process changed the store; ends when none waits.

        The first check has nothing to compare with, and a write may have committed between
        a waiter's last look and that check: so it wakes everyone, who look again once."""
        try:
            while self._waiters:
                try:
                    version = await self._storage.data_version()
                except StorageUnavailable as error:
                    log.warning("long polling cannot check the store: %s", error)
                    version = None
                if version is None or version != self._version:
                    self._wake_all()
                self._version = version
                await asyncio.sleep(self._poll_interval)
        finally:
            self._poller = None
            self._version = None

    async def stop(self) -> None:
        self._wake_all()
        poller = self._poller
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
