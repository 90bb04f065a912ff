"""Claim floors: per queue partition, a position below which no row is, or can become,
available, so claims do not read through the tombstones of acknowledged messages."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from queuey.core.errors import StorageUnavailable
from queuey.core.ids import ticks_from_ns
from queuey.storage.cassandra.candidates import Pools
from queuey.storage.cassandra.rows import Key
from queuey.storage.cassandra.session import Session
from queuey.storage.keys import SFX_MIN

log = logging.getLogger("queuey.cassandra")

FLOOR_MARGIN_MS = 2_000  # claim scans never skip messages stamped within this of now
FLOOR_REFRESH_S = 1.0  # how often a process reads (and tries to raise) a claim floor
FLOOR_TRIES = 8
FLOOR_SCAN = 64  # rows one floor query looks at
FLOOR_BUCKETS = 4  # buckets one floor refresh walks at most
_REMEMBERED = 100_000  # floors this process keeps copies of
_BOTTOM = (-(1 << 63), SFX_MIN)  # a claim floor below every message

Position = tuple[int, int]  # (ticks, sfx)


@dataclass(eq=False)
class Floor:
    """This process's copy of a queue partition's claim floor (its ``floors`` row): where
    claim scans start, as no row below ``position`` can become available."""

    position: Position | None  # None: no floor yet, scans start at the first bucket
    touched: uuid.UUID | None  # the row's version (None: no row)
    checked: float  # event-loop time it was read or set


class Floors:
    """This process's copies of the claim floors, read at most every FLOOR_REFRESH_S, raised
    past what is gone, and lowered under messages written below them.

    A floor skips only rows that are gone or can never be available again (expired, or being
    dead-lettered): claimed and delayed rows stop it, and so does the time FLOOR_MARGIN_MS
    before now, as messages stamped since may still be on their way. Every message that may
    land below a floor lowers it once written (:meth:`lower`). The row's ``touched`` version
    makes a raise conditional on nothing having lowered the floor since it was read, so a raise
    never passes a message written meanwhile."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.pools = Pools()  # where this process's claim scans go on past the floors
        self._floors: dict[tuple[int, int], Floor] = {}  # (qid, part) -> floor
        # Per queue: the lowering waiting for its turn (lowest position per part, its future,
        # the write level), and the task sending this process's lowerings of the queue.
        self._waiting: dict[int, tuple[dict[int, Position], asyncio.Future[None], str]] = {}
        self._loading: dict[int, asyncio.Future[None]] = {}  # per queue: a read of its floors
        self._lowering: dict[int, asyncio.Task[None]] = {}

    def floor(self, qid: int, part: int) -> Floor | None:
        """This process's copy of a floor, if it has one."""
        return self._floors.get((qid, part))

    async def refresh(
        self, qid: int, parts: list[int], level: str
    ) -> tuple[dict[int, Position | None], list[tuple[int, Floor]]]:
        """Where claim scans of ``parts`` start, after reading the floors that are due to be
        read again (or were never read); and those, which :meth:`raise_floors` may raise."""
        loop = asyncio.get_running_loop()
        loop_now = loop.time()
        due = []
        for part in parts:
            floor = self._floors.get((qid, part))
            if floor is None or loop_now - floor.checked >= FLOOR_REFRESH_S:
                due.append(part)
        loading = self._loading.get(qid)
        if due and loading is not None:
            # Another claim of this process is reading (then raising) the queue's floors: this
            # one starts from the copies it has, and waits only for those it lacks.
            due = []
            if any((qid, part) not in self._floors for part in parts):
                await asyncio.shield(loading)
        if due or any((qid, part) not in self._floors for part in parts):
            future = self._loading[qid] = loop.create_future()
            future.add_done_callback(_retrieved)  # its waiters may all have been cancelled
            try:
                await self._load(qid, parts, level, loop_now)
            except BaseException as exc:
                future.set_exception(exc)
                raise
            else:
                future.set_result(None)
            finally:
                del self._loading[qid]
        starts = {part: self._floors[qid, part].position for part in parts}
        return starts, [(part, self._floors[qid, part]) for part in due]

    async def _load(self, qid: int, parts: list[int], level: str, loop_now: float) -> None:
        rows = await self._session.execute("fl_read", (qid,), level)
        if len(self._floors) > _REMEMBERED:
            self._floors.clear()
        found = {part: Floor((ticks, sfx), touched, loop_now) for part, ticks, sfx, touched in rows}
        for part in parts:
            self._floors[qid, part] = found.get(part) or Floor(None, None, loop_now)
        for part, floor in found.items():
            self._floors[qid, part] = floor

    async def raise_floors(
        self, qid: int, due: list[tuple[int, Floor]], now_ms: int, read_level: str, write_level: str
    ) -> None:
        """Move the floors ``due`` (as :meth:`refresh` read them) up to their first row
        that is or may become available, so a process that starts, or has not claimed from
        the queue for a while, starts where the others are. An optimisation: when it fails,
        claims go on from the floors they have."""
        if not due:
            return
        parts = [part for part, _ in due]
        floors = [floor for _, floor in due]
        margin = (ticks_from_ns((now_ms - FLOOR_MARGIN_MS) * 1_000_000), SFX_MIN)
        try:
            found = await asyncio.gather(
                *(
                    self._first_live(qid, part, floor.position, now_ms, margin, read_level)
                    for part, floor in zip(parts, floors, strict=True)
                )
            )
            moves = []
            for part, floor, first in zip(parts, floors, found, strict=True):
                position = min(first, margin)
                if floor.position is None or position > floor.position:
                    moves.append(self.move(qid, part, floor, position, write_level))
            await asyncio.gather(*moves)
        except StorageUnavailable as error:
            log.debug("claim floors of queue %d not raised: %s", qid, error)
            for part in parts:
                self._floors.pop((qid, part), None)

    async def move(self, qid: int, part: int, floor: Floor, position: Position, level: str) -> bool:
        """Set a claim floor if its row is still as ``floor`` saw it; whether it was set (this
        process's copy follows the row: it is set, or dropped to be read again)."""
        touched = uuid.uuid4()
        if floor.touched is None:
            params: tuple[Any, ...] = (qid, part, *position, touched)
            rows = await self._session.named("fl_create", params, level)
        else:
            params = (*position, touched, qid, part, floor.touched)
            rows = await self._session.named("fl_move", params, level)
        applied = bool(rows and rows[0]["[applied]"])
        if applied and self._floors.get((qid, part)) is floor:
            floor.position, floor.touched = position, touched
        else:
            self._floors.pop((qid, part), None)
        return applied

    async def lower(self, qid: int, keys: Iterable[Key], level: str, every: bool) -> None:
        """Lower the floors of ``qid`` to the messages just written (``keys``): of every part
        written when ``every``, else of the parts written below this process's floors.

        Lowerings of one queue are sent one round at a time: the ones asked for meanwhile are
        merged (lowest position per part) and sent together next, so concurrent writes do not
        race each other's transactions on the queue's floors."""
        self.pools.written(qid, keys)
        lowest = _lowest(keys)
        if not every:
            lowest = {part: key for part, key in lowest.items() if self._below(qid, part, key)}
        if not lowest:
            return
        waiting = self._waiting.get(qid)
        if waiting is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)  # its waiters may all have been cancelled
            waiting = self._waiting[qid] = (lowest, future, level)
            if qid not in self._lowering:
                task = asyncio.get_running_loop().create_task(self._lower_queue(qid))
                self._lowering[qid] = task
        else:
            merged = waiting[0]
            for part, key in lowest.items():
                if part not in merged or key < merged[part]:
                    merged[part] = key
        await asyncio.shield(waiting[1])

    async def _lower_queue(self, qid: int) -> None:
        """Run the lowerings waiting for ``qid``, a round at a time, until none is left."""
        try:
            while qid in self._waiting:
                lowest, future, level = self._waiting.pop(qid)
                try:
                    for _ in range(FLOOR_TRIES):
                        if not lowest:
                            break
                        lowest = await self._lower_once(qid, lowest, level)
                    else:
                        raise StorageUnavailable(
                            "Back-end storage unavailable: the claim floors keep changing."
                        )
                except BaseException as exc:
                    if not future.done():
                        future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    if not future.done():
                        future.set_result(None)
        finally:
            del self._lowering[qid]

    async def _lower_once(
        self, qid: int, lowest: dict[int, Position], level: str
    ) -> dict[int, Position]:
        """Try to lower the floors of the parts of ``lowest`` once; the parts still to do."""
        rows = await self._session.execute("fl_read", (qid,), level)
        loop_now = asyncio.get_running_loop().time()
        current = {part: Floor((t, s), v, loop_now) for part, t, s, v in rows}
        moves = []
        for part, key in lowest.items():
            floor = current.get(part) or Floor(None, None, loop_now)
            # Without a floor there is nothing to lower, but a claim may be making the first
            # one from a scan that missed these messages: a floor at the bottom makes that
            # creation fail.
            position = _BOTTOM if floor.position is None else min(key, floor.position)
            moves.append(self.move(qid, part, floor, position, level))
        moved = await asyncio.gather(*moves, return_exceptions=True)
        left = {}
        for (part, key), outcome in zip(lowest.items(), moved, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, StorageUnavailable):
                raise outcome
            if outcome is not True:
                left[part] = key
            self._floors.pop((qid, part), None)
        return left

    def _below(self, qid: int, part: int, position: Position) -> bool:
        floor = self._floors.get((qid, part))
        return floor is not None and floor.position is not None and position < floor.position

    async def _first_live(
        self,
        qid: int,
        part: int,
        start: Position | None,
        now_ms: int,
        margin: Position,
        level: str,
    ) -> Position:
        """The position of the first row of ``part`` from ``start`` on that is or may become
        available, or as far as a few queries got."""
        session = self._session
        position = start
        first = start[0] >> 32 if start is not None else -(1 << 63)
        buckets = await session.execute("b_asc", (qid, first, FLOOR_BUCKETS), level)
        for (bucket,) in buckets:
            lowest = (bucket << 32, SFX_MIN)
            if position is None or position < lowest:
                position = lowest
            position, final = await self._scan(qid, bucket, part, position, now_ms, level)
            if final:
                return position
            end = ((bucket + 1) << 32, SFX_MIN)
            if end > margin:
                return margin  # the bucket may still get messages
            position = end
        if len(buckets) == FLOOR_BUCKETS and position is not None:
            return position
        return margin

    async def _scan(
        self, qid: int, bucket: int, part: int, position: Position, now_ms: int, level: str
    ) -> tuple[Position, bool]:
        """Scan ``part`` of one bucket from ``position``: the first row that is or may become
        available (True), else how far the scan got (True if it read a full page)."""
        params = (qid, bucket, part, *position, FLOOR_SCAN)
        rows = await self._session.execute("f_scan", params, level)
        for ticks, sfx, expires, ctok in rows:
            if expires is not None and expires > now_ms and (ctok or 0) >= 0:
                return (ticks, sfx), True
            position = (ticks, sfx)  # expired, or being dead-lettered
        return position, len(rows) == FLOOR_SCAN


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _lowest(keys: Iterable[Key]) -> dict[int, Position]:
    """The lowest position written, per part."""
    lowest: dict[int, Position] = {}
    for part, ticks, sfx in keys:
        if part not in lowest or (ticks, sfx) < lowest[part]:
            lowest[part] = (ticks, sfx)
    return lowest
