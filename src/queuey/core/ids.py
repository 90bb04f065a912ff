"""Message ids: version-1 UUIDs as 32 lowercase hex characters, and their timestamps.

A message's time is the 60-bit count of 100-ns ticks since 1582-10-15 carried in its UUID.
Timestamps on the wire are that time as seconds since the Unix epoch with exactly 7 decimals.
"""

from __future__ import annotations

import re
import secrets

from queuey.core.clock import Clock

# 100-ns ticks between the UUID epoch (1582-10-15) and the Unix epoch.
UUID_EPOCH_OFFSET = 0x01B21DD213814000
TICKS_PER_SECOND = 10_000_000
MAX_TICKS = (1 << 60) - 1

_HEX32 = re.compile(r"[0-9a-f]{32}")
_TIMESTAMP = re.compile(r"(\d{1,12})(?:\.(\d+))?")


def uuid1_hex(ticks: int, suffix: str) -> str:
    """The hex of a version-1 UUID at ``ticks``; ``suffix`` is 16 hex chars (clock seq + node)."""
    return (
        f"{ticks & 0xFFFFFFFF:08x}{(ticks >> 32) & 0xFFFF:04x}"
        f"{((ticks >> 48) & 0x0FFF) | 0x1000:04x}{suffix}"
    )


def ticks_of(message_id: str) -> int | None:
    """The time of a version-1 UUID given as 32 lowercase hex characters, or None."""
    if len(message_id) != 32 or not _HEX32.fullmatch(message_id):
        return None
    if message_id[12] != "1" or message_id[16] not in "89ab":
        return None
    return (
        (int(message_id[13:16], 16) << 48)
        | (int(message_id[8:12], 16) << 32)
        | int(message_id[0:8], 16)
    )


def timestamp_of(ticks: int) -> str:
    """Seconds since the Unix epoch with exactly 7 decimals, as the API writes them."""
    # %-formatting of the divmod pair is ~25% faster than an f-string here (a hot path).
    return "%d.%07d" % divmod(ticks - UUID_EPOCH_OFFSET, TICKS_PER_SECOND)  # noqa: UP031


def ticks_from_timestamp(text: str) -> int | None:
    """Parse a decimal epoch timestamp (``digits[.digits]``) into UUID ticks, or None."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    seconds, fraction = match.group(1), (match.group(2) or "")
    ticks = UUID_EPOCH_OFFSET + int(seconds) * TICKS_PER_SECOND + int(fraction[:7].ljust(7, "0"))
    return ticks if ticks <= MAX_TICKS else None


def ticks_from_ns(ns: int) -> int:
    return ns // 100 + UUID_EPOCH_OFFSET


# The suffixes (clock sequence and node) of this process's generators: an id that carries one
# was made here, as no other process draws the same 62 random bits.
_MINTED_HERE: set[str] = set()


def minted_here(message_id: str) -> bool:
    """Whether ``message_id`` was made by :meth:`IdGenerator.next` or :meth:`next_many` of a
    generator of this process (ids made there strictly increase in time per generator)."""
    return message_id[16:] in _MINTED_HERE


def _suffix(clock_seq: int, node: str) -> str:
    return f"{(clock_seq >> 8) | 0x80:02x}{clock_seq & 0xFF:02x}{node}"


class IdGenerator:
    """Makes message ids that are strictly increasing in time within this process.

    Each generator has a random node and clock sequence, so generators in different
    processes never produce the same id even at the same tick.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        clock_seq = secrets.randbits(14)
        node = secrets.randbits(48) | 0x010000000000  # multicast bit: not a real MAC
        self._clock_seq = clock_seq
        self._node = f"{node:012x}"
        self._suffix = _suffix(clock_seq, self._node)
        _MINTED_HERE.add(self._suffix)
        self._last = 0

    def next(self) -> tuple[str, int]:
        """A new id and its ticks."""
        ticks = ticks_from_ns(self._clock.time_ns())
        if ticks <= self._last:
            ticks = self._last + 1
        self._last = ticks
        return uuid1_hex(ticks, self._suffix), ticks

    def delayed(self, delay_ticks: int) -> tuple[str, int]:
        """An id ``delay_ticks`` after a new id's time, for a message due then.

        Its clock sequence is random (never this generator's own), so it cannot collide with
        an id this generator makes when the clock gets there; two delayed ids collide only if
        they fall on the same 100-ns tick and draw the same of 16,383 sequences.
        """
        ticks = self.next()[1] + delay_ticks
        clock_seq = secrets.randbits(14)
        if clock_seq == self._clock_seq:
            clock_seq ^= 1
        return uuid1_hex(ticks, _suffix(clock_seq, self._node)), ticks

    def next_many(self, count: int) -> tuple[list[str], int]:
        """``count`` new ids at consecutive ticks, and the ticks of the first."""
        first = ticks_from_ns(self._clock.time_ns())
        if first <= self._last:
            first = self._last + 1
        self._last = first + count - 1
        suffix = self._suffix
        ids: list[str] = []
        high = -1
        middle = ""
        for ticks in range(first, first + count):
            if ticks >> 32 != high:  # the upper time fields change every ~7 minutes
                high = ticks >> 32
                middle = f"{high & 0xFFFF:04x}{((high >> 16) & 0x0FFF) | 0x1000:04x}"
            ids.append(f"{ticks & 0xFFFFFFFF:08x}{middle}{suffix}")
        return ids, first
