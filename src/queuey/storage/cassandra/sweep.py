"""The sweep: expired messages, ended leases, unfinished dead-letter moves and the messages of
deleted queues, each within a budget of messages handled per call."""

from __future__ import annotations

import asyncio

from queuey.core.models import Queue
from queuey.core.observer import Observer
from queuey.storage.cassandra.combiner import Combiner
from queuey.storage.cassandra.deadletters import DeadLetters, Move
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.rows import MIN_TTL, Key, Row
from queuey.storage.cassandra.schema import DEAD_SHARDS, HOUR_MS, INDEX_SHARDS
from queuey.storage.cassandra.session import Session

MOVE_GRACE_MS = 60_000  # a dead-letter move still pending after this is completed by the sweep
_INDEX_ROWS = 1000  # expiry index rows of one hour read at once

_Queues = dict[tuple[str, str], Queue | None]  # the queues a sweep looked up, by (app, name)


class Sweeper:
    def __init__(
        self,
        session: Session,
        queues: Queues,
        combiner: Combiner,
        dead_letters: DeadLetters,
        observer: Observer,
    ) -> None:
        self._session = session
        self._queues = queues
        self._combiner = combiner
        self._dead_letters = dead_letters
        self._observer = observer

    async def sweep(self, now_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        removed = 0
        queues: _Queues = {}
        for shard in range(INDEX_SHARDS):
            removed += await self._index(shard, now_ms, limit - removed, queues)
            if removed >= limit:
                return removed
        for shard in range(INDEX_SHARDS):
            removed += await self._moves(shard, now_ms, limit - removed)
            if removed >= limit:
                return removed
        for shard in range(DEAD_SHARDS):
            removed += await self._dead(shard, limit - removed)
            if removed >= limit:
                return removed
        return removed

    async def _index(self, shard: int, now_ms: int, budget: int, queues: _Queues) -> int:
        """Handle up to ``budget`` messages listed in the shard's index rows due by now, oldest
        first: delete expired messages, dead-letter exhausted messages whose lease ended, and
        forget the other ended leases."""
        session, level = self._session, self._session.meta_level
        now_hour = now_ms // HOUR_MS
        removed = 0
        for (hour,) in await session.execute("h_read", (shard, now_hour), level):
            rows = await session.execute("x_read", (shard, hour, now_ms, _INDEX_ROWS), level)
            done: Row | None = None
            finished = True
            for position, row in enumerate(rows):
                acted, rest = await self._index_row(row, now_ms, budget - removed, queues)
                removed += acted
                expires, qid, bucket, wid, _, _, _, _, ttl = row
                if rest:  # the budget ran out within this row: it keeps what is left
                    params = (ttl or MIN_TTL, rest, shard, hour, expires, qid, bucket, wid)
                    await session.execute("x_keys", params, level)
                    finished = False
                    break
                done = (expires, qid, bucket, wid)
                if removed >= budget:
                    finished = position == len(rows) - 1
                    break
            await self._index_done(shard, hour, done, rows, finished and hour < now_hour)
            if removed >= budget or not finished:
                break
        return removed

    async def _index_row(
        self, row: Row, now_ms: int, room: int, queues: _Queues
    ) -> tuple[int, list[Key]]:
        """Handle up to ``room`` messages of one index row; how many, and the keys left."""
        _, qid, bucket, _, keys, ctok, app, name, _ = row
        listed = [tuple(key) for key in keys]
        if ctok is None:
            return await self._expired(qid, bucket, listed, now_ms, room)
        if (app, name) not in queues:
            queues[app, name] = await self._queues.get(app, name)
        return await self._lease(queues[app, name], qid, bucket, listed, ctok, now_ms, room)

    async def _index_done(
        self, shard: int, hour: int, done: Row | None, rows: list[Row], past: bool
    ) -> None:
        """Delete the index rows handled: the whole hour once it is past and all done."""
        session, level = self._session, self._session.meta_level
        if done is not None and past and len(rows) < _INDEX_ROWS:
            await session.execute("x_drop", (shard, hour), level)
            await session.execute("h_delete", (shard, hour), level)
        elif done is not None:
            await session.execute("x_delete_upto", (shard, hour, *done), level)
        elif not rows and past:
            await session.execute("h_delete", (shard, hour), level)

    async def _expired(
        self, qid: int, bucket: int, keys: list[Key], now_ms: int, room: int
    ) -> tuple[int, list[Key]]:
        """Delete up to ``room`` of the listed messages that are still there and expired; the
        expired ones left."""
        session, level = self._session, self._session.meta_level
        live = await session.execute("m_keys", (qid, bucket, keys), level)
        dead = [row[:3] for row in live if row[3] is None or row[3] <= now_ms]
        take = dead[:room]
        if take:
            await session.batch(
                [("m_delete", (qid, bucket, *key)) for key in take], level, logged=False
            )
        return len(take), dead[room:]

    async def _lease(
        self,
        queue: Queue | None,
        qid: int,
        bucket: int,
        keys: list[Key],
        token: int,
        now_ms: int,
        room: int,
    ) -> tuple[int, list[Key]]:
        """Handle up to ``room`` of the listed messages whose lease (of the claim ``token``)
        ended: dead-letter the exhausted ones, forget the others; the ones not looked at."""
        if queue is None or queue.qid != qid:
            return 0, []  # a deleted queue: its messages are reclaimed with it
        level = self._session.levels_of(queue)[1]
        rows = await self._session.execute("m_rows", (qid, bucket, keys), self._session.meta_level)
        by_key = {row[:3]: row for row in rows}
        acted, rest, exhausted = _ended(queue, keys, by_key, token, now_ms, room)
        dead_letters = self._dead_letters
        moves = await dead_letters.prepare(queue, bucket, exhausted, now_ms)
        ops = [dead_letters.win_op(move, now_ms) for move in moves]
        results = await self._combiner.run(qid, bucket, ops, level)
        await asyncio.gather(
            *(
                dead_letters.finish(move, level) if ok else dead_letters.drop(move, level)
                for move, ok in zip(moves, results, strict=True)
            )
        )
        won = sum(1 for ok in results if ok)
        if won:
            self._observer.event(queue.app, "dead_lettered", won)
        return acted, rest

    async def _moves(self, shard: int, now_ms: int, budget: int) -> int:
        """Complete (or forget) up to ``budget`` dead-letter moves pending for more than
        MOVE_GRACE_MS: their server stopped between winning the move and finishing it."""
        session, level = self._session, self._session.meta_level
        done = 0
        for row in await session.execute("mv_list", (shard,), level):
            _, qid, bucket, part, ticks, sfx, since, token, target, tpart = row
            if done >= budget:
                break
            if (since or 0) > now_ms - MOVE_GRACE_MS:
                continue
            found = await session.execute("m_rows", (qid, bucket, [(part, ticks, sfx)]), level)
            source = found[0] if found else (part, ticks, sfx, "", "", 0, 0, 0, 0, 0)
            move = Move(qid, bucket, source, token, target or 0, tpart or 1)
            if found and source[8] == -token:
                await self._dead_letters.finish(move, level, recovering=True)
            else:  # never won, or finished but for this row
                await self._dead_letters.drop(move, level)
            done += 1
        return done

    async def _dead(self, shard: int, budget: int) -> int:
        """Delete up to ``budget`` messages of deleted queues, a bucket at a time."""
        session, level = self._session, self._session.meta_level
        removed = 0
        for (qid,) in await session.execute("d_list", (shard,), level):
            for (bucket,) in await session.execute("b_all", (qid,), level):
                rows = await session.execute("m_scan", (qid, bucket, budget - removed + 1), level)
                if len(rows) > budget - removed:  # more than the budget: part of the bucket
                    rows = rows[: budget - removed]
                    await session.execute("m_delete_upto", (qid, bucket, *rows[-1]), level)
                    return removed + len(rows)
                removed += len(rows)
                await session.execute("m_drop", (qid, bucket), level)
                await session.execute("b_delete", (qid, bucket), level)
                if removed >= budget:
                    return removed
            await asyncio.gather(
                session.execute("w_drop", (qid,), level),
                session.execute("dl_drop", (qid,), level),
                session.execute("fl_drop", (qid,), level),
            )
            await session.execute("d_delete", (shard, qid), level)
        return removed


def _ended(
    queue: Queue, keys: list[Key], rows: dict[Key, Row], token: int, now_ms: int, room: int
) -> tuple[int, list[Key], list[Row]]:
    """Of the listed ``keys``, up to ``room`` whose lease of the claim ``token`` ended: how
    many, the keys not looked at, and the rows of those that are exhausted."""
    maxd = queue.settings.max_deliveries
    acted = 0
    exhausted: list[Row] = []
    for position, key in enumerate(keys):
        if acted >= room:
            return acted, keys[position:], exhausted
        row = rows.get(key)
        if row is None or not _lease_ended(row, token, now_ms):
            continue
        acted += 1
        if maxd > 0 and (row[7] or 0) >= maxd:
            exhausted.append(row)
    return acted, [], exhausted


def _lease_ended(row: Row, token: int, now_ms: int) -> bool:
    """Whether ``row`` is live and still under the claim ``token``, whose lease ended (not
    claimed again, expired or extended)."""
    if row[8] != token or row[5] is None or row[5] <= now_ms:
        return False  # claimed again, or expired (the expiry's business)
    return 0 < (row[9] or 0) <= now_ms
