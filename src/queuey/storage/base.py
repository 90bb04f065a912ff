"""The storage contract: what every back-end (memory, sqlite, cassandra) must do.

The service owns policy (validation, rights, ids, TTLs); a back-end stores and finds. Callers
pass the current time (``now``/``now_ms``), so no back-end reads the wall clock. Every method
may raise :class:`queuey.core.errors.StorageUnavailable` when the store cannot answer; a
back-end turns its driver's failures into that and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from queuey.core.models import Claim, ClaimRef, Cursor, Message, Queue, QueueSettings, QueueStats
from queuey.core.quotas import Usage


class Storage(Protocol):
    """One application's queues and their messages, for every application.

    Attributes:
        name: the back-end's name (``memory``, ``sqlite``, ``cassandra``).
        nodes: how many nodes serve the data; 1 means reads see every acknowledged write at
            once, so the API holds nothing back for a settle window.
        shared: True when several server processes can use the same store at once.
        base_delay: seconds a store of several nodes adds to every settle window (the
            original's Cassandra ``base_delay``), for replicas slower than the window; back-ends
            that subclass this class get 0.
    """

    name: str
    nodes: int
    shared: bool
    base_delay: int = 0

    async def open(self) -> None:
        """Connect and create the schema if needed. Called once before any other method."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release resources. Nothing acknowledged is lost."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise StorageUnavailable when it does not."""
        ...

    # --- queues -----------------------------------------------------------------------------

    async def create_queue(self, app: str, name: str, settings: QueueSettings, now: float) -> Queue:
        """Create a queue with ``created=now`` and a ``qid`` never used before in this store.

        Raises:
            QueueExists: ``app`` already has a queue called ``name`` (atomic: of two concurrent
                creations of one name, exactly one succeeds); its ``existing`` is that queue as
                the failed creation found it, the one that won (callers compare settings with
                it: they cannot read it afterwards, when it may have changed or gone).
        """
        ...

    async def get_queue(self, app: str, name: str) -> Queue | None:
        """The queue, or None if ``app`` has no queue called ``name``."""
        ...

    async def update_queue(self, app: str, name: str, settings: QueueSettings) -> Queue:
        """Replace the queue's settings; ``qid`` and ``created`` stay.

        Raises:
            QueueNotFound: no such queue.
            InvalidUpdate: ``settings.partitions`` is lower than the stored partitions (checked
                atomically with the write).
        """
        ...

    async def end_consumers(self, app: str, name: str) -> Queue:
        """Move the queue's ``end_marker`` above every value it had (atomically: of concurrent
        calls, each moves it) and return the queue with it; its settings, ``qid`` and
        ``created`` stay, and :meth:`update_queue` keeps the marker. A change like any other
        (:meth:`changes` names the queue): the streams bound to it as consumers, in every
        process sharing the store, end when they see the marker move.

        Raises:
            QueueNotFound: no such queue.
        """
        ...

    async def delete_queue(self, app: str, name: str) -> bool:
        """Delete the queue; its messages are never returned again (their space may be
        reclaimed later by :meth:`sweep`). Returns False if there was no such queue."""
        ...

    async def list_queues(self, app: str, offset: str | None, limit: int) -> list[Queue]:
        """Up to ``limit`` of ``app``'s queues whose name is ``>= offset``, sorted by name.

        Costs the same at any offset, with any number of queues."""
        ...

    async def list_queue_names(self, app: str, offset: str | None, limit: int) -> list[str]:
        """The names :meth:`list_queues` would return, without loading the queues."""
        ...

    async def dead_letter_senders(self, app: str, name: str) -> list[str]:
        """The names of ``app``'s queues whose ``dead_letter_queue`` is ``name``, sorted.

        Costs what the answer does (an index), whatever the number of the application's
        queues."""
        ...

    async def scan_queues(self, after: str | None, limit: int) -> list[tuple[str, Queue]]:
        """Up to ``limit`` queues of every application, each with its position, in an order
        of the back-end's own that does not change while the store holds the queues, from
        just after position ``after`` (None: from the start). Calling again with the last
        position returned visits every queue that exists throughout the scan exactly once.
        Positions are plain text, to be kept (a checkpoint) and given back later."""
        ...

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        """How many messages of the queue, over all partitions, expire after ``now_ms``."""
        ...

    async def usage(self, app: str, now_ms: int) -> Usage:
        """What ``app`` stores over all its queues: the messages that expire after ``now_ms``
        (delayed and claimed ones included) and the bytes of their bodies in UTF-8. Reads
        every such message's row (not necessarily its body), so callers call it seldom; it
        must not hold up other operations meanwhile."""
        ...

    # --- messages ---------------------------------------------------------------------------

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False, fresh: bool = False
    ) -> None:
        """Store the messages; durable (per the back-end's durability setting) on return.

        Every partition is within 1..``queue.partitions`` (the service checks). With
        ``replace=False`` a message already stored with the same (partition, id) is left as it
        is; with ``replace=True`` it gets the new body, content type and expiry (id and ticks
        stay). All messages of one call are written or none is. ``fresh=True`` promises that the
        ids were just made for this write (a post), so none can be stored already: a back-end
        may skip looking for them.

        Raises:
            QueueNotFound: the queue (this ``qid``) was deleted; nothing is written.
        """
        ...

    async def read_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        """Up to ``limit`` messages from each partition, grouped by partition in the order
        given, each group ordered by (ticks, id), ascending or descending, starting at
        ``cursor`` (see :class:`Cursor`). Messages with ``expires_ms <= now_ms`` are never
        returned and do not count against ``limit``: a partition yields
        min(limit, live messages past the cursor). A delayed message (``due_ms > now_ms``) is
        not live yet. A partition outside 1..``queue.partitions``
        (of the object passed in) reads nothing. Callers pass distinct partitions. Reading a
        deleted queue returns nothing; it does not raise."""
        ...

    async def scan_messages(
        self,
        queue: Queue,
        partition: int,
        after: tuple[int, str] | None,
        limit: int,
        now_ms: int,
    ) -> list[Message]:
        """Up to ``limit`` of the partition's unexpired messages (``expires_ms > now_ms``),
        delayed and claimed ones included, ordered by (ticks, id), after the position
        ``after`` (ticks, id) or from the start: a copy of the queue pages through them with
        the last message's (ticks, id). Each has its ``due_ms`` and ``deliveries``. A deleted
        queue, or a partition outside 1..``queue.partitions``, yields nothing."""
        ...

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        """The live (unexpired and due) messages among (partition, id) pairs, in the order
        asked; missing ones are left out. Callers pass distinct pairs."""
        ...

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        """Delete the (partition, id) pairs that exist; durable on return."""
        ...

    async def purge_messages(self, queue: Queue, now_ms: int) -> int:
        """Delete every message of the queue (available, claimed, delayed and expired) with
        its claims; the queue, its settings and dedup ids stay. Durable on return; a claim of a
        purged message is never current again. Returns how many unexpired messages were
        deleted (back-ends of several nodes may count approximately)."""
        ...

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        """:meth:`write_messages` (``replace=False``) with deduplication, atomically.

        ``dedup_ids[i]`` belongs to ``messages[i]``. A message whose dedup id was written to
        this queue less than ``window_ms`` ago (or earlier in this call) is not stored; its
        slot in the result holds the message first stored with that id (only its id, ticks
        and partition are meaningful, as it may be gone since). Stored messages get None,
        and their dedup ids are remembered until ``now_ms + window_ms``. All or nothing.

        Raises:
            QueueNotFound: the queue (this ``qid``) was deleted; nothing is written.
        """
        ...

    # --- claims (leases) ------------------------------------------------------------------
    #
    # A message is *available* when it is live (unexpired and due) and has no current claim
    # (none, or one whose lease ended at or before now). A message is *exhausted* when the
    # queue's ``max_deliveries`` is above 0, its ``deliveries`` reached it, and it is
    # available: it goes to the queue's dead-letter queue (same id, ticks, body, content type,
    # expiry and deliveries; partition kept if the dead-letter queue has it, else 1; nothing if
    # the dead-letter queue holds that id already) or, without one, is dropped; either way the
    # queue's dead-letter count grows by one. This happens exactly once per message: in
    # :meth:`claim_messages` when the claim meets it, and in :meth:`sweep`.

    async def claim_messages(
        self,
        queue: Queue,
        partitions: Sequence[int],
        limit: int,
        now_ms: int,
        lease_ms: int,
        remove: bool,
    ) -> list[Claim]:
        """Claim up to ``limit`` available messages of the partitions, oldest (ticks, id)
        first over all of them, atomically: no message is in two current claims. Each claimed
        message's ``deliveries`` grows by one and its lease ends at ``now_ms + lease_ms``.
        With ``remove`` (at-most-once delivery) the claimed messages are deleted instead.
        Exhausted messages met on the way are dead-lettered, not returned. A deleted queue
        yields nothing."""
        ...

    async def ack_messages(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int
    ) -> list[bool]:
        """Delete each message whose current claim (lease ending after ``now_ms``) has that
        token; per claim, whether it was current. A claim that is not current changes
        nothing."""
        ...

    async def current_claims(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        """The current claim (lease ending after ``now_ms``) of each (partition, id), in the
        order asked; None for a message that is missing, expired, not claimed, whose lease
        ended or that is being dead-lettered. For consumers that hand back only a message's id
        (AweQ's delete-message): an ack with the result still fails if the claim changed."""
        ...

    async def extend_claims(
        self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int, lease_ms: int
    ) -> list[bool]:
        """Make each current claim's lease end at ``now_ms + lease_ms`` (0: released, the
        message is available at once; its deliveries stay). Per claim, whether it was
        current."""
        ...

    async def unclaim_messages(
        self, queue: Queue, claims: Sequence[Claim], now_ms: int, removed: bool
    ) -> list[bool]:
        """Give back claims (made by :meth:`claim_messages` with ``remove=removed``) whose
        answer never reached the consumer, so that each message is available at once as if
        the claim had not been made: its ``deliveries`` goes back down by one (the claim does
        not count towards ``max_deliveries``).

        Without ``removed``, each current claim's lease ends now; one that is not current
        changes nothing. With ``removed`` (the claim deleted the messages), the messages are
        stored again as they were (:meth:`Claim.unclaimed`), where no message of that id has
        been stored since; a later claim finds them at once. Per claim, whether it was given
        back (False for all when the queue was deleted)."""
        ...

    async def queue_stats(self, queue: Queue, now_ms: int) -> QueueStats:
        """Counts of the queue's live messages: due and available (exhausted ones included
        until dead-lettered), due and claimed, not yet due; and the dead-letter count."""
        ...

    async def next_change_ms(self, queue: Queue, now_ms: int) -> int | None:
        """The earliest time after ``now_ms`` at which one of the queue's messages becomes
        due or its lease ends (so a reader or claimer waiting for one knows when to look
        again), or None."""
        ...

    async def changes(self, since: int | None) -> tuple[int, set[tuple[str, str]] | None]:
        """The store's change position now, and the queues ``(app, name)`` that writes
        committed since position ``since`` changed, through any process: new or overwritten
        messages, released claims, updated or deleted queues. None instead of the set when
        the store cannot tell (``since`` None, or too far behind): any queue may have changed.
        Long-polling waiters and streams learn this way of writes made through other server
        processes; a store that is not ``shared`` answers ``(0, set())``."""
        ...

    async def sweep(self, now_ms: int, limit: int) -> int:
        """Do at most ``limit`` units of upkeep and return how many: reclaim dead messages
        (expired, or of deleted queues), dead-letter exhausted messages whose lease ended,
        forget ended leases and dedup ids past their window. A result below ``limit`` means
        nothing of that is left at ``now_ms``, so callers loop while it equals ``limit``.
        Must not hold up other operations for long."""
        ...
