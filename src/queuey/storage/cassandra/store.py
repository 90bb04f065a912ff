"""CassandraStorage: the storage contract on Apache Cassandra 5 through the ``cassandra-driver``
(native protocol v4), composed of one unit per concern. The data model, its consistency and its
failure handling are described in ``docs/storage-cassandra.md``.

Stats and counts read every message of a queue: each process keeps a queue's counts
(storage/counts.py) for at most :data:`KEPT_MS`, and less when its own writes change the queue or
the clock reaches a counted message's expiry, due time or lease end. Writes through other
processes show within ``KEPT_MS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from functools import partial
from typing import TypeVar

from queuey.core.errors import QueueNotFound
from queuey.core.models import Claim, ClaimRef, Cursor, Message, Queue, QueueSettings, QueueStats
from queuey.core.observer import Observer, Unobserved
from queuey.core.quotas import Usage
from queuey.storage.cassandra.changes import ChangeLog
from queuey.storage.cassandra.claims import Claims
from queuey.storage.cassandra.combiner import Combiner
from queuey.storage.cassandra.deadletters import DeadLetters
from queuey.storage.cassandra.dedup import Dedup
from queuey.storage.cassandra.floors import Floors
from queuey.storage.cassandra.index import ExpiryIndex
from queuey.storage.cassandra.messages import Messages
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.session import Session
from queuey.storage.cassandra.settings import CassandraSettings
from queuey.storage.cassandra.sweep import Sweeper
from queuey.storage.counts import CountCache, Markers, earliest

#: How long (ms, by the clock callers pass) a process may answer a queue's counts without
#: reading its messages again, when nothing else says they changed.
KEPT_MS = 1000

T = TypeVar("T")
QUEUE_PAGE = 100  # queues listed at once when an application's usage is measured


class CassandraStorage:
    name = "cassandra"
    shared = True

    def __init__(
        self,
        settings: CassandraSettings,
        metadata_keyspace: str = "MetadataStore",
        observer: Observer | None = None,
    ):
        """``observer`` (the metrics) hears of dead-lettered messages; expired ones leave
        through Cassandra's own TTLs and the sweep's expiry index, which names no
        application, so they are not counted."""
        observer = observer or Unobserved()
        self.settings = settings
        self.base_delay = settings.base_delay
        self.nodes = 1
        self.session = Session(settings, metadata_keyspace)
        self.changes_log = ChangeLog(self.session)
        self.queues = Queues(self.session, self.changes_log)
        self.combiner = Combiner(self.session)
        self.floors = Floors(self.session)
        index = ExpiryIndex(self.session)
        self.messages = Messages(self.session, self.queues, index, self.floors, self.changes_log)
        self.dedup = Dedup(self.session, self.queues, self.messages)
        self.dead_letters = DeadLetters(
            self.session, self.queues, self.combiner, index, self.floors
        )
        self.claims = Claims(
            self.session, self.queues, self.floors, self.combiner, self.dead_letters, index,
            self.changes_log, observer,
        )  # fmt: skip
        self.sweeper = Sweeper(
            self.session, self.queues, self.combiner, self.dead_letters, observer
        )
        # This process's writes by queue (app, name); the sweep's move every queue's marker.
        self.markers = Markers()
        self.counts = CountCache()

    # --- life cycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        await self.session.open()
        self.nodes = self.session.nodes

    async def close(self) -> None:
        await self.changes_log.close()
        await self.session.close()

    async def ping(self) -> None:
        await self.session.execute("ping", (), "ONE")

    # --- queues --------------------------------------------------------------------------------

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        return await self.queues.create(app, name, settings, now)

    async def get_queue(self, app: str, name: str) -> Queue | None:
        return await self.queues.get(app, name)

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        try:
            return await self.queues.update(app, name, settings)
        finally:
            self.markers.changed((app, name))

    async def end_consumers(self, app: str, name: str) -> Queue:
        return await self.queues.end_consumers(app, name)

    async def delete_queue(self, app: str, name: str) -> bool:
        try:
            return await self.queues.delete(app, name)
        finally:
            self.markers.changed((app, name))

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        return await self.queues.page(app, offset, limit)

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        return await self.queues.page_names(app, offset, limit)

    async def dead_letter_senders(self, app: str, name: str) -> list[str]:
        return await self.queues.senders(app, name)

    async def scan_queues(self, after: str | None, limit: int) -> list[tuple[str, Queue]]:
        return await self.queues.scan(after, limit)

    # --- messages ------------------------------------------------------------------------------

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        stats = await self.queue_stats(queue, now_ms)
        return stats.available + stats.claimed

    async def usage(self, app: str, now_ms: int) -> Usage:
        total, offset = Usage(), None
        while True:
            queues = await self.queues.page(app, offset, QUEUE_PAGE + 1)
            for queue in queues[:QUEUE_PAGE]:
                total += await self.messages.usage(queue, now_ms)
            if len(queues) <= QUEUE_PAGE:
                return total
            offset = queues[-1].name

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False, fresh: bool = False
    ) -> None:
        await self._changing(queue, self.messages.write(queue, messages, replace, fresh))

    async def read_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        return await self.messages.read(queue, partitions, cursor, descending, limit, now_ms)

    async def scan_messages(
        self,
        queue: Queue,
        partition: int,
        after: tuple[int, str] | None,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        return await self.messages.scan(queue, partition, after, limit, now_ms)

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        return await self.messages.get(queue, ids, now_ms)

    async def purge_messages(self, queue: Queue, now_ms: int) -> int:
        return await self._changing(queue, self.messages.purge(queue, now_ms))

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        await self._changing(queue, self.messages.delete(queue, ids))

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        written = self.dedup.write_unique(queue, messages, dedup_ids, now_ms, window_ms)
        return await self._changing(queue, written)

    # --- work queues ---------------------------------------------------------------------------

    async def claim_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        limit: int,
        now_ms: int,
        lease_ms: int,
        remove: bool,
    ) -> list[Claim]:
        unchanged = False
        try:
            claims = await self.claims.claim(queue, partitions, limit, now_ms, lease_ms, remove)
            # Claiming nothing changed nothing, unless exhausted messages were dead-lettered.
            unchanged = not claims and not queue.settings.max_deliveries
            return claims
        finally:
            if not unchanged:
                self._changed(queue)

    async def ack_messages(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> list[bool]:
        return await self._changing(queue, self.claims.ack(queue, claims, now_ms))

    async def current_claims(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        return await self.claims.current(queue, ids, now_ms)

    async def extend_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int, lease_ms: int
    ) -> list[bool]:
        return await self._changing(queue, self.claims.extend(queue, claims, now_ms, lease_ms))

    async def unclaim_messages(
        self, queue: Queue, claims: Sequence[Claim], now_ms: int, removed: bool
    ) -> list[bool]:
        return await self._changing(queue, self._unclaim(queue, claims, now_ms, removed))

    async def _unclaim(
        self, queue: Queue, claims: Sequence[Claim], now_ms: int, removed: bool
    ) -> list[bool]:
        refs = [claim.ref for claim in claims]
        if not removed:
            return await self.claims.extend(queue, refs, now_ms, 0, uncount=True)
        try:
            # As a replacing write: it lowers the claim floors below every message it writes.
            await self.messages.write(queue, [claim.unclaimed() for claim in claims], True, False)
        except QueueNotFound:
            return [False] * len(claims)
        self.claims.untaken(queue.qid, refs)
        return [True] * len(claims)

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        marker = self.markers.of((queue.app, queue.name))
        count = partial(self._count, queue, now_ms)
        return await self.counts.kept(queue.qid, marker, now_ms, count)

    async def _count(self, queue: Queue, now_ms: int) -> tuple[QueueStats, int | None]:
        stats, until_ms = await self.messages.stats(queue, now_ms)
        return stats, earliest([until_ms, now_ms + KEPT_MS])

    async def _changing(self, queue: Queue, write: Awaitable[T]) -> T:
        """``write``'s result; the queue's counts kept are stale once it ended, failed or not
        (a count taken meanwhile is kept under the marker of before)."""
        try:
            return await write
        finally:
            self._changed(queue)

    def _changed(self, queue: Queue) -> None:
        """A write made may have changed the queue's counts, or, for a claim that may
        dead-letter, its dead-letter queue's."""
        self.markers.changed((queue.app, queue.name))
        target = queue.settings.dead_letter_queue
        if target and queue.settings.max_deliveries:
            self.markers.changed((queue.app, target))

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        return await self.messages.next_change_ms(queue, now_ms)

    async def changes(self, since: int | None) -> tuple[int, set[tuple[str, str]] | None]:
        return await self.changes_log.changes(since)

    # --- sweep ---------------------------------------------------------------------------------

    async def sweep(self, now_ms: int, limit: int) -> int:
        try:
            return await self.sweeper.sweep(now_ms, limit)
        finally:
            self.markers.changed_all()
