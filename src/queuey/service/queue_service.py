"""QueueService: Queuey's use cases. Rights, validation, ids and TTLs are decided here; storage
only stores. The HTTP layer hands in raw parameters and renders what comes back."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TypeVar

from queuey.core.clock import Clock
from queuey.core.errors import InvalidMessageID, InvalidRequest, QueueExists, QueueNotFound
from queuey.core.ids import ticks_of
from queuey.core.limits import Limits
from queuey.core.models import (
    Caller,
    Claim,
    ClaimRef,
    Message,
    Queue,
    QueueSettings,
    QueueStats,
)
from queuey.core.observer import Observer
from queuey.core.quotas import QuotaSettings
from queuey.notify import Notifier
from queuey.service import maintenance
from queuey.service import params as parse
from queuey.service.bounded_read import Read, bounded_read
from queuey.service.claim_ids import all_current, parse_claim_ids, settle_claims
from queuey.service.posts import MessageFactory, NewMessages
from queuey.service.quotas import QuotaPolicy
from queuey.service.rights import Right, Rights
from queuey.service.sweeper import Sweeper
from queuey.service.tokens import Tokens
from queuey.service.waiting import Client, LongPoll
from queuey.storage.base import Storage

T = TypeVar("T")

# What a post returns: the messages (a duplicate's is the first one posted with its dedup id),
# and which of them are duplicates (None when no message carried a dedup id).
Posted = tuple[list[Message], list[bool] | None]


class QueueService:
    def __init__(
        self,
        storage: Storage,
        applications: Collection[str],
        clock: Clock,
        notifier: Notifier,
        limits: Limits | None = None,
        tokens: Tokens | None = None,
        quotas: QuotaSettings | None = None,
        observer: Observer | None = None,
    ) -> None:
        """``notifier`` carries "this queue changed" to waiting requests: the composition
        root builds the process's one. ``tokens`` mints and verifies tokens (default: with a
        secret of this process only). ``quotas``: the applications' quotas (default: none).
        ``observer`` (the metrics) hears of sweep runs."""
        self.storage = storage
        self.limits = limits = limits or Limits()
        self.tokens = tokens or Tokens([secrets.token_hex(32)], clock, limits.max_token_ttl)
        self.notifier = notifier
        self.sweeper = Sweeper(storage, clock, observer)
        self._clock = clock
        self._rights = Rights(storage, applications, limits.max_name_length)
        self._new = MessageFactory(limits, clock)
        self._long_poll = LongPoll(storage, self.notifier, clock)
        self.quotas = QuotaPolicy(storage, clock, quotas or QuotaSettings(), applications)

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, sweep_interval: float, sweep_batch: int) -> None:
        await self.storage.open()
        self.sweeper.start(sweep_interval, sweep_batch)
        self.quotas.start()

    async def stop(self) -> None:
        await self.notifier.stop()
        await self.sweeper.stop()
        await self.quotas.stop()
        await self.storage.close()

    @property
    def waiting_long_polls(self) -> int:
        """Reads and claims waiting for a message now."""
        return self._long_poll.waiting

    async def heartbeat(self) -> None:
        await self.storage.ping()

    async def queue(self, caller: Caller, app: str, name: str, right: Right) -> Queue:
        """The queue, if ``caller`` holds ``right`` on it (401/403/404 otherwise)."""
        return await self._rights.queue(caller, app, name, right)

    def now_ms(self) -> int:
        """The clock's time, epoch ms."""
        return self._clock.time_ns() // 1_000_000

    async def _changing(self, queue: Queue, write: Awaitable[T]) -> T:
        """Every write that may let a waiting request find something goes through here: once
        it is done, the queue's subscribers hear of it."""
        result = await write
        self.notifier.changed((queue.app, queue.name))
        return result

    # --- queues ----------------------------------------------------------------------------

    async def list_queues(
        self, caller: Caller, app: str, params: Mapping[str, str]
    ) -> tuple[list[str] | list[Queue], list[int] | None]:
        """``app``'s queue names (``offset`` inclusive), or with ``details`` or
        ``include_count`` its queues, and with ``include_count`` their live counts."""
        self._rights.require_owner(caller, app)
        asked = parse.list_params(params, self.limits)
        if not (asked.details or asked.include_count):
            return await self.storage.list_queue_names(app, asked.offset, asked.limit), None
        queues = await self.storage.list_queues(app, asked.offset, asked.limit)
        counts = None
        if asked.include_count:
            now_ms = self._now_ms()
            counts = [await self.storage.count_messages(q, now_ms) for q in queues]
        return queues, counts

    async def create_queue(
        self, caller: Caller, app: str, params: Mapping[str, object]
    ) -> tuple[Queue, bool]:
        """The queue, and whether this request created it. Creating a queue that exists is
        not an error when each setting ``params`` gives equals the existing queue's (then it
        is that queue, not created); otherwise QueueExists."""
        self._rights.require_owner(caller, app)
        name, settings = parse.new_queue(params, self.limits)
        await self._check_dead_letter_queue(app, name, settings)
        now = self._clock.time_ns() / 1e9
        try:
            async with self.quotas.creating(app, name):
                return await self.storage.create_queue(app, name, settings, now), True
        except QueueExists as exists:
            # The queue the store found in the way, not a later read: of concurrent creations
            # with the same settings, every one that lost sees the winner's settings.
            found = exists.existing
            if found is None or not parse.same_given_settings(params, settings, found.settings):
                raise
            return found, False

    async def update_queue(
        self, caller: Caller, app: str, name: str, params: Mapping[str, object]
    ) -> Queue:
        queue = await self._rights.queue(caller, app, name, Right.OWNER)
        settings = parse.queue_update(params, queue.settings, self.limits)
        await self._check_dead_letter_queue(app, name, settings)
        # e.g. resumed: waiting claims look again
        return await self._changing(queue, self.storage.update_queue(app, name, settings))

    async def _check_dead_letter_queue(self, app: str, name: str, settings: QueueSettings) -> None:
        target = settings.dead_letter_queue
        if target is None:
            return
        if target == name:
            message = "A queue cannot be its own dead-letter queue"
        elif await self.storage.get_queue(app, target) is None:
            message = f"{target!r} is not a queue of application {app!r}"
        else:
            return
        raise InvalidRequest({"dead_letter_queue": message})

    async def delete_queue(self, caller: Caller, app: str, name: str) -> None:
        await self._rights.queue(caller, app, name, Right.OWNER)
        if not await self.storage.delete_queue(app, name):
            raise QueueNotFound()
        self.notifier.changed((app, name))  # its streams end

    # --- messages --------------------------------------------------------------------------

    async def post_raw(
        self,
        caller: Caller,
        app: str,
        name: str,
        body: bytes,
        content_type: str | None,
        ttl: str | None,
        partition: str | None,
        delay: str | None = None,
        dedup_id: str | None = None,
    ) -> Posted:
        """Post one message whose body is the whole request body."""
        queue = await self._rights.queue(caller, app, name, Right.POST)
        new = self._new.raw(queue, body, content_type, ttl, partition, delay, dedup_id)
        return await self._post(queue, new)

    async def post_batch(self, caller: Caller, app: str, name: str, payload: object) -> Posted:
        """Post a JSON batch (see :meth:`MessageFactory.batch`): the whole batch is validated
        before anything is written."""
        queue = await self._rights.queue(caller, app, name, Right.POST)
        new = self._new.batch(queue, payload)
        if not new.messages:
            return [], None
        return await self._post(queue, new)

    async def _post(self, queue: Queue, new: NewMessages) -> Posted:
        if not self.quotas.limits_posts(queue.app):  # the hot path, without quotas
            return await self._write_new(queue, new)
        return await self._within_quotas(
            queue.app, new.messages, lambda: self._write_new(queue, new)
        )

    async def _within_quotas(
        self, app: str, messages: list[Message], write: Callable[[], Awaitable[T]]
    ) -> T:
        """``write()`` (of ``messages``), if ``app``'s quotas let it through."""
        if not self.quotas.limits_posts(app):
            return await write()
        added = await self.quotas.reserve(app, messages)
        stored = False
        try:
            result = await write()
            stored = True
            return result
        finally:
            self.quotas.settle(app, added, stored)

    async def _write_new(self, queue: Queue, new: NewMessages) -> Posted:
        messages, dedup_ids = new.messages, new.dedup_ids
        if dedup_ids is None or not queue.settings.dedup_window:
            await self._changing(queue, self.storage.write_messages(queue, messages, fresh=True))
            return messages, None
        window_ms = queue.settings.dedup_window * 1000
        firsts = await self._changing(
            queue, self.storage.write_unique(queue, messages, dedup_ids, self._now_ms(), window_ms)
        )
        return (
            [first or message for message, first in zip(messages, firsts, strict=True)],
            [first is not None for first in firsts],
        )

    async def read_messages(
        self,
        caller: Caller,
        app: str,
        name: str,
        params: Mapping[str, str],
        client: Client | None = None,
    ) -> Read:
        """Read messages (without those still in the settle window, and at most the read
        bound: :func:`bounded_read`), waiting up to ``wait`` s for one (not past the
        ``client``'s going away)."""
        queue = await self._rights.queue(caller, app, name, Right.READ)
        asked = parse.read_params(params, self.limits)
        if not asked.wait:
            return await self._read(queue, asked)
        with self.quotas.long_poll(app):
            read = await self._read(queue, asked)
            deadline = self._long_poll.deadline(asked.wait)
            # A message held back by the settle window is looked at again after a short pause.
            while not read.messages and await self._long_poll.wait(
                queue, deadline, 0.1 if read.held else None, client
            ):
                read = await self._read(queue, asked)
            return read

    async def _read(self, queue: Queue, asked: parse.ReadParams) -> Read:
        return await bounded_read(self.storage, self.limits, queue, asked, self._now_ms())

    async def get_messages(self, caller: Caller, app: str, name: str, ids: str) -> list[Message]:
        queue = await self._rights.queue(caller, app, name, Right.READ)
        pairs = parse.message_ids(ids, self.limits.max_partitions)
        return await self.storage.get_messages(queue, pairs, self._now_ms())

    async def delete_messages(self, caller: Caller, app: str, name: str, ids: str) -> None:
        queue = await self._rights.queue(caller, app, name, Right.DELETE)
        pairs = parse.message_ids(ids, self.limits.max_partitions)
        await self.storage.delete_messages(queue, pairs)

    async def put_messages(
        self,
        caller: Caller,
        app: str,
        name: str,
        ids: str,
        body: bytes,
        content_type: str | None,
        ttl: str | None,
    ) -> None:
        """Overwrite every listed message's body and restart its TTL, creating the ones that
        do not exist with exactly that id (and so that timestamp)."""
        queue = await self._rights.queue(caller, app, name, Right.OWNER)
        pairs = parse.message_ids(ids, self.limits.max_partitions)
        messages = self._new.overwrites(queue, pairs, body, content_type, ttl)
        await self._within_quotas(
            app,
            messages,
            lambda: self._changing(
                queue, self.storage.write_messages(queue, messages, replace=True)
            ),
        )

    # --- claims ----------------------------------------------------------------------------

    async def claim(
        self,
        caller: Caller,
        app: str,
        name: str,
        params: Mapping[str, object],
        client: Client | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` available messages, waiting up to ``wait`` s for one.

        Nothing is claimed for a ``client`` that has gone away, and what was claimed for an
        answer that does not reach it is given back as it was (:meth:`give_back`)."""
        queue = await self._rights.queue(caller, app, name, Right.CLAIM)
        asked = parse.claim_params(params, queue.settings.claim_ttl, self.limits)
        if not asked.wait:
            return await self._claim(queue, asked, client)
        with self.quotas.long_poll(app):
            return await self._claim(queue, asked, client)

    async def _claim(
        self, queue: Queue, asked: parse.ClaimParams, client: Client | None
    ) -> list[Claim]:
        app, name = queue.app, queue.name
        deadline = self._long_poll.deadline(asked.wait)
        while client is None or not client.gone:
            if not queue.settings.paused:
                partitions = asked.partitions or range(1, queue.partitions + 1)
                remove = queue.settings.delivery == "at_most_once"
                claims = await self.storage.claim_messages(
                    queue, list(partitions), asked.limit, self._now_ms(), asked.ttl * 1000, remove
                )
                if claims and client is not None:
                    give_back = functools.partial(self.give_back, queue, claims, remove)
                    if client.gone:
                        await give_back()
                        return []
                    client.undelivered(give_back)
                if claims:
                    return claims
            if not await self._long_poll.wait(queue, deadline, client=client):
                return []
            queue = await self.storage.get_queue(app, name) or queue  # paused or resumed?
        return []

    async def give_back(self, queue: Queue, claims: list[Claim], removed: bool) -> None:
        """Return claimed messages that never reached their consumer as they were before the
        claim, its delivery not counted (``removed``: the claim deleted them)."""
        giving = self.storage.unclaim_messages(queue, claims, self._now_ms(), removed)
        await self._changing(queue, giving)

    async def ack(self, caller: Caller, app: str, name: str, claim_ids: str) -> list[str]:
        """Acknowledge claims: their messages are deleted. Raises ClaimExpired (naming what
        was acked and what failed) when any claim was not current."""
        queue = await self._rights.queue(caller, app, name, Right.CLAIM)
        items, refs = parse_claim_ids(claim_ids)
        if queue.settings.delivery == "at_most_once":
            return items  # the messages left the queue when they were claimed
        now_ms = self._now_ms()
        done = await settle_claims(
            queue, refs, lambda chosen: self.storage.ack_messages(queue, chosen, now_ms)
        )
        return all_current(items, done, "acked")

    async def ack_message(self, caller: Caller, app: str, name: str, message_id: str) -> bool:
        """Acknowledge the current claim of the message ``message_id`` (32 hex digits), in
        whichever partition, for consumers that hand back only a message's id (AweQ). False
        when the message has no current claim (never claimed, lease ended, gone): nothing
        changes then, so a late ack never deletes a message delivered again."""
        queue = await self._rights.queue(caller, app, name, Right.CLAIM)
        if ticks_of(message_id) is None:
            raise InvalidMessageID()
        pairs = [(partition, message_id) for partition in range(1, queue.partitions + 1)]
        now_ms = self._now_ms()
        refs = [ref for ref in await self.storage.current_claims(queue, pairs, now_ms) if ref]
        return bool(refs) and any(await self.storage.ack_messages(queue, refs, now_ms))

    async def extend(
        self, caller: Caller, app: str, name: str, claim_ids: str, params: Mapping[str, object]
    ) -> tuple[list[str], int | None]:
        """Lease the claimed messages ``ttl`` more seconds from now (0 releases them); the
        claims and when their leases end (epoch ms), None when they were released."""
        queue = await self._rights.queue(caller, app, name, Right.CLAIM)
        items, refs = parse_claim_ids(claim_ids)
        ttl = parse.lease_ttl(params)
        now_ms = self._now_ms()

        def extending(chosen: list[ClaimRef]) -> Awaitable[list[bool]]:
            extended = self.storage.extend_claims(queue, chosen, now_ms, ttl * 1000)
            # Only a release makes messages available to waiting claims.
            return self._changing(queue, extended) if ttl == 0 else extended

        done = await settle_claims(queue, refs, extending)
        if ttl == 0:
            return all_current(items, done, "released"), None
        return all_current(items, done, "extended"), now_ms + ttl * 1000

    async def stats(self, caller: Caller, app: str, name: str) -> tuple[Queue, QueueStats]:
        queue = await self._rights.queue(caller, app, name, Right.STATS)
        return queue, await self.storage.queue_stats(queue, self._now_ms())

    # --- maintenance -----------------------------------------------------------------------

    async def purge(self, caller: Caller, app: str, name: str) -> int:
        """Delete every message of the queue (owner only); how many there were."""
        queue = await self._rights.queue(caller, app, name, Right.OWNER)
        return await self._changing(queue, self.storage.purge_messages(queue, self._now_ms()))

    async def end_consumers(self, caller: Caller, app: str, name: str) -> None:
        """End the streams bound to the queue as consumers, through every server process
        sharing the store (owner only): they end as if the queue was deleted."""
        queue = await self._rights.queue(caller, app, name, Right.OWNER)
        await self._changing(queue, self.storage.end_consumers(app, name))

    async def redrive(
        self, caller: Caller, app: str, name: str, params: Mapping[str, object]
    ) -> int:
        """Move messages of a dead-letter queue back (owner only); how many were moved. See
        :mod:`queuey.service.maintenance` for why each moves exactly once."""
        source = await self._rights.queue(caller, app, name, Right.OWNER)
        asked = maintenance.redrive_params(params, self.limits.max_name_length)
        target = await maintenance.redrive_target(self.storage, source, asked.to)
        partitions = list(range(1, source.partitions + 1))
        count = 0
        while asked.limit is None or count < asked.limit:
            now_ms = self._now_ms()
            size = maintenance.REDRIVE_BATCH
            if asked.limit is not None:
                size = min(size, asked.limit - count)
            found = await self.storage.read_messages(source, partitions, None, False, size, now_ms)
            batch = sorted(found, key=lambda m: (m.ticks, m.id))[:size]
            if not batch:
                break
            window_ms = max(m.expires_ms for m in batch) - now_ms
            copies = self._new.redriven(target, batch)
            dedup_ids = [maintenance.redrive_dedup_id(m) for m in batch]
            write = self.storage.write_unique(target, copies, dedup_ids, now_ms, window_ms)
            await self._changing(target, write)
            await self.storage.delete_messages(source, [(m.partition, m.id) for m in batch])
            count += len(batch)
        return count

    # --- tokens ----------------------------------------------------------------------------

    async def mint_token(
        self, caller: Caller, app: str, params: Mapping[str, object]
    ) -> tuple[str, int]:
        """A token of ``app`` (owner only) and when it expires."""
        self._rights.require_owner(caller, app)
        return self.tokens.mint(app, params, self.limits.max_name_length)

    _now_ms = now_ms
