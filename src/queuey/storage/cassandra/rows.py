"""Message rows: their keys, their TTLs, and the messages made from them."""

from __future__ import annotations

import itertools
import math
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from queuey.core.ids import UUID_EPOCH_OFFSET, minted_here, ticks_of, uuid1_hex
from queuey.core.models import ClaimRef, Message
from queuey.storage.keys import SFX_OFFSET, sfx_of

MIN_TTL = 60  # seconds: Cassandra keeps even a message dead on arrival this long
MAX_TTL = 630_720_000  # Cassandra's largest TTL (20 years)
_TICKS_PER_MS = 10_000

Row = tuple[Any, ...]
Key = tuple[int, int, int]  # (part, ticks, sfx): a message row's key within its bucket
Named = dict[str, Any]  # a row as a dict (the answers of conditional statements)
ByBucket = dict[int, dict[Key, Message]]  # messages of one write by bucket, then key


def ticks_ms(ticks: int) -> int:
    return (ticks - UUID_EPOCH_OFFSET) // _TICKS_PER_MS


def ttl_until(at_ms: int, since_ms: int) -> int:
    """Cassandra TTL (s) of a cell that must last until ``at_ms`` (epoch ms), written at
    ``since_ms`` by the caller's clock. Cassandra counts TTLs on its own wall clock, so the
    time left is counted from the earlier of ``since_ms`` and the wall clock (a caller's clock
    ahead of the wall, like a delayed message's own time, never shortens it), with room for
    whole-second rounding. Only space depends on it: what is live is decided by the times
    stored in the rows."""
    start = min(since_ms, time.time_ns() // 1_000_000)
    seconds = math.ceil((at_ms - start) / 1000) + 2
    return min(max(seconds, MIN_TTL), MAX_TTL)


def message_ttl(expires_ms: int, ticks: int) -> int:
    """Cassandra TTL (s) of a message row: past its expiry, counted from the message's own
    time (or the wall clock, when that is earlier)."""
    return ttl_until(expires_ms, ticks_ms(ticks))


def index_ttl(expires_ms: int, ticks: int) -> int:
    """Cassandra TTL (s) of an expiry index row: gone before its messages expire, unless they
    live less than about a minute, so the sweep leaves messages to Cassandra's own TTL."""
    seconds = (expires_ms - ticks_ms(ticks)) // 1000 - 2
    return min(max(seconds, MIN_TTL), MAX_TTL)


def message(
    part: int,
    ticks: int,
    sfx: int,
    body: str,
    ctype: str,
    expires: int,
    due: int | None = 0,
    dlv: int | None = 0,
) -> Message:
    message_id = uuid1_hex(ticks, f"{sfx + SFX_OFFSET:016x}")
    return Message(message_id, ticks, part, body, ctype, expires, due or 0, dlv or 0)


def key_of(message: Message) -> Key:
    return (message.partition, message.ticks, sfx_of(message.id))


def ref_key(ref: ClaimRef) -> Key | None:
    ticks = ticks_of(ref.id)
    return None if ticks is None else (ref.partition, ticks, sfx_of(ref.id))


def keys_in_order(ids: Iterable[tuple[int, str]]) -> list[Key]:
    keys: list[Key] = []
    for part, message_id in ids:
        ticks = ticks_of(message_id)
        if ticks is not None:
            keys.append((part, ticks, sfx_of(message_id)))
    return keys


def by_bucket(keys: Iterable[Key]) -> dict[int, list[Key]]:
    grouped: dict[int, list[Key]] = {}
    for key in keys:
        grouped.setdefault(key[1] >> 32, []).append(key)
    return grouped


# Unique values for index rows and marks: a random 64-bit prefix per process and a counter
# (os.urandom for every write cost ~10% of a single-message post, waiting for the GIL).
_UNIQUE_PREFIX = secrets.randbits(64) << 64
_UNIQUE_COUNTER = itertools.count()


def unique() -> uuid.UUID:
    return uuid.UUID(int=_UNIQUE_PREFIX | next(_UNIQUE_COUNTER) & 0xFFFFFFFFFFFFFFFF)


# Per id suffix made by this process's generators, the latest ticks of a message with it that
# this process has written to Cassandra (any store, any queue).
_WRITTEN: dict[str, int] = {}


def writing(messages: Sequence[Message]) -> bool:
    """Note that ``messages`` are being written; whether none of them can be stored already.

    True when each was made by a generator of this process (no other process makes its ids)
    later than every message with the same suffix this process wrote before: nothing can
    have stored it, as it never left this process before this write."""
    fresh = True
    latest: dict[str, int] = {}
    for m in messages:
        if not minted_here(m.id):
            fresh = False
            continue
        suffix = m.id[16:]
        if m.ticks <= _WRITTEN.get(suffix, -1):
            fresh = False
        if m.ticks > latest.get(suffix, -1):
            latest[suffix] = m.ticks
    for suffix, ticks in latest.items():
        if ticks > _WRITTEN.get(suffix, -1):
            _WRITTEN[suffix] = ticks
    return fresh
