"""Queue metadata: the ``queues`` rows (created and changed by lightweight transactions) and
the sharded ``queue_names`` listing."""

from __future__ import annotations

import asyncio
import heapq
import secrets
import time
import zlib
from dataclasses import replace
from typing import Any

from queuey.core.errors import InvalidUpdate, QueueExists, QueueNotFound, StorageUnavailable
from queuey.core.models import Queue, QueueSettings
from queuey.storage.cassandra.changes import ChangeLog
from queuey.storage.cassandra.rows import Named, Row
from queuey.storage.cassandra.schema import DEAD_SHARDS, NAME_SHARDS, QUEUE_COLUMNS
from queuey.storage.cassandra.session import Session, is_cas_timeout, too_few_replicas

_GET_COLUMNS = tuple(QUEUE_COLUMNS.split(", "))  # q_get's, by name
_TRIES = 16  # conditional updates and deletes of a queue that keeps changing
QUEUE_CACHE_S = 1.0  # how long this process answers a queue's metadata from its copy
STALE_S = 300  # age after which a senders' row that no longer holds is deleted
_CACHED = 100_000  # queue rows this process keeps copies of


def name_shard(name: str) -> int:
    return zlib.crc32(name.encode()) % NAME_SHARDS


class Queues:
    """Queue rows, with this process's copies of the ones it read lately.

    A copy answers for QUEUE_CACHE_S after its row was read, so a queue that another server
    deleted, re-created or changed is noticed here within that time (this process's own
    changes at once). Only found queues are copied: a queue another server creates is seen at
    once."""

    def __init__(self, session: Session, changes: ChangeLog) -> None:
        self._session = session
        self._changes = changes
        self._copies: dict[tuple[str, str], tuple[Queue, float]] = {}  # -> (queue, read at)

    def _copy(self, app: str, name: str) -> Queue | None:
        """This process's copy of the queue, while it is fresh."""
        copy = self._copies.get((app, name))
        if copy is None:
            return None
        if self._session.loop.time() - copy[1] >= QUEUE_CACHE_S:
            del self._copies[app, name]
            return None
        return copy[0]

    def _remember(self, app: str, name: str, queue: Queue | None) -> None:
        if queue is None:
            self._copies.pop((app, name), None)
            return
        if len(self._copies) > _CACHED:
            self._copies.clear()
        self._copies[app, name] = (queue, self._session.loop.time())

    def _rewrite(self, app: str, name: str, queue: Queue) -> None:
        """This process changed the queue: its copy becomes ``queue``, as old as the row it
        came from, so what another server changed in that row and this process did not write
        (the end marker) still shows within QUEUE_CACHE_S."""
        copy = self._copies.get((app, name))
        if copy is None:
            self._remember(app, name, queue)
        else:
            self._copies[app, name] = (queue, copy[1])

    async def create(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        session, level = self._session, self._session.meta_level
        qid = secrets.randbits(63) or 1
        params = (app, name, qid, now, *_settings_row(settings))
        # The listing row goes with the transaction, not after it: a name of this app is then
        # listed whenever its queue exists (at worst a failed creation leaves a listed name
        # without a queue, which list_queues leaves out).
        listed = session.execute("n_insert", (app, name_shard(name), name), level)
        try:
            answer, *_ = await asyncio.gather(
                session.named("q_create", params, level), listed, self._sends(app, name, settings)
            )
            # A transaction that did not apply answers with the row that won.
            winner = _won(answer, qid)
        except StorageUnavailable as error:
            if not is_cas_timeout(error):
                raise
            # The outcome is unknown: a serial read says whether this creation won.
            found = await session.execute("q_get", (app, name), session.serial_level)
            if not found:
                raise
            winner = None if found[0][0] == qid else found[0]
        if winner is not None:
            raise QueueExists(_queue_of(app, name, winner))
        queue = Queue(app=app, name=name, qid=qid, created=now, settings=settings)
        self._remember(app, name, queue)
        return queue

    async def get(self, app: str, name: str) -> Queue | None:
        """The queue, from this process's copy while it is fresh, else from its row."""
        copy = self._copy(app, name)
        if copy is not None:
            return copy
        queue = await self.read(app, name)
        self._remember(app, name, queue)
        return queue

    async def read(self, app: str, name: str) -> Queue | None:
        """The queue as its row is now."""
        session = self._session
        try:
            rows = await session.execute("q_get", (app, name), session.meta_level)
        except StorageUnavailable as error:
            if not too_few_replicas(error):
                raise  # a timeout: the request has had its time
            # No quorum alive: a weak queue may still be served by one replica.
            rows = await session.execute("q_get", (app, name), "ONE")
            if not rows or rows[0][4] != "weak":
                raise
        return _queue_of(app, name, rows[0]) if rows else None

    async def update(self, app: str, name: str, settings: QueueSettings) -> Queue:
        for _ in range(_TRIES):
            current = await self.get(app, name)
            if current is None:
                raise QueueNotFound()
            if settings.partitions < current.partitions:
                raise InvalidUpdate()
            params = (*_settings_row(settings), app, name, current.qid, settings.partitions)
            rows, _ = await asyncio.gather(
                self._session.execute("q_update", params, self._session.meta_level),
                self._sends(app, name, settings),
            )
            if rows and rows[0][0]:
                queue = replace(current, settings=settings)
                self._rewrite(app, name, queue)
                await self._changes.record(app, name, self._session.meta_level)
                return queue
            self._remember(app, name, None)  # changed meanwhile: read it again
        raise StorageUnavailable("Back-end storage unavailable: the queue keeps changing.")

    async def end_consumers(self, app: str, name: str) -> Queue:
        """Move the queue's end marker by a transaction on its qid and on the marker it had,
        retried with what a transaction that did not apply answers (the row's qid and marker).
        A row without a marker (never ended; made before the column) holds null; it reads
        as 0."""
        session, level = self._session, self._session.meta_level
        current = await self.get(app, name)
        if current is None:
            raise QueueNotFound()
        qid = current.qid
        marker: int | None = current.end_marker or None  # a marker is never 0 but unset
        for _ in range(_TRIES):
            moved = (marker or 0) + 1
            answer = await session.named("q_end", (moved, app, name, qid, marker), level)
            row = answer[0] if answer else {}
            if row.get("[applied]"):
                # No copy is kept: the next look reads the row, the settings with the marker.
                self._remember(app, name, None)
                await self._changes.record(app, name, level)
                if qid != current.qid:  # the name is another incarnation's now
                    found = await self.read(app, name)
                    if found is None:
                        raise QueueNotFound()
                    return found
                return replace(current, end_marker=moved)
            if row.get("qid") is None:
                self._remember(app, name, None)
                raise QueueNotFound()
            qid, marker = row["qid"], row.get("end_marker")
        raise StorageUnavailable("Back-end storage unavailable: the queue keeps changing.")

    async def delete(self, app: str, name: str) -> bool:
        session, level = self._session, self._session.meta_level
        for _ in range(_TRIES):
            current = await self.get(app, name)
            if current is None:
                return False
            rows = await session.execute("q_delete", (app, name, current.qid), level)
            self._remember(app, name, None)
            if rows and rows[0][0]:
                await asyncio.gather(
                    session.execute("n_delete", (app, name_shard(name), name), level),
                    session.execute("d_insert", (current.qid % DEAD_SHARDS, current.qid), level),
                    self._changes.record(app, name, level),
                )
                return True
        raise StorageUnavailable("Back-end storage unavailable: the queue keeps changing.")

    async def _sends(self, app: str, name: str, settings: QueueSettings) -> None:
        """Record where the queue sends its dead letters, with the transaction that says so:
        whenever a queue's settings name a dead-letter queue, the senders' table lists it
        there (it may also list a queue that no longer sends there: :meth:`senders` checks)."""
        target = settings.dead_letter_queue
        if target is not None:
            await self._session.execute("s_insert", (app, target, name), self._session.meta_level)

    async def senders(self, app: str, name: str) -> list[str]:
        """The queues of ``app`` whose dead-letter queue is ``name``: the senders' rows, each
        checked against its queue's row. A row that no longer holds (the queue was deleted or
        sends elsewhere) is deleted once it is :data:`STALE_S` old, as of its write: a creation
        or update in progress writes it again, newer, before its transaction."""
        session, level = self._session, self._session.meta_level
        rows = await session.execute("s_list", (app, name), level)
        queues = await asyncio.gather(*(self.read(app, sender) for sender, _ in rows))
        found, stale = [], []
        old = int((time.time() - STALE_S) * 1_000_000)  # writetimes are in microseconds
        for (sender, written), queue in zip(rows, queues, strict=True):
            if queue is not None and queue.settings.dead_letter_queue == name:
                found.append(sender)
            elif written is not None and written < old:
                stale.append(session.execute("s_delete", (written, app, name, sender), level))
        await asyncio.gather(*stale)
        return sorted(found)

    async def page(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        names = await self.page_names(app, offset, limit)
        queues = await asyncio.gather(*(self.get(app, name) for name in names))
        return [queue for queue in queues if queue is not None]

    async def page_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        """A page of names is one slice per shard, merged in order: the same cost at any
        offset, the price of an order that hash-spread shards do not keep by themselves."""
        start = offset or ""
        slices = await asyncio.gather(
            *(
                self._session.execute(
                    "n_list", (app, shard, start, limit), self._session.meta_level
                )
                for shard in range(NAME_SHARDS)
            )
        )
        merged = heapq.merge(*([row[0] for row in rows] for rows in slices))
        return [name for name, _ in zip(merged, range(limit), strict=False)]

    async def scan(self, after: str | None, limit: int) -> list[tuple[str, Queue]]:
        """Every application's queues in token order, after the token ``after``."""
        session = self._session
        if after is None:
            rows = await session.execute("q_scan_first", (limit,), session.meta_level)
        else:
            try:
                token = int(after)
            except ValueError:
                raise ValueError(f"{after!r} is not a queue position") from None
            rows = await session.execute("q_scan", (token, limit), session.meta_level)
        return [(str(row[0]), _queue_of(row[1], row[2], row[3:])) for row in rows]

    def known_alive(self, queue: Queue) -> bool | None:
        """Whether ``queue`` (this incarnation) still exists, as this process's fresh copy
        says; None without a fresh copy."""
        copy = self._copy(queue.app, queue.name)
        return None if copy is None else copy.qid == queue.qid

    async def alive(self, queue: Queue, level: str) -> bool:
        """Whether ``queue`` (this incarnation: its qid) still exists."""
        return await self.current(queue, level) is not None

    async def current(self, queue: Queue, level: str) -> Queue | None:
        """``queue`` with its current settings, or None if this incarnation is gone (from
        this process's copy while it is fresh)."""
        copy = self._copy(queue.app, queue.name)
        if copy is not None:
            return copy if copy.qid == queue.qid else None
        rows = await self._session.execute("q_get", (queue.app, queue.name), level)
        found = _queue_of(queue.app, queue.name, rows[0]) if rows else None
        self._remember(queue.app, queue.name, found)
        return found if found is not None and found.qid == queue.qid else None


def _settings_row(settings: QueueSettings) -> tuple[Any, ...]:
    return (
        settings.partitions, settings.type, settings.consistency, list(settings.principles),
        settings.delivery, settings.claim_ttl, settings.max_deliveries,
        settings.dead_letter_queue, settings.delay, settings.dedup_window, settings.policy,
        settings.paused,
    )  # fmt: skip


def _won(answer: list[Named], qid: int) -> Row | None:
    """The row (of ``q_get``'s columns) that won over the creation of ``qid``, from the answer
    of its conditional insert; None if the creation applied."""
    if not answer or answer[0]["[applied]"]:
        return None
    row = answer[0]
    return tuple(row.get(column) for column in _GET_COLUMNS)


def _queue_of(app: str, name: str, row: Row) -> Queue:
    qid, created, partitions, type_, consistency, principles, *rest = row
    delivery, claim_ttl, max_deliveries, dlq, delay, dedup_window, policy, paused, ended = rest
    default = QueueSettings()
    settings = QueueSettings(
        partitions=partitions,
        type=type_,
        consistency=consistency,
        principles=tuple(principles or ()),
        delivery=delivery or default.delivery,
        claim_ttl=default.claim_ttl if claim_ttl is None else claim_ttl,
        max_deliveries=max_deliveries or 0,
        dead_letter_queue=dlq,
        delay=delay or 0,
        dedup_window=default.dedup_window if dedup_window is None else dedup_window,
        policy=policy or default.policy,
        paused=bool(paused),
    )
    return Queue(
        app=app, name=name, qid=qid, created=created, settings=settings, end_marker=ended or 0
    )
