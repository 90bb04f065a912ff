"""Deduplicated posts: a dedup id's row is taken (a lightweight transaction) before its message
is written and marked ``stored`` after, so "duplicate" is answered only with a message that
is stored. The window is measured on the caller's clock, never on Cassandra TTLs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from queuey.core.errors import QueueNotFound, StorageUnavailable
from queuey.core.models import Message, Queue
from queuey.storage.cassandra.messages import Messages
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.rows import Named, key_of, message, ttl_until
from queuey.storage.cassandra.session import Session, unknown_outcome

log = logging.getLogger("queuey.cassandra")

DEDUP_STALE_MS = 60_000  # a dedup id claimed by a post that stored nothing for this long is free
DEDUP_POLL_S = 0.05
DEDUP_TRIES = 40  # about two seconds of waiting for another post of the same dedup id


class Dedup:
    def __init__(self, session: Session, queues: Queues, messages: Messages) -> None:
        self._session = session
        self._queues = queues
        self._messages = messages

    async def write_unique(
        self,
        queue: Queue,
        messages: Sequence[Message],
        dedup_ids: Sequence[str | None],
        now_ms: int,
        window_ms: int,
    ) -> list[Message | None]:
        batch, ids = list(messages), list(dedup_ids)
        if not await self._queues.alive(queue, self._session.levels_of(queue)[0]):
            raise QueueNotFound()
        until = now_ms + window_ms
        firsts: dict[str, Message] = {}
        for m, dedup_id in zip(batch, ids, strict=True):
            if dedup_id is not None:
                firsts.setdefault(dedup_id, m)
        owned, earlier = await self._take_all(queue, firsts, now_ms, until)
        result: list[Message | None] = []
        stored: list[Message] = []
        for m, dedup_id in zip(batch, ids, strict=True):
            first = None if dedup_id is None else earlier.get(dedup_id, firsts[dedup_id])
            if first is None or first is m:
                stored.append(m)
                result.append(None)
            else:
                result.append(first)
        try:
            await self._messages.write(queue, stored, replace=False, fresh=False)
        except BaseException:
            await self._release(queue, owned, firsts)
            raise
        await self._confirm(queue, owned, firsts, now_ms, until)
        return result

    async def _take_all(
        self, queue: Queue, firsts: dict[str, Message], now_ms: int, until: int
    ) -> tuple[list[str], dict[str, Message]]:
        """Take every dedup id for its first message: the ids taken, and the messages that
        have the others (all given back if one fails)."""
        outcomes = await asyncio.gather(
            *(self._take(queue, d, m, now_ms, until) for d, m in firsts.items()),
            return_exceptions=True,
        )
        owned = [d for d, outcome in zip(firsts, outcomes, strict=True) if outcome is None]
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            await self._release(queue, owned, firsts)
            raise failure
        earlier = {
            d: outcome
            for d, outcome in zip(firsts, outcomes, strict=True)
            if isinstance(outcome, Message)
        }
        return owned, earlier

    async def _take(
        self, queue: Queue, dedup_id: str, first: Message, now_ms: int, until: int
    ) -> Message | None:
        """Make ``dedup_id`` this message's (None), or return the message that has it.

        A row whose message is not there yet belongs to a post in progress: waited for, and
        taken over once older than DEDUP_STALE_MS (its post failed without releasing it)."""
        level = self._session.levels_of(queue)[1]
        key = key_of(first)
        ttl = ttl_until(until, now_ms)
        for _ in range(DEDUP_TRIES):
            try:
                rows = await self._session.named(
                    "dd_insert", (queue.qid, dedup_id, until, *key, now_ms, ttl), level
                )
            except StorageUnavailable as error:
                if not unknown_outcome(error):
                    raise
                continue  # the next attempt shows whether this one took the id
            row = rows[0]
            if row["[applied]"] or (row["part"], row["ticks"], row["sfx"]) == key:
                return None
            holder = message(row["part"], row["ticks"], row["sfx"], "", "", 0)
            stored, free = await self._holder_state(queue, row, holder, now_ms)
            if free:
                if await self._take_over(queue, dedup_id, row, first, now_ms, until):
                    return None
                continue
            if stored:
                return holder
            await asyncio.sleep(DEDUP_POLL_S)  # another post of this id is being written
        raise StorageUnavailable(
            "Back-end storage unavailable: another post with this dedup id is being stored."
        )

    async def _holder_state(
        self, queue: Queue, row: Named, holder: Message, now_ms: int
    ) -> tuple[bool, bool]:
        """Whether the message ``holder`` that has a dedup row is stored, and whether the row
        is free: its window ended, or its post stored nothing for DEDUP_STALE_MS."""
        stored = bool(row["stored"])
        free = row["until"] <= now_ms
        if not free and not stored:
            stored = await self._messages.stored(queue, key_of(holder))
            free = not stored and (row["since"] or 0) <= now_ms - DEDUP_STALE_MS
        return stored, free

    async def _take_over(
        self, queue: Queue, dedup_id: str, row: Named, first: Message, now_ms: int, until: int
    ) -> bool:
        """Take a free dedup row (its window ended, or its post failed) if it is still as
        read; whether it was taken (False also when the outcome is unknown)."""
        params = (
            ttl_until(until, now_ms), until, *key_of(first), now_ms, queue.qid, dedup_id,
            row["until"], row["ticks"], row["sfx"], row["stored"],
        )  # fmt: skip
        try:
            taken = await self._session.named("dd_take", params, self._session.levels_of(queue)[1])
        except StorageUnavailable as error:
            if not unknown_outcome(error):
                raise
            return False
        return bool(taken[0]["[applied]"])

    async def _confirm(
        self, queue: Queue, owned: list[str], firsts: dict[str, Message], now_ms: int, until: int
    ) -> None:
        """Mark the ids taken as stored."""
        level = self._session.levels_of(queue)[1]
        ttl = ttl_until(until, now_ms)
        confirms = await asyncio.gather(
            *(
                self._session.named("dd_confirm", (ttl, queue.qid, d, *key_of(firsts[d])), level)
                for d in owned
            ),
            return_exceptions=True,
        )
        for outcome in confirms:
            if isinstance(outcome, StorageUnavailable):
                # The message is stored: a later post with the id finds it and is a duplicate.
                log.debug("a dedup id stays unconfirmed: %s", outcome)
            elif isinstance(outcome, BaseException):
                raise outcome

    async def _release(self, queue: Queue, owned: list[str], firsts: dict[str, Message]) -> None:
        """Give back dedup ids taken by a post that failed (best effort: an id left taken is
        free again after DEDUP_STALE_MS)."""
        level = self._session.levels_of(queue)[1]
        await asyncio.gather(
            *(
                self._session.named("dd_release", (queue.qid, d, *key_of(firsts[d])), level)
                for d in owned
            ),
            return_exceptions=True,
        )
