"""The conditional-batch combiner, through its interface, on a session that answers each
conditional batch as the test says (no Cassandra)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from queuey.core.errors import StorageUnavailable
from queuey.storage.cassandra.combiner import CAS_TRIES, Combiner, Op, tokened, unchanged
from queuey.storage.cassandra.session import Statements, unavailable

KEY_A = (1, 100, 0)
KEY_B = (1, 200, 0)
Answer = list[dict[str, Any]] | BaseException


class WriteTimeout(Exception):
    """Stands for the driver's WriteTimeout of a lightweight transaction."""


def timed_out() -> StorageUnavailable:
    return unavailable(WriteTimeout("Operation timed out - received only 0 responses. CAS"))


class ScriptedSession:
    """Answers the conditional batches sent, in order, with ``answers`` (rows or an error);
    ``batches`` records the statements of each."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.batches: list[list[str]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def build_batch(
        self, statements: Statements, level: str, logged: bool, idempotent: bool = True
    ) -> Any:
        assert (level, logged, idempotent) == ("SERIAL", False, False)
        return [key for key, _ in statements]

    def submit(
        self, build: Callable[[], Any], what: str = "", named: bool = False
    ) -> asyncio.Future[Any]:
        assert named
        self.batches.append(build())
        future: asyncio.Future[Any] = self.loop.create_future()
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
        return future


def applied() -> list[dict[str, Any]]:
    return [{"[applied]": True}]


def not_applied(*rows: tuple[tuple[int, int, int], int]) -> list[dict[str, Any]]:
    """The answer of a batch not applied: the rows' current (key, ctok)."""
    return [
        {"[applied]": False, "part": p, "ticks": t, "sfx": s, "expires": 9, "ctok": c, "cexp": 0}
        for (p, t, s), c in rows
    ]


def claim(combiner: Combiner, key: tuple[int, int, int], name: str, token: int = 7) -> Op:
    """A claim of the row ``key`` as read (ctok 0), answered as ``name`` in the batch."""
    return combiner.op(key, name, (), unchanged(9, 0, 0), tokened(token))


async def test_concurrent_statements_on_one_partition_go_as_one_batch() -> None:
    session = ScriptedSession(applied())
    combiner = Combiner(session)
    first = combiner.run(1, 5, [claim(combiner, KEY_A, "a")], "SERIAL")
    second = combiner.run(1, 5, [claim(combiner, KEY_B, "b")], "SERIAL")

    assert list(await asyncio.gather(first, second)) == [[True], [True]]
    assert session.batches == [["a", "b"]]


async def test_a_row_has_one_statement_per_batch() -> None:
    session = ScriptedSession(applied(), applied())
    combiner = Combiner(session)

    ops = [claim(combiner, KEY_A, "a1"), claim(combiner, KEY_A, "a2"), claim(combiner, KEY_B, "b")]
    assert await combiner.run(1, 5, ops, "SERIAL") == [True, True, True]
    assert session.batches == [["a1", "b"], ["a2"]]


async def test_statements_whose_condition_failed_answer_false_and_the_rest_run_again() -> None:
    # KEY_A was claimed by someone else meanwhile (ctok 3); KEY_B is as read.
    session = ScriptedSession(not_applied((KEY_A, 3), (KEY_B, 0)), applied())
    combiner = Combiner(session)

    ops = [claim(combiner, KEY_A, "a"), claim(combiner, KEY_B, "b")]
    assert await combiner.run(1, 5, ops, "SERIAL") == [False, True]
    assert session.batches == [["a", "b"], ["b"]]


async def test_an_unknown_outcome_is_settled_by_the_next_attempt() -> None:
    # The first batch timed out but was applied: the second finds the rows with its token.
    session = ScriptedSession(timed_out(), not_applied((KEY_A, 7), (KEY_B, 3)))
    combiner = Combiner(session)

    ops = [claim(combiner, KEY_A, "a"), claim(combiner, KEY_B, "b")]
    assert await combiner.run(1, 5, ops, "SERIAL") == [True, False]
    assert session.batches == [["a", "b"], ["a", "b"]]


async def test_a_failure_that_was_surely_not_applied_fails_every_statement() -> None:
    session = ScriptedSession(unavailable(ConnectionError("no host")))
    combiner = Combiner(session)

    with pytest.raises(StorageUnavailable, match="no host"):
        await combiner.run(1, 5, [claim(combiner, KEY_A, "a")], "SERIAL")


async def test_statements_give_up_after_their_tries() -> None:
    # Every condition holds as answered, yet the batch is never applied.
    session = ScriptedSession(*(not_applied((KEY_A, 0)) for _ in range(CAS_TRIES)))
    combiner = Combiner(session)

    with pytest.raises(StorageUnavailable, match="keep changing"):
        await combiner.run(1, 5, [claim(combiner, KEY_A, "a")], "SERIAL")
    assert len(session.batches) == CAS_TRIES


async def test_partitions_have_runners_of_their_own() -> None:
    session = ScriptedSession(applied(), applied())
    combiner = Combiner(session)

    results = list(
        await asyncio.gather(
            combiner.run(1, 5, [claim(combiner, KEY_A, "a")], "SERIAL"),
            combiner.run(1, 6, [claim(combiner, KEY_A, "other bucket")], "SERIAL"),
        )
    )
    assert results == [[True], [True]]
    assert sorted(session.batches) == [["a"], ["other bucket"]]


async def test_nothing_to_run_sends_nothing() -> None:
    session = ScriptedSession()
    assert await Combiner(session).run(1, 5, [], "SERIAL") == []
    assert session.batches == []
