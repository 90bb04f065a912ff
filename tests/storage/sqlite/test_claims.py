"""ClaimHints through its own interface, on a database of the real schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from queuey.storage.sqlite.claims import ClaimHints
from queuey.storage.sqlite.schema import prepare

NOW_MS = 1_000_000


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = tmp_path / "queuey.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        prepare(conn, path)
        yield conn


def claimed(partition: int, ticks: int, sfx: int = 0) -> tuple[Any, ...]:
    """A row as a claim returns it: (rid, ticks, sfx, part, body, ctype, expires, due, dlv)."""
    return (1, ticks, sfx, partition, "b", "text/plain", NOW_MS * 2, 0, 0)


def add_message(conn: sqlite3.Connection, qid: int, ticks: int, **columns: int) -> None:
    names = ", ".join(["qid", "part", "ticks", "sfx", "expires", "ctype", "body", *columns])
    values = [qid, 1, ticks, 0, NOW_MS * 2, "text/plain", "b", *columns.values()]
    marks = ", ".join("?" * len(values))
    conn.execute(f"INSERT INTO messages ({names}) VALUES ({marks})", values)


def hinted(conn: sqlite3.Connection, qid: int = 7) -> ClaimHints:
    """Hints for partitions 1 (at ticks 10) and 2 (at ticks 20) of queue ``qid``."""
    hints = ClaimHints()
    assert hints.start(conn, qid, NOW_MS) == {}
    hints.passed(qid, [claimed(1, 5), claimed(1, 10, 3), claimed(2, 20)])
    return hints


def test_a_claim_leaves_hints_at_the_last_row_it_took_in_each_partition(
    conn: sqlite3.Connection,
) -> None:
    hints = hinted(conn)
    assert hints.positions(7) == {1: (10, 3), 2: (20, 0)}
    assert hints.start(conn, 7, NOW_MS) == {1: (10, 3), 2: (20, 0)}
    assert hints.positions(8) == {}


def test_a_claim_of_a_queue_without_hints_yet_records_nothing(conn: sqlite3.Connection) -> None:
    hints = ClaimHints()
    hints.passed(7, [claimed(1, 5)])
    assert hints.positions(7) == {}


def test_a_write_drops_the_hints_at_or_past_its_rows(conn: sqlite3.Connection) -> None:
    hints = hinted(conn)
    hints.written(7, 15)
    assert hints.positions(7) == {1: (10, 3)}
    hints.written(7, 10)
    assert hints.positions(7) == {}


def test_forget_and_clear_drop_one_queue_or_every_queue(conn: sqlite3.Connection) -> None:
    hints = hinted(conn, 7)
    hints.start(conn, 8, NOW_MS)
    hints.passed(8, [claimed(1, 30)])
    hints.forget(7)
    assert (hints.positions(7), hints.positions(8)) == ({}, {1: (30, 0)})
    hints.clear()
    assert hints.positions(8) == {}


def test_a_commit_by_another_connection_drops_every_hint(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    hints = hinted(conn)
    with closing(sqlite3.connect(tmp_path / "queuey.db", isolation_level=None)) as other:
        add_message(other, 7, 1)
    assert hints.start(conn, 7, NOW_MS) == {}


def test_a_lease_that_ended_drops_the_queues_hints(conn: sqlite3.Connection) -> None:
    add_message(conn, 7, 1, cexp=NOW_MS + 10)  # by this connection: data_version stays
    hints = hinted(conn)
    assert hints.start(conn, 7, NOW_MS) == {1: (10, 3), 2: (20, 0)}
    assert hints.start(conn, 7, NOW_MS + 10) == {}


def test_a_delayed_row_that_fell_due_drops_the_queues_hints(conn: sqlite3.Connection) -> None:
    add_message(conn, 7, 1, due=NOW_MS + 10)
    hints = hinted(conn)
    assert hints.start(conn, 7, NOW_MS + 9) == {1: (10, 3), 2: (20, 0)}
    assert hints.start(conn, 7, NOW_MS + 10) == {}


def test_hints_of_too_many_queues_are_dropped_all_at_once(conn: sqlite3.Connection) -> None:
    hints = ClaimHints(capacity=3)
    for qid in (1, 2, 3):
        hints.start(conn, qid, NOW_MS)
        hints.passed(qid, [claimed(1, qid)])
    assert [hints.positions(qid) for qid in (1, 2, 3)] == [{1: (1, 0)}, {1: (2, 0)}, {1: (3, 0)}]
    hints.start(conn, 4, NOW_MS)
    assert [hints.positions(qid) for qid in (1, 2, 3)] == [{}, {}, {}]
