"""Change notification: "this queue changed", between requests and between processes.

Every write made through this process reports the queue it changed (:meth:`Notifier.changed`).
Whoever waits for a queue holds a :class:`Subscription` of it, which such a report wakes at
once. Writes made by other processes sharing the store are noticed by one poller task per
process, which runs only while someone is subscribed: every ``poll_interval`` seconds it asks the
store which queues changed since its last look (:meth:`Storage.changes`, one cheap query whatever
the number of subscribers) and wakes the subscriptions of those queues only. A wake-up carries
no data: the woken look again, and one that finds nothing just waits on. When the store cannot
tell which queues changed, the poller wakes everyone; while it cannot answer at all, at every
tick, so their own queries report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from queuey.core.errors import StorageUnavailable
from queuey.storage.base import Storage

log = logging.getLogger("queuey")

Key = tuple[str, str]  # (application, queue name)

# Seconds between two looks at a shared store's changes while someone waits: how soon a
# waiting request hears of a write made by another process.
POLL_INTERVAL = 0.05


class Subscription:
    """Interest in one queue's changes, from :meth:`Notifier.subscribe` until :meth:`close`.

    A change reported while nobody waits is remembered, so :meth:`wait` returns at once for a
    change that came between two waits (a stream reading, then waiting again, misses none)."""

    __slots__ = ("_changed", "_future", "_notifier", "key")

    def __init__(self, notifier: Notifier, key: Key) -> None:
        self.key = key
        self._notifier = notifier
        self._changed = False
        self._future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)  # the wait in progress returns
        else:
            self._changed = True  # the next wait returns at once

    async def wait(self, timeout: float) -> None:
        """Return when the queue (or the store) changed since the last wait, or after
        ``timeout`` seconds."""
        if self._changed:
            self._changed = False
            return
        if timeout <= 0:
            return
        self._future = asyncio.get_running_loop().create_future()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._future, timeout)
        finally:
            self._future = None

    def close(self) -> None:
        self._notifier._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Notifier:
    def __init__(self, storage: Storage, poll_interval: float) -> None:
        """``poll_interval``: seconds between two looks at the store's changes while
        someone is subscribed (only when the store is shared between processes)."""
        self._storage = storage
        self._poll_interval = poll_interval
        self._subscriptions: dict[Key, set[Subscription]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._position: int | None = None  # in the store's changes, after the last look
        self.wakes = 0  # subscriptions woken so far (by a change of their queue, or of all)

    @property
    def waiting(self) -> int:
        """How many subscriptions are open now."""
        return sum(len(subscriptions) for subscriptions in self._subscriptions.values())

    def changed(self, key: Key) -> None:
        """Report a write to one queue: wakes its subscriptions."""
        subscriptions = self._subscriptions.get(key, ())
        self.wakes += len(subscriptions)
        for subscription in subscriptions:
            subscription.wake()

    def subscribe(self, key: Key) -> Subscription:
        subscription = Subscription(self, key)
        self._subscriptions.setdefault(key, set()).add(subscription)
        if self._storage.shared and self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        return subscription

    async def wait(self, key: Key, timeout: float) -> None:
        """Return when ``key`` changed, the store changed, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        with self.subscribe(key) as subscription:
            await subscription.wait(timeout)

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._subscriptions.get(subscription.key)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._subscriptions[subscription.key]

    def _wake_all(self) -> None:
        for subscriptions in list(self._subscriptions.values()):
            self.wakes += len(subscriptions)
            for subscription in subscriptions:
                subscription.wake()

    async def _poll(self) -> None:
        """Wake the subscriptions of the queues that writes committed to, through this
        process or another; ends when nobody is subscribed.

        The first look has no position to start from, and a write may have committed between
        a waiter's last look and that check: so it wakes everyone, who look again once."""
        try:
            while self._subscriptions:
                try:
                    self._position, keys = await self._storage.changes(self._position)
                except StorageUnavailable as error:
                    log.warning("long polling cannot check the store: %s", error)
                    self._position, keys = None, None
                if keys is None:
                    self._wake_all()
                else:
                    for key in keys:
                        self.changed(key)
                await asyncio.sleep(self._poll_interval)
        finally:
            self._poller = None
            self._position = None

    async def stop(self) -> None:
        self._wake_all()
        poller = self._poller
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
