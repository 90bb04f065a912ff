"""The domain's data: applications' queues, messages, and read cursors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

QUEUE_TYPES = ("user", "public")
CONSISTENCIES = ("weak", "strong", "very_strong")
DELIVERIES = ("at_most_once", "at_least_once", "exactly_once")
POLICIES = ("broadcast", "roundrobin")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What a queue's owner chooses; every field has the API's default."""

    partitions: int = 1
    type: str = "user"
    consistency: str = "strong"
    principles: tuple[str, ...] = ()
    # Work-queue consumption (api.md Part 2)
    delivery: str = "at_least_once"
    claim_ttl: int = 30
    max_deliveries: int = 0
    dead_letter_queue: str | None = None
    delay: int = 0
    dedup_window: int = 300
    policy: str = "broadcast"
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Queue:
    """A stored queue.

    ``qid`` is the storage's identity for this incarnation of the queue: a queue deleted and
    created again under the same name gets a new ``qid``, so nothing of the old one shows.
    ``end_marker`` grows each time the queue's consumers are ended
    (:meth:`queuey.storage.base.Storage.end_consumers`): a stream bound as a consumer ends
    once its server process reads a marker above the one the queue had when it bound. It is
    the store's, not a setting: the API never shows it.
    """

    app: str
    name: str
    qid: int
    created: float
    settings: QueueSettings = field(default_factory=QueueSettings)
    end_marker: int = 0

    @property
    def partitions(self) -> int:
        return self.settings.partitions


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """A message as stored: ``ticks`` is the time in its id; ``expires_ms`` epoch milliseconds.

    ``due_ms`` is when a delayed message becomes visible (0: at once); ``deliveries`` counts
    the claims it has been given (a dead-lettered message keeps its count).
    """

    id: str
    ticks: int
    partition: int
    body: str
    content_type: str
    expires_ms: int
    due_ms: int = 0
    deliveries: int = 0

    def __init__(
        self,
        id: str,
        ticks: int,
        partition: int,
        body: str,
        content_type: str,
        expires_ms: int,
        due_ms: int = 0,
        deliveries: int = 0,
    ) -> None:
        # Requests make messages by the hundred: the slots' own setters take a third of the
        # time of the object.__setattr__ calls a frozen dataclass's generated __init__ makes.
        _set_id(self, id)
        _set_ticks(self, ticks)
        _set_partition(self, partition)
        _set_body(self, body)
        _set_content_type(self, content_type)
        _set_expires_ms(self, expires_ms)
        _set_due_ms(self, due_ms)
        _set_deliveries(self, deliveries)


_set_id = Message.__dict__["id"].__set__
_set_ticks = Message.__dict__["ticks"].__set__
_set_partition = Message.__dict__["partition"].__set__
_set_body = Message.__dict__["body"].__set__
_set_content_type = Message.__dict__["content_type"].__set__
_set_expires_ms = Message.__dict__["expires_ms"].__set__
_set_due_ms = Message.__dict__["due_ms"].__set__
_set_deliveries = Message.__dict__["deliveries"].__set__


@dataclass(frozen=True, slots=True)
class Claim:
    """A lease on a message: ``token`` fences acks and extensions (a later claim of the same
    message has another token); the lease ends at ``expires_ms``. ``message.deliveries``
    includes this claim."""

    message: Message
    token: int
    expires_ms: int

    @property
    def ref(self) -> ClaimRef:
        return ClaimRef(self.message.partition, self.message.id, self.token)

    def unclaimed(self) -> Message:
        """The message as it was before this claim (its delivery not counted)."""
        return replace(self.message, deliveries=max(self.message.deliveries - 1, 0))


# A claim's token is 1 to MAX_CLAIM_TOKEN: it fits every back-end's signed 64-bit integer.
MAX_CLAIM_TOKEN = 1 << 62


def new_claim_token() -> int:
    """The random token of a new claim, which its acks and extensions must present."""
    return secrets.randbits(62) + 1


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """What a consumer hands back to acknowledge or extend a claim."""

    partition: int
    id: str
    token: int

    def could_be_of(self, queue: Queue) -> bool:
        """Whether this names a claim ``queue`` could hold: one of its partitions and a token
        a back-end hands out (anything else is never current, and no back-end is asked)."""
        return 1 <= self.partition <= queue.partitions and 1 <= self.token <= MAX_CLAIM_TOKEN


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts at one instant; ``oldest``/``newest`` are the ticks of live, due messages."""

    available: int
    claimed: int
    delayed: int
    dead_lettered: int
    oldest: int | None
    newest: int | None


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
class Grant:
    """What a token lets its bearer do: act for ``app`` as ``subject`` with ``rights`` on the
    queues ``queues`` names (a trailing ``*`` matches a prefix)."""

    app: str
    subject: str
    queues: tuple[str, ...]
    rights: frozenset[str]
    expires: float = float("inf")  # epoch seconds: when the token stops being valid

    def names(self, queue: str) -> bool:
        return any(
            queue == name or (name.endswith("*") and queue.startswith(name[:-1]))
            for name in self.queues
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: an application authenticated by its key, the bearer of a token
    (``grant``, with ``app`` None: a token is never the owner), or nobody."""

    app: str | None
    grant: Grant | None = None
