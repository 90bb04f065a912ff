"""The domain's data: applications' queues, messages, and read cursors."""

from __future__ import annotations

from dataclasses import dataclass, field

QUEUE_TYPES = ("user", "public")
CONSISTENCIES = ("weak", "strong", "very_strong")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What a queue's owner chooses; every field has the API's default."""

    partitions: int = 1
    type: str = "user"
    consistency: str = "strong"
    principles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Queue:
    """A stored queue.

    ``qid`` is the storage's identity for this incarnation of the queue: a queue deleted and
    created again under the same name gets a new ``qid``, so nothing of the old one shows.
    """

    app: str
    name: str
    qid: int
    created: float
    settings: QueueSettings = field(default_factory=QueueSettings)

    @property
    def partitions(self) -> int:
        return self.settings.partitions


@dataclass(slots=True)
class Message:
    """A message as stored: ``ticks`` is the time in its id; ``expires_ms`` epoch milliseconds."""

    id: str
    ticks: int
    partition: int
    body: str
    content_type: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a read starts: at (ticks, id), including that position or not.

    Ascending reads return positions after the cursor (``>=`` or ``>``), descending ones
    positions before it (``<=`` or ``<``), comparing (ticks, id) pairs. A cursor made from a
    bare timestamp uses ``id=""`` (ascending) or ``id="~"`` (descending) so that every id at
    that tick is on the included side.
    """

    ticks: int
    id: str
    inclusive: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: an application authenticated by its key, or nobody (``app is None``)."""

    app: str | None
