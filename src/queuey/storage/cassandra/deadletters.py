"""Dead-letter moves, exactly once across servers and crashes.

A mover records the move in ``moves`` (:meth:`DeadLetters.prepare`), wins it with a conditional
statement on the source row (:meth:`DeadLetters.win_op`, run with the claim's other statements),
then copies and counts it (:meth:`DeadLetters.finish`). The sweep finishes moves whose server
stopped half-way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from queuey.core.errors import StorageUnavailable
from queuey.core.models import Queue, new_claim_token
from queuey.storage.cassandra.combiner import Combiner, Op, gone, tokened, unchanged
from queuey.storage.cassandra.floors import Floors
from queuey.storage.cassandra.index import ExpiryIndex
from queuey.storage.cassandra.messages import insert_statements, oversized
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.rows import ByBucket, Key, Row, message, ttl_until
from queuey.storage.cassandra.schema import INDEX_SHARDS
from queuey.storage.cassandra.session import Session, Statements, too_large

MOVING_CEXP = (1 << 63) - 1  # the lease end of a message being dead-lettered: never available


@dataclass(eq=False)
class Move:
    """A dead-letter move of one message: ``token`` marks the source row as this move's."""

    qid: int
    bucket: int
    row: Row  # the source row (schema.CLAIM_COLUMNS) as last seen
    token: int
    target: int  # the dead-letter queue's qid, 0 without one
    tpart: int

    @property
    def key(self) -> Key:
        return (self.row[0], self.row[1], self.row[2])


class DeadLetters:
    def __init__(
        self,
        session: Session,
        queues: Queues,
        combiner: Combiner,
        index: ExpiryIndex,
        floors: Floors,
    ) -> None:
        self._session = session
        self._queues = queues
        self._combiner = combiner
        self._index = index
        self._floors = floors

    async def prepare(self, queue: Queue, bucket: int, rows: list[Row], now_ms: int) -> list[Move]:
        """Record the moves of exhausted messages (``rows`` of ``bucket``) before the
        conditional statements that start them, so the sweep completes a move whose server
        stopped half-way."""
        if not rows:
            return []
        name = queue.settings.dead_letter_queue
        target = await self._queues.get(queue.app, name) if name else None
        level = self._session.levels_of(queue)[1]
        moves = []
        for row in rows:
            part = row[0]
            tpart = part if target is not None and part <= target.partitions else 1
            token = new_claim_token()  # stored negated: no claim id presents it
            moves.append(Move(queue.qid, bucket, row, token, target.qid if target else 0, tpart))
        await asyncio.gather(
            *(
                self._session.execute(
                    "mv_insert",
                    (
                        m.qid % INDEX_SHARDS,
                        m.qid,
                        bucket,
                        *m.key,
                        now_ms,
                        m.token,
                        m.target,
                        m.tpart,
                        ttl_until(m.row[5], now_ms),
                    ),  # fmt: skip
                    level,
                )
                for m in moves
            )
        )
        return moves

    def win_op(self, move: Move, now_ms: int) -> Op:
        """The conditional statement that wins a move: the row as seen gets the move's
        (negative) token and a lease that never ends."""
        part, ticks, sfx, _, _, expires, _, dlv, ctok, cexp = move.row
        params = (
            ttl_until(expires, now_ms), -move.token, MOVING_CEXP, dlv or 0,
            move.qid, move.bucket, part, ticks, sfx, expires, ctok, cexp,
        )  # fmt: skip
        return self._combiner.op(
            move.key, "c_claim", params, unchanged(expires, ctok, cexp), tokened(-move.token)
        )

    async def finish(self, move: Move, level: str, recovering: bool = False) -> None:
        """Copy a won move's message to the dead-letter queue and count it (one logged batch:
        both or neither), then delete the source row and the pending move. A recovery skips
        the copy when the count shows it was made."""
        part, ticks, sfx = move.key
        where = (move.qid, move.bucket, part, ticks, sfx)
        counted = recovering and bool(await self._session.execute("dl_get", where, level))
        if not counted:
            await self._copy(move, level)
        if move.target:  # the copy has the message's old id: below the claim floors
            await self._floors.lower(move.target, [(move.tpart, ticks, sfx)], level, every=True)
        op = self._combiner.op(
            move.key, "c_moved", (*where, -move.token), tokened(-move.token), gone
        )
        await self._combiner.run(move.qid, move.bucket, [op], level)
        await self.drop(move, level)

    async def _copy(self, move: Move, level: str) -> None:
        """Write the copy (unless the dead-letter queue holds that id already) and the count
        row in one logged batch; for a message too big for one, its index rows, the copy and
        the count row in turn (a move that stops half-way is finished again from the start:
        it finds the copy, or makes it again if it was consumed meanwhile)."""
        part, ticks, sfx, body, ctype, expires, _, dlv = move.row[:8]
        counted: Statements = [("dl_insert", (move.qid, move.bucket, part, ticks, sfx))]
        steps: list[Statements] = []
        apart = False
        if move.target:
            key = (move.tpart, ticks, sfx)
            present = await self._session.execute(
                "m_keys", (move.target, move.bucket, [key]), level
            )
            if not any(row[3] is not None for row in present):
                copy = message(move.tpart, ticks, sfx, body, ctype, expires, 0, dlv)
                copied: ByBucket = {move.bucket: {key: copy}}
                steps = [
                    self._index.rows_of(move.target, copied),
                    insert_statements(move.target, copied, {}, self._index.unique),
                ]
                apart = oversized(copied.values(), len(steps[0]) + 1)
        statements = [row for step in steps for row in step] + counted
        if not apart:
            try:
                await self._session.batch(statements, level, logged=True)
            except StorageUnavailable as error:
                if not too_large(error):  # else a node configured below BATCH_BYTES
                    raise
                apart = True
        if apart:
            for step in [*steps, counted]:
                await self._session.each(step, level)
        self._index.written(statements)

    def drop(self, move: Move, level: str) -> asyncio.Future[list[Row]]:
        """Delete the record of a move (finished, or lost to another claim)."""
        params = (move.qid % INDEX_SHARDS, move.qid, move.bucket, *move.key, move.token)
        return self._session.execute("mv_delete", params, level)
