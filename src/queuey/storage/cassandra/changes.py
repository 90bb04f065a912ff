"""The change log: which queues writes changed lately, so that every server on the cluster
wakes only the waiters of those queues (:meth:`CassandraStorage.changes`).

A write that may let a waiting read or claim find something (new or overwritten messages,
released claims, updated or deleted queues: what SQLite's change log records) upserts one row
``(bucket, app, name) -> at`` where ``bucket`` is the writer's wall-clock second and ``at`` a
value never written before; rows live a minute (``schema.CHANGE_TTL_S``). The row of a
write of messages is written once the write committed (a reader that sees it must find the
messages), without holding the write's answer: a post stays one request, and the posts that
commit while their queue's row is being written share the next one (:meth:`ChangeLog.written`).
Queue updates and deletions and releases of claims write theirs before they answer. Many
writes to one queue in one second are one row whose ``at`` keeps changing.

Each server's one poller reads the rows of the buckets from :data:`BEHIND` seconds before its
own clock to :data:`AHEAD` after (one query, whatever the number of waiters or queues) and
names the queues whose rows are new or hold another ``at`` than at its last look. Reading the
window again is what tolerates clocks that disagree and rows committed late: a row counts when
it is first seen, whatever second it names, as long as that second is still in the window.

A change row is written again :data:`FOLLOW_UP_S` later when it failed, or when its write
failed (a timeout may still have applied it). A row lost all the same (the writer's process
died between its write and the row, or the store stayed down) delays the news to the other
servers' waiters of that queue: streams look at their queue every second anyway, a long poll
answers at the end of its wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from queuey.core.errors import StorageUnavailable
from queuey.storage.cassandra.rows import Uniques
from queuey.storage.cassandra.session import Session

Key = tuple[str, str]  # (application, queue name)
Seen = dict[tuple[int, str, str], object]  # (bucket, app, name) -> at

BUCKET_S = 1  # seconds of wall clock per partition of the log
BEHIND = 3  # buckets before the reader's current one that it reads again
AHEAD = 1  # buckets after it (writers whose clocks run ahead)
ROWS = 10_000  # rows read at most: a busier window cannot tell which queues changed
FOLLOW_UP_S = 1.0  # after a failed write, when its change row is written again
_KEPT_LOOKS = 8  # positions a reader can start from (several callers of one store)


def bucket_now() -> int:
    return int(time.time()) // BUCKET_S


class ChangeLog:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._looks: OrderedDict[int, Seen] = OrderedDict()  # position -> rows then seen
        self._position = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._unique = Uniques()  # the rows' ``at`` values
        # Queues whose row is being written -> whether writes committed since it started.
        self._recording: dict[Key, bool] = {}

    async def record(self, app: str, name: str, level: str) -> None:
        """Record a change of queue ``(app, name)`` now."""
        params = (bucket_now(), app, name, self._unique())
        await self._session.execute("ch_insert", params, level)

    def written(self, app: str, name: str, level: str) -> None:
        """A write to ``(app, name)`` committed: record its change after it, without holding
        its answer. The writes that commit while the queue's row is being written share the
        next one, started when that one is done: so a row is always written after every
        write it stands for, and a queue posted to by many clients at once costs a row per
        round trip, not per post."""
        key = (app, name)
        if key in self._recording:
            self._recording[key] = True
            return
        self._recording[key] = False
        self._start(self._record_each(key, level))

    async def _record_each(self, key: Key, level: str) -> None:
        try:
            while True:
                try:
                    await self.record(*key, level)
                except StorageUnavailable:
                    self.failed(*key, level)
                if not self._recording[key]:
                    return
                self._recording[key] = False
        finally:
            del self._recording[key]

    def failed(self, app: str, name: str, level: str) -> None:
        """A write to ``(app, name)`` failed, and may have been applied all the same: record
        its change again a little later, when it has landed if it ever does."""
        self._start(self._follow_up(app, name, level))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the rows being written now."""
        while self._recording:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow_up(self, app: str, name: str, level: str) -> None:
        await asyncio.sleep(FOLLOW_UP_S)
        with contextlib.suppress(StorageUnavailable):  # the store is down: readers wake all
            await self.record(app, name, level)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def changes(self, since: int | None) -> tuple[int, set[Key] | None]:
        now = bucket_now()
        buckets = list(range(now - BEHIND, now + AHEAD + 1))
        rows = await self._session.execute("ch_read", (buckets, ROWS), "ONE")
        seen: Seen = {(bucket, app, name): at for bucket, app, name, at in rows}
        before = None if since is None else self._looks.get(since)
        keys: set[Key] | None = None  # None: cannot tell
        if before is not None and len(rows) < ROWS:  # all rows read: compare them
            keys = {key[1:] for key, at in seen.items() if before.get(key) != at}
        if since is not None and keys is not None and not keys:
            self._looks[since] = seen  # nothing new: the same position, today's window
            return since, set()
        self._position += 1
        self._looks[self._position] = seen
        while len(self._looks) > _KEPT_LOOKS:
            self._looks.popitem(last=False)
        return self._position, keys
