"""Claims, acks and extensions: lightweight transactions on message rows, conditional on the
claim columns a claim read (see ``docs/storage-cassandra.md``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from queuey.core.models import Claim, ClaimRef, Queue, new_claim_token
from queuey.core.observer import Observer
from queuey.storage.cassandra.candidates import Cursor, Pool
from queuey.storage.cassandra.changes import ChangeLog
from queuey.storage.cassandra.combiner import Combiner, Op, gone, holding, never, tokened, unchanged
from queuey.storage.cassandra.deadletters import DeadLetters, Move
from queuey.storage.cassandra.floors import Floors, Position
from queuey.storage.cassandra.index import ExpiryIndex
from queuey.storage.cassandra.messages import BUCKET_PAGE
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.rows import (
    Key,
    Row,
    by_bucket,
    keys_in_order,
    message,
    ref_key,
    ttl_until,
)
from queuey.storage.cassandra.session import Session
from queuey.storage.cassandra.taken import TakenRows
from queuey.storage.keys import sfx_of

Leased = dict[int, list[tuple[Key, int]]]  # bucket -> (key, message expiry) of a claim's leases


@dataclass(eq=False)
class _Job:
    """One claim call in progress."""

    queue: Queue
    token: int
    now_ms: int
    cexp: int
    need: int
    remove: bool
    read_level: str
    write_level: str
    claims: list[Claim] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)


class Claims:
    def __init__(
        self,
        session: Session,
        queues: Queues,
        floors: Floors,
        combiner: Combiner,
        dead_letters: DeadLetters,
        index: ExpiryIndex,
        changes: ChangeLog,
        observer: Observer,
    ) -> None:
        self._session = session
        self._queues = queues
        self._floors = floors
        self._combiner = combiner
        self._dead_letters = dead_letters
        self._index = index
        self._changes = changes
        self._observer = observer
        self._taken = TakenRows()
        self._pools = floors.pools

    async def claim(
        self,
        queue: Queue,
        partitions: Sequence[int],
        limit: int,
        now_ms: int,
        lease_ms: int,
        remove: bool,
    ) -> list[Claim]:
        parts = sorted({p for p in partitions if 1 <= p <= queue.partitions})
        if not parts or limit <= 0:
            return []
        read_level, write_level = self._session.levels_of(queue)
        current = await self._queues.current(queue, read_level)
        if current is None:
            return []
        starts, due = await self._floors.refresh(queue.qid, parts, read_level)
        job = _Job(
            queue=current, token=new_claim_token(), now_ms=now_ms,
            cexp=now_ms + lease_ms, need=limit, remove=remove, read_level=read_level,
            write_level=write_level,
        )  # fmt: skip
        outcomes = await asyncio.gather(
            self.walk(job, starts),
            self._floors.raise_floors(queue.qid, due, now_ms, read_level, write_level),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        await self._complete(job)
        return sorted(job.claims, key=lambda c: (c.message.ticks, sfx_of(c.message.id)))

    async def _complete(self, job: _Job) -> None:
        """Finish the dead-letter moves the claim won."""
        await asyncio.gather(
            *(self._dead_letters.finish(move, job.write_level) for move in job.moves)
        )
        if job.moves:
            self._observer.event(job.queue.app, "dead_lettered", len(job.moves))

    async def walk(self, job: _Job, starts: dict[int, Position | None]) -> None:
        """Claim over the queue's buckets in order, each from the parts' floors (``starts``)
        on."""
        qid = job.queue.qid
        known = [s[0] >> 32 for s in starts.values() if s is not None]
        start = min(known) if len(known) == len(starts) else -(1 << 63)
        if known and len(known) == len(starts):
            # Nothing comes before the lowest floor's bucket: claim there at once, and read
            # the registry only when that bucket does not hold enough.
            await self._claim_in(job, starts, start)
            start += 1
        while job.need > 0:
            rows = await self._session.execute("b_asc", (qid, start, BUCKET_PAGE), job.read_level)
            buckets = [row[0] for row in rows]
            for bucket in buckets:
                await self._claim_in(job, starts, bucket)
                if job.need <= 0:
                    return
            if len(buckets) < BUCKET_PAGE:
                return
            start = buckets[-1] + 1

    async def _claim_in(self, job: _Job, starts: dict[int, Position | None], bucket: int) -> None:
        here = _cursors(starts, bucket)
        if here:
            qid, now = job.queue.qid, job.now_ms
            pools = {p: self._pools.pool(qid, bucket, p, start, now) for p, start in here.items()}
            candidates = partial(self._candidates, job, bucket)
            take = partial(self._take, job, bucket)
            await _BucketClaim(job, pools, self._taken, candidates, take).run()

    def _candidates(
        self, job: _Job, bucket: int, part: int, cursor: Cursor | None, limit: int
    ) -> asyncio.Future[list[Row]]:
        """Available messages of one part of a bucket from ``cursor`` on (CLAIM_COLUMNS)."""
        params: list[Any] = [job.queue.qid, bucket, part]
        kind = None
        if cursor is not None:
            params += cursor[:2]
            kind = cursor[2]
        now = job.now_ms
        params += [now, now, now, limit]
        return self._session.execute(f"c_scan_{kind}", params, job.read_level)

    async def _take(self, job: _Job, bucket: int, chosen: list[Row], exhausted: list[Row]) -> None:
        """Claim ``chosen`` and start moving ``exhausted`` to the dead-letter queue, in one
        conditional batch; a row whose claim columns changed since it was read is someone
        else's now and is passed over."""
        qid = job.queue.qid
        with self._taken.taking(qid, [row[:3] for row in chosen + exhausted]):
            moves = await self._dead_letters.prepare(job.queue, bucket, exhausted, job.now_ms)
            ops = [self._claim_op(job, bucket, row) for row in chosen]
            ops += [self._dead_letters.win_op(move, job.now_ms) for move in moves]
            taking = self._combiner.run(qid, bucket, ops, job.write_level)
            if job.remove or not chosen:
                results = await taking
            else:
                # The leases are indexed beside the transaction, not after it: a row listed
                # for a message this claim did not take is passed over by the sweep, which
                # acts only on messages still held by the claim's token.
                leases = {bucket: [(row[:3], row[5]) for row in chosen]}
                lease = self._index.lease(job.queue, job.token, job.cexp, leases, job.now_ms)
                results, _ = await asyncio.gather(taking, lease)
        claimed = [row for row, ok in zip(chosen, results, strict=False) if ok]
        self._taken.took(qid, [row[:3] for row in claimed], job.cexp)
        for row in claimed:
            part, ticks, sfx, body, ctype, expires, due, dlv = row[:8]
            m = message(part, ticks, sfx, body, ctype, expires, due, (dlv or 0) + 1)
            job.claims.append(Claim(m, job.token, job.cexp))
            job.need -= 1
        failed: list[Move] = []
        for move, ok in zip(moves, results[len(chosen) :], strict=True):
            (job.moves if ok else failed).append(move)
        await asyncio.gather(*(self._dead_letters.drop(move, job.write_level) for move in failed))

    def _claim_op(self, job: _Job, bucket: int, row: Row) -> Op:
        part, ticks, sfx, _, _, expires, _, dlv, ctok, cexp = row
        where = (job.queue.qid, bucket, part, ticks, sfx)
        if job.remove:  # at most once: the claim deletes the message
            return self._combiner.op(
                row[:3], "c_take", (*where, expires, ctok, cexp),
                unchanged(expires, ctok, cexp), never,
            )  # fmt: skip
        params = (
            ttl_until(expires, job.now_ms), job.token, job.cexp, (dlv or 0) + 1,
            *where, expires, ctok, cexp,
        )  # fmt: skip
        return self._combiner.op(
            row[:3], "c_claim", params, unchanged(expires, ctok, cexp), tokened(job.token)
        )

    async def ack(self, queue: Queue, claims: Sequence[ClaimRef], now_ms: int) -> list[bool]:
        qid = queue.qid
        ops: list[Op | None] = []
        for ref in claims:
            key = ref_key(ref)
            if key is None:
                ops.append(None)
                continue
            params = (qid, key[1] >> 32, *key, ref.token, now_ms)
            ops.append(self._combiner.op(key, "c_ack", params, holding(ref.token, now_ms), gone))
        done = await self._run(qid, ops, self._session.levels_of(queue)[1])
        for op, ok in zip(ops, done, strict=True):
            if ok and op is not None:
                self._taken.acked(qid, op.key)
        return done

    async def current(
        self, queue: Queue, ids: Sequence[tuple[int, str]], now_ms: int
    ) -> list[ClaimRef | None]:
        """The current claim of each (partition, id), None where there is none."""
        level = self._session.levels_of(queue)[0]
        alive, rows = await asyncio.gather(
            self._queues.alive(queue, level), self._key_rows(queue, keys_in_order(ids), level)
        )
        tokens: dict[Key, int] = {}
        for part, ticks, sfx, expires, _, ctok, cexp in rows if alive else []:
            # A negative token marks a dead-letter move in progress, not a claim.
            live = expires is not None and expires > now_ms
            if live and (ctok or 0) > 0 and (cexp or 0) > now_ms:
                tokens[part, ticks, sfx] = ctok
        found: list[ClaimRef | None] = []
        for partition, message_id in ids:
            key = ref_key(ClaimRef(partition, message_id, 0))
            token = tokens.get(key) if key is not None else None
            found.append(None if token is None else ClaimRef(partition, message_id, token))
        return found

    def untaken(self, qid: int, claims: Sequence[ClaimRef]) -> None:
        """The claims' rows were stored again: claims of this process take them at once."""
        for ref in claims:
            key = ref_key(ref)
            if key is not None:
                self._taken.acked(qid, key)

    async def extend(
        self,
        queue: Queue,
        claims: Sequence[ClaimRef],
        now_ms: int,
        lease_ms: int,
        uncount: bool = False,
    ) -> list[bool]:
        """Make current claims' leases end at ``now_ms + lease_ms``; with ``uncount`` (an
        un-claim, lease 0) their messages' deliveries also go back down by one."""
        read_level, write_level = self._session.levels_of(queue)
        cexp = now_ms + lease_ms
        keys = [ref_key(ref) for ref in claims]
        rows = await self._key_rows(queue, [key for key in keys if key is not None], read_level)
        state = {row[:3]: row for row in rows}
        ops = [
            self._extend_op(queue.qid, ref, key, state, now_ms, cexp, uncount)
            for ref, key in zip(claims, keys, strict=True)
        ]
        done = await self._run(queue.qid, ops, write_level)
        leases: dict[int, Leased] = {}
        for ref, key, ok in zip(claims, keys, done, strict=True):
            if ok and key is not None:
                self._taken.extended(queue.qid, key, cexp)
                by_token = leases.setdefault(ref.token, {})
                by_token.setdefault(key[1] >> 32, []).append((key, state[key][3]))
        freed = lease_ms <= 0 and leases  # available again: every server's waiters hear of it
        if freed:
            self._pools.written(
                queue.qid, [k for k, ok in zip(keys, done, strict=True) if k and ok]
            )
        await asyncio.gather(
            *(
                self._index.lease(queue, token, cexp, leased, now_ms)
                for token, leased in leases.items()
            ),
            *([self._changes.record(queue.app, queue.name, write_level)] if freed else []),
        )
        return done

    async def _key_rows(self, queue: Queue, keys: Sequence[Key], level: str) -> list[Row]:
        """The claim state (``m_keys``'s columns) of the stored messages among ``keys``."""
        replies = await asyncio.gather(
            *(
                self._session.execute("m_keys", (queue.qid, b, ks), level)
                for b, ks in by_bucket(keys).items()
            )
        )
        return [row for rows in replies for row in rows]

    def _extend_op(
        self,
        qid: int,
        ref: ClaimRef,
        key: Key | None,
        state: dict[Key, Row],
        now_ms: int,
        cexp: int,
        uncount: bool,
    ) -> Op | None:
        """The statement that extends (or un-claims) one claim; None (no statement) unless it
        is current."""
        row = state.get(key) if key is not None else None
        if key is None or row is None or row[3] is None or row[5] != ref.token:
            return None
        if (row[6] or 0) <= now_ms:
            return None
        where = (qid, key[1] >> 32, *key, ref.token, now_ms)
        ttl = ttl_until(row[3], now_ms)
        params: tuple[int, ...] = (ttl, cexp, *where)
        statement = "c_extend"
        if uncount:
            statement, params = "c_unclaim", (ttl, cexp, max((row[4] or 0) - 1, 0), *where)
        return self._combiner.op(
            key, statement, params, holding(ref.token, now_ms), tokened(ref.token, cexp)
        )

    async def _run(self, qid: int, ops: list[Op | None], level: str) -> list[bool]:
        """Run the ops, a bucket's at once; per op, whether it was applied (False for None)."""
        groups: dict[int, list[Op]] = {}
        for op in ops:
            if op is not None:
                groups.setdefault(op.key[1] >> 32, []).append(op)
        await asyncio.gather(
            *(self._combiner.run(qid, bucket, group, level) for bucket, group in groups.items())
        )
        return [op is not None and op.future.result() for op in ops]


def _cursors(starts: dict[int, Position | None], bucket: int) -> dict[int, Cursor | None]:
    """Where the parts' scans of ``bucket`` start: the parts whose floor is in or below it."""
    here: dict[int, Cursor | None] = {}
    for part, floor in starts.items():
        if floor is None or floor[0] >> 32 < bucket:
            here[part] = None
        elif floor[0] >> 32 == bucket:
            here[part] = (floor[0], floor[1], True)
    return here


class _BucketClaim:
    """Claims from one bucket, oldest (ticks, id) first over its parts, until the job has what
    it needs or the bucket has no more available messages. The parts' candidates come from this
    process's pools (:mod:`queuey.storage.cassandra.candidates`), which concurrent claims share."""

    def __init__(
        self,
        job: _Job,
        pools: dict[int, Pool],
        taken: TakenRows,
        read: Callable[[int, Cursor | None, int], Awaitable[list[Row]]],
        take: Callable[[list[Row], list[Row]], Awaitable[None]],
    ) -> None:
        self._job = job
        self._pools = pools
        self._taken = taken
        self._read = read
        self._take = take
        self._more = set(pools)  # parts whose rows past their pool's cursor are not read yet

    async def run(self) -> None:
        job = self._job
        while job.need > 0:
            refill = [part for part in sorted(self._more) if not self._pools[part].rows]
            if refill:
                await self._refill(refill)
                continue
            chosen, exhausted = self._choose()
            if not chosen and not exhausted:
                if not self._more:
                    return
                continue
            await self._take(chosen, exhausted)

    async def _refill(self, parts: list[int]) -> None:
        job = self._job
        # A pool's first read also skips the rows this process's claims are taking.
        extra = self._taken.inflight(job.queue.qid)
        more = await asyncio.gather(
            *(self._pools[p].fill(job.need, extra, partial(self._read, p)) for p in parts)
        )
        for part, left in zip(parts, more, strict=True):
            if not left:
                self._more.discard(part)

    def _choose(self) -> tuple[list[Row], list[Row]]:
        """Take rows off the pools, oldest first: the ones to claim and the exhausted ones to
        dead-letter, until the job has enough or a pool of a part with more rows runs out."""
        job, pools = self._job, self._pools
        qid, taken, now = job.queue.qid, self._taken, job.now_ms
        maxd = job.queue.settings.max_deliveries
        loop_now = asyncio.get_running_loop().time()
        chosen: list[Row] = []
        exhausted: list[Row] = []
        while len(chosen) < job.need:
            heads = [part for part, pool in pools.items() if pool.rows]
            if not heads:
                break
            part = min(heads, key=lambda p: pools[p].rows[0][1:3])
            rows = pools[part].rows
            row = rows.popleft()
            if not (row[5] > now and (row[6] or 0) <= now and (row[9] or 0) <= now):
                pass  # read by a claim of another time: not available at this claim's
            elif taken.passed_over(qid, row[:3], now, loop_now):
                pass  # another claim of this process is taking it, or took it since it was read
            elif maxd > 0 and (row[7] or 0) >= maxd:
                exhausted.append(row)
            else:
                chosen.append(row)
            if not rows and part in self._more:
                break  # its next rows may come before the other parts' heads
        return chosen, exhausted
