"""The storage contract: what every back-end (memory, sqlite, cassandra) must do.

The service owns policy (validation, rights, ids, TTLs); a back-end stores and finds. Callers
pass the current time (``now``/``now_ms``), so no back-end reads the wall clock. Every method
may raise :class:`queuey.core.errors.StorageUnavailable` when the store cannot answer; a
back-end turns its driver's failures into that and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from queuey.core.models import Cursor, Message, Queue, QueueSettings


class Storage(Protocol):
    """One application's queues and their messages, for every application.

    Attributes:
        name: the back-end's name (``memory``, ``sqlite``, ``cassandra``).
        nodes: how many nodes serve the data; 1 means reads see every acknowledged write at
            once, so the API holds nothing back for a settle window.
        shared: True when several server processes can use the same store at once.
    """

    name: str
    nodes: int
    shared: bool

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
                creations of one name, exactly one succeeds).
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

    async def count_messages(self, queue: Queue, now_ms: int) -> int:
        """How many messages of the queue, over all partitions, expire after ``now_ms``."""
        ...

    # --- messages ---------------------------------------------------------------------------

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False
    ) -> None:
        """Store the messages; durable (per the back-end's durability setting) on return.

        Every partition is within 1..``queue.partitions`` (the service checks). With
        ``replace=False`` a message already stored with the same (partition, id) is left as it
        is; with ``replace=True`` it gets the new body, content type and expiry (id and ticks
        stay). All messages of one call are written or none is.

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
        min(limit, live messages past the cursor). A partition outside 1..``queue.partitions``
        (of the object passed in) reads nothing. Callers pass distinct partitions. Reading a
        deleted queue returns nothing; it does not raise."""
        ...

    async def get_messages(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[Message]:
        """The live messages among (partition, id) pairs, in the order asked; missing ones are
        left out. Callers pass distinct pairs."""
        ...

    async def delete_messages(self, queue: Queue, ids: Sequence[tuple[int, str]]) -> None:
        """Delete the (partition, id) pairs that exist; durable on return."""
        ...

    async def sweep(self, now_ms: int, limit: int) -> int:
        """Reclaim the space of at most ``limit`` dead messages (expired, or of deleted
        queues) and return how many. A result below ``limit`` means nothing dead is left at
        ``now_ms``, so callers loop while it equals ``limit``. Must not hold up other
        operations for long."""
        ...
