"""The settle window of stores of several nodes: reads hold back the newest messages.

On a store of several nodes a message stamped earlier by another server may still be on its
way to the replicas read, and a reader paging with ``after=`` must not skip it. So, as the
original did, reads leave out messages younger than a window set by the queue's consistency
(plus the store's ``base_delay``). Zero on a single node."""

from __future__ import annotations

from queuey.core.ids import ticks_from_ns
from queuey.core.models import Message
from queuey.storage.base import Storage

SETTLE_SECONDS = {"weak": 1.0, "strong": 5.0, "very_strong": 600.0}


def settle_window_ms(storage: Storage, consistency: str) -> int:
    """How long reads of a queue of ``consistency`` hold back a new message."""
    if storage.nodes <= 1:
        return 0
    seconds = SETTLE_SECONDS.get(consistency, SETTLE_SECONDS["strong"]) + storage.base_delay
    return int(seconds * 1000)


def settled(messages: list[Message], window_ms: int, now_ms: int) -> list[Message]:
    """The messages stamped at least ``window_ms`` before ``now_ms`` (the limit was applied
    before, so a read may return fewer than it asked for)."""
    if window_ms <= 0:
        return messages
    cutoff = ticks_from_ns((now_ms - window_ms) * 1_000_000)
    return [m for m in messages if m.ticks <= cutoff]
