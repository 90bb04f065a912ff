"""The conditional-batch combiner: lightweight transactions on the rows of one Cassandra
partition, sent as few conditional batches as possible."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from queuey.core.errors import StorageUnavailable
from queuey.storage.cassandra.rows import Key, Named
from queuey.storage.cassandra.session import Statements, unavailable, unknown_outcome

CAS_BATCH = 200  # conditional statements of one Cassandra partition run as one batch (a round
# costs little more with 200 rows than with 100: the rounds, one at a time, set the pace; at
# about 100 bytes of mutation a row, 200 stay well below batch_size_fail_threshold's 50 KiB)
CAS_TRIES = 4  # attempts of one conditional statement (lost races, unknown outcomes)

Check = Callable[[Named | None], bool]


class Sender(Protocol):
    """What the combiner needs of a session (:class:`queuey.storage.cassandra.session.Session`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def build_batch(
        self, statements: Statements, level: str, logged: bool, idempotent: bool = True
    ) -> Any: ...

    def submit(
        self, build: Callable[[], Any], what: str = "", named: bool = False
    ) -> asyncio.Future[Any]: ...


@dataclass(eq=False)
class Op:
    """One conditional statement on one message row, run by its partition's combiner.

    ``holds`` says whether the statement's condition holds for the row's current values (None:
    no row); ``applied`` whether those values show the statement took effect (asked when an
    earlier attempt's outcome is unknown)."""

    key: Key
    statement: str
    params: tuple[Any, ...]
    holds: Check
    applied: Check
    future: asyncio.Future[bool]
    tries: int = 0
    unsure: bool = False


class Combiner:
    """Runs conditional statements on message rows, a Cassandra partition at a time.

    Lightweight transactions on one partition serialize on it (Paxos), so concurrent ones from
    this process are not sent side by side to contend: the partition's runner sends whatever is
    waiting as one conditional batch (one Paxos round, one statement per row), and when the
    batch is not applied because some conditions failed, answers False for those and sends the
    rest again. When a batch's outcome is unknown (a timeout), the next attempt settles it: its
    Paxos round completes the earlier one, and ``applied`` reads its answer."""

    def __init__(self, session: Sender) -> None:
        self._session = session
        self._pending: dict[tuple[int, int], list[Op]] = {}  # (qid, bucket) -> waiting ops
        self._runners: set[asyncio.Task[None]] = set()

    def op(
        self, key: Key, statement: str, params: tuple[Any, ...], holds: Check, applied: Check
    ) -> Op:
        return Op(key, statement, params, holds, applied, self._session.loop.create_future())

    async def run(self, qid: int, bucket: int, ops: list[Op], level: str) -> list[bool]:
        """Run ``ops`` (on rows of the partition ``(qid, bucket)``); per op, whether it was
        applied."""
        if not ops:
            return []
        group = (qid, bucket)
        pending = self._pending.get(group)
        if pending is None:
            pending = self._pending[group] = []
            task = asyncio.get_running_loop().create_task(self._drain(group, pending, level))
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)
        pending.extend(ops)
        return list(await asyncio.gather(*(op.future for op in ops)))

    async def _drain(self, group: tuple[int, int], pending: list[Op], level: str) -> None:
        try:
            while pending:
                batch: list[Op] = []
                rest: list[Op] = []
                seen: set[Key] = set()
                for op in pending:  # one statement per row and batch
                    if op.key in seen or len(batch) >= CAS_BATCH:
                        rest.append(op)
                    else:
                        seen.add(op.key)
                        batch.append(op)
                pending[:] = rest
                pending[:0] = await self._send(batch, level)
        except BaseException as exc:
            error = exc if isinstance(exc, StorageUnavailable) else unavailable(exc)
            for op in pending:
                _fail(op.future, error)
            pending.clear()
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._pending.get(group) is pending:
                del self._pending[group]

    async def _send(self, batch: list[Op], level: str) -> list[Op]:
        """Run one conditional batch; the ops to run again."""
        statements: Statements = [(op.statement, op.params) for op in batch]
        session = self._session
        try:
            rows: list[Named] = await session.submit(
                lambda: session.build_batch(statements, level, logged=False, idempotent=False),
                "conditional batch",
                named=True,
            )
        except StorageUnavailable as error:
            return _unknown(batch, error)
        except BaseException as exc:
            for op in batch:
                _fail(op.future, exc)
            raise
        if rows and rows[0].get("[applied]"):
            for op in batch:
                _settle(op.future, True)
            return []
        return _not_applied(batch, rows)


def _unknown(batch: list[Op], error: StorageUnavailable) -> list[Op]:
    """A batch that failed: it fails unless it may have been applied; then it runs again
    (while its ops have tries left), and the next Paxos round completes it if so, and its
    answer shows whether it was."""
    if not unknown_outcome(error):
        for op in batch:
            _fail(op.future, error)
        return []
    again = []
    for op in batch:
        op.unsure = True
        op.tries += 1
        if op.tries >= CAS_TRIES:
            _fail(op.future, error)
        else:
            again.append(op)
    return again


def _not_applied(batch: list[Op], rows: list[Named]) -> list[Op]:
    """A batch that was not applied: the ops whose conditions failed answer False, the others
    run again without them (an op is not charged for the others' failures)."""
    found = {(r["part"], r["ticks"], r["sfx"]): r for r in rows if "part" in r}
    again = []
    failed = False
    for op in batch:
        row = found.get(op.key)
        if op.unsure and op.applied(row):
            _settle(op.future, True)
        elif not op.holds(row):
            _settle(op.future, False)
            failed = True
        else:
            again.append(op)
    if failed:
        return again
    # Every condition held as answered, yet nothing was applied.
    changing = StorageUnavailable("Back-end storage unavailable: the rows keep changing.")
    for op in again:
        op.tries += 1
        if op.tries >= CAS_TRIES:
            _fail(op.future, changing)
    return [op for op in again if not op.future.done()]


def _settle(future: asyncio.Future[bool], applied: bool) -> None:
    if not future.done():
        future.set_result(applied)


def _fail(future: asyncio.Future[bool], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# Conditions of the conditional statements, checked on the values a batch that was not applied
# answers with (None: no such row), and what shows that a statement was applied.


def unchanged(expires: int, ctok: int, cexp: int) -> Check:
    def holds(row: Named | None) -> bool:
        return row is not None and (row["expires"], row["ctok"], row["cexp"]) == (
            expires, ctok, cexp,
        )  # fmt: skip

    return holds


def holding(token: int, now_ms: int) -> Check:
    def holds(row: Named | None) -> bool:
        return row is not None and row["ctok"] == token and (row["cexp"] or 0) > now_ms

    return holds


def tokened(token: int, cexp: int | None = None) -> Check:
    def applied(row: Named | None) -> bool:
        return row is not None and row["ctok"] == token and cexp in (None, row["cexp"])

    return applied


def gone(row: Named | None) -> bool:
    return row is None


def never(row: Named | None) -> bool:
    return False  # an at-most-once claim that may have been applied counts as not: lost
