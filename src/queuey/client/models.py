"""What the client sends and gets back: small frozen dataclasses.

Timestamps stay the strings the API writes (seconds since the epoch with 7 decimals), so that
they can be handed back unchanged as ``since``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueSettings:
    partitions: int
    type: str
    consistency: str
    principles: tuple[str, ...]
    delivery: str
    claim_ttl: int
    max_deliveries: int
    dead_letter_queue: str | None
    delay: int
    dedup_window: int
    policy: str
    paused: bool


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue as a listing or a create/update answer shows it.

    A plain listing gives only ``name``; ``details`` adds ``settings`` and ``created_at``;
    ``include_count`` adds ``count``. Create and update set ``was_created`` (False when the
    queue already existed with the same settings).
    """

    name: str
    settings: QueueSettings | None = None
    created_at: float | None = None
    count: int | None = None
    was_created: bool | None = None


@dataclass(slots=True)  # not frozen: a bulk post makes millions, and frozen ones cost more
class NewMessage:
    """One item of a batch post; unset fields take the queue's defaults."""

    body: str
    ttl: int | None = None
    partition: int | None = None
    delay: int | None = None
    dedup_id: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    """A stored message: the API calls its id ``key`` in post answers and ``message_id`` in
    reads. ``duplicate`` is True when a ``dedup_id`` matched an earlier post."""

    key: str
    timestamp: str
    partition: int
    duplicate: bool = False

    @property
    def ref(self) -> str:
        """``partition:id``, the form the by-id routes take."""
        return f"{self.partition}:{self.key}"


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    timestamp: str
    body: str
    partition: int
    content_type: str

    @property
    def ref(self) -> str:
        """``partition:id``, the form the by-id routes take."""
        return f"{self.partition}:{self.message_id}"


@dataclass(frozen=True, slots=True)
class ClaimedMessage(Message):
    """A message leased to this consumer until ``claim_expires`` (epoch seconds, 7 decimals)."""

    claim_id: str
    claim_expires: str
    deliveries: int


@dataclass(frozen=True, slots=True)
class Extension:
    """The claims whose lease was extended (or released) and when the lease now ends (None
    for a release: no lease remains)."""

    extended: tuple[str, ...]
    claim_expires: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    messages: int
    available: int
    claimed: int
    delayed: int
    dead_lettered: int
    oldest: str | None
    newest: str | None
    claim_ttl: int
    delivery: str
    paused: bool


@dataclass(frozen=True, slots=True)
class Token:
    """A minted token and when it expires (epoch seconds)."""

    token: str
    expires: int
