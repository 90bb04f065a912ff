"""How the SQL and Cassandra back-ends store a message id: its ticks and ``sfx``.

A message id is 32 hex digits: the first 16 are determined by its ticks, the last 16 (clock
sequence and node) are stored as ``sfx``, that number minus 2**63 (a signed 64-bit integer in
the same order), so ``(ticks, sfx)`` sorts as ``(ticks, id)`` does and the id is rebuilt from
the pair on reads.
"""

from __future__ import annotations

import re

from queuey.core.models import Cursor

SFX_OFFSET = 1 << 63
SFX_MIN = -(1 << 63)  # the lowest sfx (suffix 0000000000000000); see cursor_position
SFX_MAX = (1 << 63) - 1  # the highest (suffix ffffffffffffffff)
HEX16 = re.compile(r"[0-9a-f]{16}")


def sfx_of(message_id: str) -> int:
    """The stored form of an id's last 16 hex digits (ValueError if they are not hex)."""
    return int(message_id[16:], 16) - SFX_OFFSET


def id_end(high: int, sfx: int) -> str:
    """The last 24 hex digits of the ids of the messages whose ticks >> 32 is ``high`` and
    whose stored suffix is ``sfx``: shared by every message of a read that one process wrote
    within a few minutes, so readers make it once and prefix each message's own 8 digits
    (:func:`id_of`)."""
    return f"{high & 0xFFFF:04x}{((high >> 16) & 0x0FFF) | 0x1000:04x}{sfx + SFX_OFFSET:016x}"


def id_of(ticks: int, end: str) -> str:
    """The id at ``ticks`` whose last 24 digits are ``end`` (:func:`id_end`)."""
    # hex() and a slice cost half of an f-string with a format spec.
    return hex(ticks & 0xFFFFFFFF | 0x100000000)[3:] + end


def cursor_position(cursor: Cursor, descending: bool) -> tuple[int, bool]:
    """The sfx to compare (ticks, sfx) with for a cursor at (ticks, id), and inclusiveness.

    Among the ids of one tick, an id sorts as its sfx does. The sentinels "" (before every id)
    and "~" (after every id) become the lowest or highest sfx, inclusive or not so that they
    keep or drop the whole tick exactly as comparing them with the ids' text would.
    """
    cursor_id = cursor.id
    if len(cursor_id) == 32 and HEX16.fullmatch(cursor_id, 16):
        return int(cursor_id[16:], 16) - SFX_OFFSET, cursor.inclusive
    if cursor_id < "0":  # before every id: ascending keeps the whole tick, descending none of it
        return SFX_MIN, not descending
    return SFX_MAX, descending  # after every id
