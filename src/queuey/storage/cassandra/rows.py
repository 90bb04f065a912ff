"""Message rows: their keys, their TTLs, and the messages made from them."""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import Iterable
from typing import Any

from queuey.core.ids import UUID_EPOCH_OFFSET, ticks_of
from queuey.core.models import ClaimRef, Message
from queuey.storage.keys import id_end, id_of, sfx_of

MIN_TTL = 60  # seconds: Cassandra keeps even a message dead on arrival this long
MAX_TTL = 630_720_000  # Cassandra's largest TTL (20 years)
_TICKS_PER_MS = 10_000

Row = tuple[Any, ...]
Key = tuple[int, int, int]  # (part, ticks, sfx): a message row's key within its bucket
Named = dict[str, Any]  # a row as a dict (the answers of conditional statements)
ByBucket = dict[int, dict[Key, Message]]  # messages of one write by bucket, then key


def ticks_ms(ticks: int) -> int:
    return (ticks - UUID_EPOCH_OFFSET) // _TICKS_PER_MS


def ttl_until(at_ms: int, since_ms: int, wall_ms: int | None = None) -> int:
    """Cassandra TTL (s) of a cell that must last until ``at_ms`` (epoch ms), written at
    ``since_ms`` by the caller's clock. Cassandra counts TTLs on its own wall clock, so the
    time left is counted from the earlier of ``since_ms`` and the wall clock (``wall_ms``, read
    now when not given; a caller's clock ahead of the wall, like a delayed message's own time,
    never shortens it), with room for whole-second rounding. Only space depends on it: what is
    live is decided by the times stored in the rows."""
    if wall_ms is None:
        wall_ms = time.time_ns() // 1_000_000
    start = since_ms if since_ms < wall_ms else wall_ms
    seconds = -((start - at_ms) // 1000) + 2  # ceil((at_ms - start) / 1000), in integers
    return MIN_TTL if seconds < MIN_TTL else MAX_TTL if seconds > MAX_TTL else seconds


def message_ttl(expires_ms: int, ticks: int, wall_ms: int | None = None) -> int:
    """Cassandra TTL (s) of a message row: past its expiry, counted from the message's own
    time (or the wall clock, when that is earlier)."""
    return ttl_until(expires_ms, ticks_ms(ticks), wall_ms)


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
    message_id = id_of(ticks, id_end(ticks >> 32, sfx))
    return Message(message_id, ticks, part, body, ctype, expires, due or 0, dlv or 0)


def messages_of(part: int, rows: Iterable[Row]) -> list[Message]:
    """The messages of ``part`` in rows of (ticks, sfx, body, ctype, expires, due, dlv): what
    :func:`message` makes, with the ids' common last 24 digits made once per run of rows
    that share them (a read's rows usually all do)."""
    found: list[Message] = []
    high = last = -1
    end = ""
    for ticks, sfx, body, ctype, expires, due, dlv in rows:
        if ticks >> 32 != high or sfx != last:
            high, last = ticks >> 32, sfx
            end = id_end(high, sfx)
        found.append(
            Message(id_of(ticks, end), ticks, part, body, ctype, expires, due or 0, dlv or 0)
        )
    return found


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


class Uniques:
    """Unique values for index rows and marks: a random 64-bit prefix per owner and a counter
    (os.urandom for every write cost ~10% of a single-message post, waiting for the GIL)."""

    def __init__(self) -> None:
        self._prefix = secrets.randbits(64) << 64
        self._counter = itertools.count()

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self._prefix | next(self._counter) & 0xFFFFFFFFFFFFFFFF)
