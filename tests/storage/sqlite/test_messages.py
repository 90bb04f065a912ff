"""InsertPlanner and messages_of through their own interfaces."""

from __future__ import annotations

import pytest

from queuey.core.ids import uuid1_hex
from queuey.core.models import Message
from queuey.storage.sqlite.messages import InsertPlanner, messages_of

SUFFIX = "8123456789abcdef"
SFX = int(SUFFIX, 16) - 2**63


def run(first: int, count: int, body: str = "b") -> list[Message]:
    """A batch as the service makes it: consecutive ticks, one partition, expiry and type."""
    return [
        Message(uuid1_hex(t, SUFFIX), t, 1, body, "text/plain", 99)
        for t in range(first, first + count)
    ]


def rows_bound(statements: list[tuple[str, list[object]]]) -> int:
    return sum(sql.count("),(") + 1 for sql, _ in statements)


def test_a_run_binds_its_fixed_columns_once_and_then_only_bodies() -> None:
    statements, low = InsertPlanner().statements(3, run(1000, 100), replace=False)
    assert low == 1000
    assert [len(params) for _, params in statements] == [6 + 96, 6 + 4]
    assert [params[:6] for _, params in statements] == [
        [3, 1, 1000, SFX, 99, "text/plain"],
        [3, 1, 1096, SFX, 99, "text/plain"],
    ]


def test_messages_that_are_not_a_run_bind_every_column_of_every_row() -> None:
    batch = run(1000, 3)
    batch.reverse()
    statements, low = InsertPlanner().statements(3, batch, replace=False)
    assert low == 1000
    assert [sql.count("(?1, ") for sql, _ in statements] == [2, 1]  # statements of 2 and 1 rows
    assert all("ON CONFLICT DO NOTHING" in sql for sql, _ in statements)
    assert [params[0] for _, params in statements] == [3, 3]
    bound = [value for _, params in statements for value in params[1:]]
    assert bound == [v for m in batch for v in (1, m.ticks, SFX, 99, "text/plain", "b")]


def test_a_replacing_write_is_an_upsert() -> None:
    statements, _ = InsertPlanner().statements(3, run(1000, 2), replace=True)
    assert all("DO UPDATE SET" in sql for sql, _ in statements)


def test_statements_hold_a_bounded_size_of_bodies() -> None:
    statements, _ = InsertPlanner().statements(3, run(1000, 7, "x" * 50_000), replace=False)
    assert rows_bound(statements) == 7
    assert [len(params) - 6 for _, params in statements] == [2, 2, 2, 1]


def test_an_id_whose_last_16_characters_are_not_hex_digits_is_refused() -> None:
    bad = Message("0" * 16 + "0123456789ABCDEF", 1, 1, "b", "text/plain", 99)
    with pytest.raises(ValueError, match="message id"):
        InsertPlanner().statements(3, [bad], replace=False)


def test_ids_are_rebuilt_from_ticks_and_sfx() -> None:
    written = run((1 << 32) - 1, 2)
    rows = [(m.ticks, SFX, 1, m.body, m.content_type, m.expires_ms, 0) for m in written]
    assert messages_of(rows) == written
