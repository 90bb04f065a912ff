"""Messages rebuilt from Cassandra rows: ids made from (ticks, sfx) as the id generator makes
them, the ids' shared digits made once per run of rows."""

from __future__ import annotations

import random

from queuey.core.ids import uuid1_hex
from queuey.storage.cassandra.rows import message, messages_of
from queuey.storage.keys import SFX_MAX, SFX_MIN, SFX_OFFSET, id_end, id_of


def test_an_id_is_the_uuid1_of_its_ticks_and_suffix() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        ticks = rng.randrange(1 << 60)
        sfx = rng.choice((SFX_MIN, SFX_MAX, rng.randrange(SFX_MIN, SFX_MAX)))
        expected = uuid1_hex(ticks, f"{sfx + SFX_OFFSET:016x}")
        assert id_of(ticks, id_end(ticks >> 32, sfx)) == expected
        assert message(1, ticks, sfx, "b", "text/plain", 5).id == expected


def test_rows_become_the_messages_each_row_would() -> None:
    rng = random.Random(11)
    base = 139_000_000_000_000_000
    rows = []
    for i in range(300):
        ticks = base + rng.randrange(1 << 34)  # across several buckets (ticks >> 32)
        sfx = rng.choice((5, 5, 5, -9, SFX_MAX))  # runs of one writer, and others between
        due, dlv = rng.choice(((0, 0), (None, None), (1_795_508_311_000, 3)))
        rows.append((ticks, sfx, f"m{i}", "application/json", 1_795_600_000_000 + i, due, dlv))
    rows.sort()
    got = messages_of(4, rows)
    assert got == [message(4, *row) for row in rows]
    assert all(m.due_ms is not None and m.deliveries is not None for m in got)
