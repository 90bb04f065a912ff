"""The Notifier: per-queue subscriptions woken by this process's writes and by the store's
changes, polled at the interval it is given."""

from __future__ import annotations

import asyncio
import time

from queuey.notify import Notifier
from queuey.storage.memory import MemoryStorage

Q = ("app", "q")


class SharedStore(MemoryStorage):
    """The reference back-end, shared with other processes whose commits it reports: a
    change log of queue keys (None: a change it cannot tell the queue of)."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str] | None] = []
        self.polls = 0

    async def changes(self, since: int | None) -> tuple[int, set[tuple[str, str]] | None]:
        self.polls += 1
        position = len(self.log)
        if since is None:
            return position, None
        news = self.log[since:]
        if None in news:
            return position, None
        return position, {key for key in news if key is not None}


async def test_a_change_wakes_the_subscriptions_of_its_queue_only() -> None:
    notifier = Notifier(MemoryStorage(), poll_interval=0.05)
    with notifier.subscribe(Q) as mine, notifier.subscribe(("app", "other")) as other:
        waiting = asyncio.create_task(mine.wait(5))
        elsewhere = asyncio.create_task(other.wait(0.3))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        notifier.changed(Q)
        await waiting
        assert time.monotonic() - started < 0.1
        assert not elsewhere.done()
        await elsewhere  # times out: its queue did not change


async def test_a_change_between_two_waits_is_not_missed() -> None:
    notifier = Notifier(MemoryStorage(), poll_interval=0.05)
    with notifier.subscribe(Q) as subscription:
        notifier.changed(Q)  # while nobody waits
        started = time.monotonic()
        await subscription.wait(5)
        assert time.monotonic() - started < 0.1
        started = time.monotonic()
        await subscription.wait(0.2)  # the change was used up: this one times out
        assert time.monotonic() - started >= 0.2


async def test_closed_subscriptions_are_forgotten() -> None:
    notifier = Notifier(MemoryStorage(), poll_interval=0.05)
    subscription = notifier.subscribe(Q)
    assert notifier.waiting == 1
    subscription.close()
    assert notifier.waiting == 0
    notifier.changed(Q)  # nobody to wake


async def test_another_process_commit_wakes_subscribers_within_the_poll_interval() -> None:
    store = SharedStore()
    notifier = Notifier(store, poll_interval=0.02)
    with notifier.subscribe(Q) as subscription:
        await subscription.wait(1)  # the first look has nothing to compare with: it wakes
        polls = store.polls
        await asyncio.sleep(0.2)
        assert store.polls - polls >= 5  # every 20 ms, not every 50
        store.log.append(Q)
        started = time.monotonic()
        await subscription.wait(5)
        assert time.monotonic() - started < 0.15
    await asyncio.sleep(0.05)
    polls = store.polls
    await asyncio.sleep(0.1)
    assert store.polls == polls  # nobody subscribed: the store is not polled
    await notifier.stop()


async def test_a_store_not_shared_is_never_polled() -> None:
    store = SharedStore()
    store.shared = False
    notifier = Notifier(store, poll_interval=0.01)
    await notifier.wait(Q, 0.1)
    assert store.polls == 0


async def test_another_process_write_wakes_the_subscriptions_of_its_queue_only() -> None:
    store = SharedStore()
    notifier = Notifier(store, poll_interval=0.01)
    with notifier.subscribe(Q) as mine, notifier.subscribe(("app", "other")) as other:
        await mine.wait(1)  # the first look wakes everyone once
        await other.wait(1)
        waiting = asyncio.create_task(mine.wait(5))
        elsewhere = asyncio.create_task(other.wait(0.3))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        store.log.append(Q)
        await waiting
        assert time.monotonic() - started < 0.1
        assert not elsewhere.done()
        await elsewhere  # times out: its queue did not change
        assert time.monotonic() - started >= 0.2
        store.log.append(None)  # a change the store cannot place wakes everyone
        started = time.monotonic()
        await asyncio.gather(mine.wait(5), other.wait(5))
        assert time.monotonic() - started < 0.1
    await notifier.stop()


async def test_wakes_count_the_subscriptions_woken() -> None:
    store = SharedStore()
    notifier = Notifier(store, poll_interval=0.01)
    with notifier.subscribe(Q), notifier.subscribe(Q), notifier.subscribe(("app", "other")):
        await asyncio.sleep(0.05)
        assert notifier.wakes == 3  # the first look cannot tell: everyone once
        notifier.changed(Q)
        assert notifier.wakes == 5
        store.log.append(("app", "other"))  # another process's commit
        await asyncio.sleep(0.05)
        assert notifier.wakes == 6
    await notifier.stop()
