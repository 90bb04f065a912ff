"""QueueService: Queuey's use cases. Rights, validation, ids and TTLs live here; storage
only stores. The HTTP layer hands in raw parameters and renders what comes back."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import replace
from enum import Enum

from queuey.core.clock import Clock
from queuey.core.errors import (
    ApplicationNotFound,
    ClaimExpired,
    Forbidden,
    InvalidMessageID,
    InvalidParameter,
    InvalidRequest,
    PayloadTooLarge,
    QueueNotFound,
    StorageUnavailable,
    Unauthorized,
)
from queuey.core.ids import (
    TICKS_PER_SECOND,
    IdGenerator,
    ticks_from_ns,
    ticks_from_timestamp,
    ticks_of,
)
from queuey.core.limits import Limits
from queuey.core.models import (
    CONSISTENCIES,
    DELIVERIES,
    POLICIES,
    QUEUE_TYPES,
    Caller,
    Claim,
    ClaimRef,
    Cursor,
    Message,
    Queue,
    QueueSettings,
    QueueStats,
)
from queuey.core.validation import Errors, check_bool, check_choice, check_int
from queuey.notify import Notifier
from queuey.storage.base import Storage

log = logging.getLogger("queuey")

DEFAULT_CONTENT_TYPE = "text/plain"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PRINCIPLE = re.compile(r"app:[A-Za-z0-9_.-]{1,64}|user:[^\s,:]{1,256}|bid:[^\s,@]+@[^\s,@]+")
_ID_ITEM = re.compile(r"(?:(\d{1,3}):)?([0-9A-Fa-f]{32})")
_QUEUE_PARAMS = frozenset(
    {
        "queue_name", "partitions", "type", "consistency", "principles",
        "delivery", "claim_ttl", "max_deliveries", "dead_letter_queue", "delay",
        "dedup_window", "policy", "paused",
    }
)  # fmt: skip
# Bounds of the work-queue parameters (api.md Part 2).
MAX_CLAIM_TTL = 43_200
MAX_CLAIM_LIMIT = 100
MAX_WAIT = 20
MAX_DEDUP_WINDOW = 86_400
MAX_DELIVERIES = 1000
MAX_DEDUP_ID = 256
_CLAIM_ID = re.compile(r"[0-9a-f]{50}")

# What a post returns: the messages (a duplicate's is the first one posted with its dedup id),
# and which of them are duplicates (None when no message carried a dedup id).
Posted = tuple[list[Message], list[bool] | None]


class Right(Enum):
    """What a request needs on a queue: owners hold every right."""

    OWNER = "owner"  # post, update, delete the queue, overwrite messages
    READ = "read"  # read messages (public queues: anyone)
    DELETE = "delete"  # delete messages (principals too)
    CLAIM = "claim"  # claim, ack, extend, stats (principals too)


class QueueService:
    def __init__(
        self,
        storage: Storage,
        applications: Collection[str],
        clock: Clock,
        limits: Limits | None = None,
    ) -> None:
        self.storage = storage
        self.limits = limits or Limits()
        self._applications = frozenset(applications)
        self._clock = clock
        self._ids = IdGenerator(clock)
        self._random = random.Random()
        self._sweeper: asyncio.Task[None] | None = None
        self.notifier = Notifier(storage)

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, sweep_interval: float, sweep_batch: int) -> None:
        await self.storage.open()
        self._sweeper = asyncio.create_task(self._sweep_forever(sweep_interval, sweep_batch))

    async def stop(self) -> None:
        await self.notifier.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.storage.close()

    async def sweep_once(self, batch: int) -> int:
        """Reclaim dead messages in batches of ``batch`` until none is left; returns the count.
        Yields to other tasks between batches, so requests are never held up for long."""
        total = 0
        while True:
            removed = await self.storage.sweep(self._now_ms(), batch)
            total += removed
            if removed < batch:
                return total
            await asyncio.sleep(0)

    async def _sweep_forever(self, interval: float, batch: int) -> None:
        while True:
            try:
                removed = await self.sweep_once(batch)
                if removed:
                    log.debug("sweep reclaimed %d messages", removed)
            except StorageUnavailable as error:
                log.warning("sweep failed, will retry: %s", error)
            await asyncio.sleep(interval)

    async def heartbeat(self) -> None:
        await self.storage.ping()

    # --- rights ----------------------------------------------------------------------------

    def _check_application(self, app: str) -> None:
        if app not in self._applications:
            raise ApplicationNotFound()

    def _require_owner(self, caller: Caller, app: str) -> None:
        self._check_application(app)
        if caller.app is None:
            raise Unauthorized()
        if caller.app != app:
            raise Forbidden()

    async def _queue(self, caller: Caller, app: str, name: str, right: Right) -> Queue:
        """The queue, if ``caller`` holds ``right`` on it. Callers without any right learn
        nothing about whether the queue exists: they get 401/403 either way."""
        self._check_application(app)
        valid_name = len(name) <= self.limits.max_name_length and _NAME.fullmatch(name)
        queue = await self.storage.get_queue(app, name) if valid_name else None
        if caller.app == app:
            if queue is None:
                raise QueueNotFound()
            return queue
        if queue is not None and right is not Right.OWNER:
            if right is Right.READ and queue.settings.type == "public":
                return queue
            if caller.app is not None and f"app:{caller.app}" in queue.settings.principles:
                return queue
        if caller.app is None:
            raise Unauthorized()
        raise Forbidden()

    # --- queues ----------------------------------------------------------------------------

    async def list_queues(
        self, caller: Caller, app: str, params: Mapping[str, str]
    ) -> tuple[list[str] | list[Queue], list[int] | None]:
        """``app``'s queue names (``offset`` inclusive), or with ``details`` or
        ``include_count`` its queues, and with ``include_count`` their live counts."""
        self._require_owner(caller, app)
        errors = Errors()
        limits = self.limits
        limit = check_int(
            errors, "limit", params.get("limit"), limits.default_list_limit, 1,
            limits.max_list_limit,
        )  # fmt: skip
        details = check_bool(errors, "details", params.get("details"), False)
        include_count = check_bool(errors, "include_count", params.get("include_count"), False)
        errors.raise_if_any()
        assert limit is not None
        offset = params.get("offset") or None
        if not (details or include_count):
            return await self.storage.list_queue_names(app, offset, limit), None
        queues = await self.storage.list_queues(app, offset, limit)
        counts = None
        if include_count:
            now_ms = self._now_ms()
            counts = [await self.storage.count_messages(q, now_ms) for q in queues]
        return queues, counts

    async def create_queue(self, caller: Caller, app: str, params: Mapping[str, object]) -> Queue:
        self._require_owner(caller, app)
        errors = Errors()
        _reject_unknown(errors, params, _QUEUE_PARAMS)
        name = params.get("queue_name") or uuid.uuid4().hex
        if not isinstance(name, str) or not self._valid_name(name):
            errors["queue_name"] = (
                f"{name!r} is not a valid queue name: 1 to {self.limits.max_name_length} "
                "characters of A-Z a-z 0-9 _ . -"
            )
        settings = self._settings(errors, params, QueueSettings())
        errors.raise_if_any()
        assert isinstance(name, str)
        await self._check_dead_letter_queue(app, name, settings)
        queue = await self.storage.create_queue(app, name, settings, self._now())
        return queue

    async def update_queue(
        self, caller: Caller, app: str, name: str, params: Mapping[str, object]
    ) -> Queue:
        queue = await self._queue(caller, app, name, Right.OWNER)
        errors = Errors()
        _reject_unknown(errors, params, _QUEUE_PARAMS - {"queue_name"})
        settings = self._settings(errors, params, queue.settings)
        errors.raise_if_any()
        await self._check_dead_letter_queue(app, name, settings)
        updated = await self.storage.update_queue(app, name, settings)
        self.notifier.wake((app, name))  # e.g. resumed: waiting claims look again
        return updated

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
        await self._queue(caller, app, name, Right.OWNER)
        if not await self.storage.delete_queue(app, name):
            raise QueueNotFound()

    def _valid_name(self, name: str) -> bool:
        return len(name) <= self.limits.max_name_length and _NAME.fullmatch(name) is not None

    def _settings(
        self, errors: Errors, params: Mapping[str, object], current: QueueSettings
    ) -> QueueSettings:
        """``current`` with the parameters that were sent applied."""
        partitions = check_int(
            errors, "partitions", params.get("partitions"), current.partitions, 1,
            self.limits.max_partitions,
        )  # fmt: skip
        queue_type = check_choice(errors, "type", params.get("type"), QUEUE_TYPES, current.type)
        consistency = check_choice(
            errors, "consistency", params.get("consistency"), CONSISTENCIES, current.consistency
        )
        principles = current.principles
        if "principles" in params:
            principles = _principles(errors, params["principles"])
        delivery = check_choice(
            errors, "delivery", params.get("delivery"), DELIVERIES, current.delivery
        )
        claim_ttl = check_int(
            errors, "claim_ttl", params.get("claim_ttl"), current.claim_ttl, 1, MAX_CLAIM_TTL
        )
        max_deliveries = check_int(
            errors, "max_deliveries", params.get("max_deliveries"), current.max_deliveries, 0,
            MAX_DELIVERIES,
        )  # fmt: skip
        delay = check_int(
            errors, "delay", params.get("delay"), current.delay, 0, self.limits.max_ttl
        )
        dedup_window = check_int(
            errors, "dedup_window", params.get("dedup_window"), current.dedup_window, 0,
            MAX_DEDUP_WINDOW,
        )  # fmt: skip
        policy = check_choice(errors, "policy", params.get("policy"), POLICIES, current.policy)
        paused = check_bool(errors, "paused", params.get("paused"), current.paused)
        dead_letter_queue = current.dead_letter_queue
        if "dead_letter_queue" in params:
            value = params["dead_letter_queue"]
            if value is None or value == "":
                dead_letter_queue = None
            elif isinstance(value, str) and self._valid_name(value):
                dead_letter_queue = value
            else:
                errors["dead_letter_queue"] = f"{value!r} is not a valid queue name"
        if errors:
            return current
        assert partitions is not None and queue_type is not None and consistency is not None
        assert delivery is not None and claim_ttl is not None and max_deliveries is not None
        assert delay is not None and dedup_window is not None and policy is not None
        return replace(
            current,
            partitions=partitions,
            type=queue_type,
            consistency=consistency,
            principles=principles,
            delivery=delivery,
            claim_ttl=claim_ttl,
            max_deliveries=max_deliveries,
            dead_letter_queue=dead_letter_queue,
            delay=delay,
            dedup_window=dedup_window,
            policy=policy,
            paused=paused,
        )

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
        queue = await self._queue(caller, app, name, Right.OWNER)
        errors = Errors()
        text = self._body(errors, "body", body)
        message = self._new_message(errors, "", queue, text, ttl, partition, content_type, delay)
        dedup = _dedup_id(errors, "dedup_id", dedup_id)
        errors.raise_if_any()
        assert message is not None
        if dedup is not None and queue.settings.dedup_window:
            return await self._write_unique(queue, [message], [dedup])
        await self.storage.write_messages(queue, (message,))
        self.notifier.wake((app, name))
        return [message], None

    async def _write_unique(
        self, queue: Queue, messages: list[Message], dedup_ids: list[str | None]
    ) -> Posted:
        window_ms = queue.settings.dedup_window * 1000
        firsts = await self.storage.write_unique(
            queue, messages, dedup_ids, self._now_ms(), window_ms
        )
        self.notifier.wake((queue.app, queue.name))
        return (
            [first or message for message, first in zip(messages, firsts, strict=True)],
            [first is not None for first in firsts],
        )

    async def post_batch(self, caller: Caller, app: str, name: str, payload: object) -> Posted:
        """Post ``{"messages": [{"body", "ttl"?, "partition"?, "content_type"?, "delay"?,
        "dedup_id"?}, ...]}``: the whole batch is validated before anything is written."""
        queue = await self._queue(caller, app, name, Right.OWNER)
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            raise InvalidParameter()
        items: list[object] = payload["messages"]
        limits = self.limits
        if len(items) > limits.max_batch_messages:
            raise InvalidRequest(
                {"messages": f"{len(items)} is greater than maximum value "
                             f"{limits.max_batch_messages}"}
            )  # fmt: skip
        errors = Errors()
        now_ms = self._now_ms()
        default_expiry = now_ms + limits.default_ttl * 1000
        partitions = queue.partitions
        randint = self._random.randint
        default_delay = queue.settings.delay
        dedup_ids: list[str | None] | None = None
        # Ids are allocated up front (a rejected batch leaves a harmless gap in them).
        ids, first = self._ids.next_many(len(items))
        messages: list[Message] = []
        for index, item in enumerate(items):
            if type(item) is not dict:
                errors[str(index)] = f"{item!r} is not a mapping type"
                continue
            body = item.get("body")
            if type(body) is not str or not body or len(body) > limits.max_message_bytes // 4:
                body = self._json_body(errors, f"{index}.body", body)
            ttl, partition = item.get("ttl"), item.get("partition")
            expires_ms = default_expiry
            if ttl is not None:
                seconds = check_int(errors, f"{index}.ttl", ttl, None, 1, limits.max_ttl)
                expires_ms = now_ms + (seconds or 0) * 1000
            if partition is not None:
                number = check_int(errors, f"{index}.partition", partition, None, 1, partitions)
            else:
                number = randint(1, partitions) if partitions > 1 else 1
            content_type = item.get("content_type", DEFAULT_CONTENT_TYPE)
            if type(content_type) is not str:
                if content_type is not None:
                    errors[f"{index}.content_type"] = f"{content_type!r} is not a string"
                content_type = DEFAULT_CONTENT_TYPE
            if body is None or number is None:
                continue
            message = Message(ids[index], first + index, number, body, content_type, expires_ms)
            delay = item.get("delay")
            if delay is not None or default_delay:
                seconds = check_int(
                    errors, f"{index}.delay", delay, default_delay, 0, limits.max_ttl
                )
                if seconds:
                    self._delay(message, seconds, now_ms)
            dedup = item.get("dedup_id")
            if dedup is not None:
                if dedup_ids is None:
                    dedup_ids = [None] * len(messages)
                dedup_ids.append(_dedup_id(errors, f"{index}.dedup_id", dedup))
            elif dedup_ids is not None:
                dedup_ids.append(None)
            messages.append(message)
        errors.raise_if_any()
        if not messages:
            return [], None
        if dedup_ids is not None and queue.settings.dedup_window:
            return await self._write_unique(queue, messages, dedup_ids)
        await self.storage.write_messages(queue, messages)
        self.notifier.wake((app, name))
        return messages, None

    def _delay(self, message: Message, seconds: int, now_ms: int) -> None:
        """Make ``message`` due ``seconds`` from now, with the id and timestamp of that time;
        its TTL counts from then."""
        message.id, message.ticks = self._ids.delayed(seconds * TICKS_PER_SECOND)
        message.due_ms = now_ms + seconds * 1000
        message.expires_ms += seconds * 1000

    def _new_message(
        self,
        errors: Errors,
        prefix: str,
        queue: Queue,
        body: str | None,
        ttl: object,
        partition: object,
        content_type: str | None,
        delay: object = None,
    ) -> Message | None:
        limits = self.limits
        seconds = check_int(errors, f"{prefix}ttl", ttl, limits.default_ttl, 1, limits.max_ttl)
        number = check_int(errors, f"{prefix}partition", partition, 0, 1, queue.partitions)
        delay_s: int | None = queue.settings.delay
        if delay is not None:
            delay_s = check_int(errors, f"{prefix}delay", delay, delay_s, 0, limits.max_ttl)
        if body is None or seconds is None or number is None or delay_s is None or errors:
            return None
        if number == 0:
            number = self._random.randint(1, queue.partitions) if queue.partitions > 1 else 1
        message_id, ticks = self._ids.next()
        now_ms = self._now_ms()
        message = Message(
            message_id, ticks, number, body, content_type or DEFAULT_CONTENT_TYPE,
            now_ms + seconds * 1000,
        )  # fmt: skip
        if delay_s:
            self._delay(message, delay_s, now_ms)
        return message

    def _body(self, errors: Errors, field: str, body: bytes) -> str | None:
        if not body:
            errors[field] = "Required"
            return None
        if len(body) > self.limits.max_message_bytes:
            raise PayloadTooLarge({field: self._too_large()})
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            errors[field] = "Body is not valid UTF-8 text"
            return None

    def _json_body(self, errors: Errors, field: str, body: object) -> str | None:
        if body is None or body == "" or body is False:
            errors[field] = "Required"
            return None
        if isinstance(body, bool) or not isinstance(body, str | int | float):
            errors[field] = f"{body!r} is not a string"
            return None
        text = body if isinstance(body, str) else str(body)
        if len(text) > self.limits.max_message_bytes // 4 and (
            len(text.encode("utf-8")) > self.limits.max_message_bytes
        ):
            raise PayloadTooLarge({field: self._too_large()})
        return text

    def _too_large(self) -> str:
        return f"Message body is over the limit of {self.limits.max_message_bytes} bytes"

    async def read_messages(
        self, caller: Caller, app: str, name: str, params: Mapping[str, str]
    ) -> list[Message]:
        queue = await self._queue(caller, app, name, Right.READ)
        errors = Errors()
        limits = self.limits
        limit = check_int(
            errors, "limit", params.get("limit"), limits.default_read_limit, 1,
            limits.max_read_limit,
        )  # fmt: skip
        order = check_choice(
            errors, "order", params.get("order"), ("ascending", "descending"), "ascending"
        )
        descending = order == "descending"
        partitions = _partition_list(errors, params.get("partitions"))
        cursor = _cursor(errors, params.get("since"), params.get("after"), descending)
        wait = check_int(errors, "wait", params.get("wait"), 0, 0, MAX_WAIT)
        errors.raise_if_any()
        assert limit is not None and wait is not None
        found, held = await self._read_settled(queue, partitions, cursor, descending, limit)
        if found or not wait:
            return found
        deadline = asyncio.get_running_loop().time() + wait
        # A message held back by the settle window is looked at again after a short pause.
        while not found and await self._wait(queue, deadline, 0.1 if held else None):
            found, held = await self._read_settled(queue, partitions, cursor, descending, limit)
        return found

    async def _read_settled(
        self,
        queue: Queue,
        partitions: list[int],
        cursor: Cursor | None,
        descending: bool,
        limit: int,
    ) -> tuple[list[Message], bool]:
        """A read without the messages still in the settle window; whether any was held."""
        now_ms = self._now_ms()
        found = await self.storage.read_messages(
            queue, partitions, cursor, descending, limit, now_ms
        )
        shown = settled(found, settle_window_ms(self.storage, queue.settings.consistency), now_ms)
        return shown, len(shown) < len(found)

    async def _wait(self, queue: Queue, deadline: float, cap: float | None = None) -> bool:
        """Wait until something may have changed for ``queue``: a write through this process
        or another, a delayed message falling due or a lease ending (or ``cap`` seconds).
        False when ``deadline`` (event-loop time) has passed."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        if cap is not None:
            remaining = min(remaining, cap)
        now_ms = self._now_ms()
        next_ms = await self.storage.next_change_ms(queue, now_ms)
        if next_ms is not None:
            remaining = min(remaining, (next_ms - now_ms) / 1000 + 0.001)
        await self.notifier.wait((queue.app, queue.name), remaining)
        return True

    async def get_messages(self, caller: Caller, app: str, name: str, ids: str) -> list[Message]:
        queue = await self._queue(caller, app, name, Right.READ)
        return await self.storage.get_messages(queue, self._ids_list(ids), self._now_ms())

    async def delete_messages(self, caller: Caller, app: str, name: str, ids: str) -> None:
        queue = await self._queue(caller, app, name, Right.DELETE)
        await self.storage.delete_messages(queue, self._ids_list(ids))

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
        queue = await self._queue(caller, app, name, Right.OWNER)
        pairs = self._ids_list(ids)
        errors = Errors()
        text = self._body(errors, "body", body)
        limits = self.limits
        seconds = check_int(errors, "ttl", ttl, limits.default_ttl, 1, limits.max_ttl)
        for partition, _ in pairs:
            check_int(errors, "partition", partition, None, 1, queue.partitions)
        errors.raise_if_any()
        assert text is not None and seconds is not None
        expires_ms = self._now_ms() + seconds * 1000
        messages = [
            Message(
                message_id,
                ticks_of(message_id) or 0,
                partition,
                text,
                content_type or DEFAULT_CONTENT_TYPE,
                expires_ms,
            )  # fmt: skip
            for partition, message_id in pairs
        ]
        await self.storage.write_messages(queue, messages, replace=True)
        self.notifier.wake((app, name))

    # --- claims ----------------------------------------------------------------------------

    async def claim(
        self, caller: Caller, app: str, name: str, params: Mapping[str, object]
    ) -> list[Claim]:
        """Lease up to ``limit`` available messages, waiting up to ``wait`` s for one."""
        queue = await self._queue(caller, app, name, Right.CLAIM)
        errors = Errors()
        limit = check_int(errors, "limit", params.get("limit"), 1, 1, MAX_CLAIM_LIMIT)
        ttl = check_int(
            errors, "ttl", params.get("ttl"), queue.settings.claim_ttl, 1, MAX_CLAIM_TTL
        )
        wait = check_int(errors, "wait", params.get("wait"), 0, 0, MAX_WAIT)
        chosen: list[int] | None = None
        if params.get("partitions") not in (None, ""):
            chosen = _partition_list(errors, str(params["partitions"]))
        errors.raise_if_any()
        assert limit is not None and ttl is not None and wait is not None
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            if not queue.settings.paused:
                partitions = chosen or range(1, queue.partitions + 1)
                claims = await self.storage.claim_messages(
                    queue, list(partitions), limit, self._now_ms(), ttl * 1000,
                    remove=queue.settings.delivery == "at_most_once",
                )  # fmt: skip
                if claims:
                    return claims
            if not await self._wait(queue, deadline):
                return []
            queue = await self.storage.get_queue(app, name) or queue  # paused or resumed?

    async def ack(self, caller: Caller, app: str, name: str, claim_ids: str) -> list[str]:
        """Acknowledge claims: their messages are deleted. Raises ClaimExpired (naming what
        was acked and what failed) when any claim was not current."""
        queue = await self._queue(caller, app, name, Right.CLAIM)
        items, refs = _claim_refs(claim_ids)
        if queue.settings.delivery == "at_most_once":
            return items  # the messages left the queue when they were claimed
        done = await self.storage.ack_messages(queue, refs, self._now_ms())
        return _all_current(items, done, "acked")

    async def ack_message(self, caller: Caller, app: str, name: str, message_id: str) -> bool:
        """Acknowledge the current claim of the message ``message_id`` (32 hex digits), in
        whichever partition, for consumers that hand back only a message's id (AweQ). False
        when the message has no current claim (never claimed, lease ended, gone): nothing
        changes then, so a late ack never deletes a message delivered again."""
        queue = await self._queue(caller, app, name, Right.CLAIM)
        if ticks_of(message_id) is None:
            raise InvalidMessageID()
        pairs = [(partition, message_id) for partition in range(1, queue.partitions + 1)]
        now_ms = self._now_ms()
        refs = [ref for ref in await self.storage.current_claims(queue, pairs, now_ms) if ref]
        return bool(refs) and any(await self.storage.ack_messages(queue, refs, now_ms))

    async def extend(
        self, caller: Caller, app: str, name: str, claim_ids: str, params: Mapping[str, object]
    ) -> tuple[list[str], int]:
        """Lease the claimed messages ``ttl`` more seconds from now (0 releases them); the
        claims and when their leases end (epoch ms)."""
        queue = await self._queue(caller, app, name, Right.CLAIM)
        items, refs = _claim_refs(claim_ids)
        errors = Errors()
        ttl = check_int(errors, "ttl", params.get("ttl"), None, 0, MAX_CLAIM_TTL)
        errors.raise_if_any()
        assert ttl is not None
        now_ms = self._now_ms()
        done = await self.storage.extend_claims(queue, refs, now_ms, ttl * 1000)
        if ttl == 0:
            self.notifier.wake((app, name))
        return _all_current(items, done, "extended"), now_ms + ttl * 1000

    async def stats(self, caller: Caller, app: str, name: str) -> tuple[Queue, QueueStats]:
        queue = await self._queue(caller, app, name, Right.CLAIM)
        return queue, await self.storage.queue_stats(queue, self._now_ms())

    def _ids_list(self, text: str) -> list[tuple[int, str]]:
        """Parse ``[partition:]<32 hex>`` items separated by commas; partition 1 by default."""
        pairs: list[tuple[int, str]] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            match = _ID_ITEM.fullmatch(item)
            if match is None:
                raise InvalidMessageID()
            partition = int(match.group(1) or 1)
            message_id = match.group(2).lower()
            if not 1 <= partition <= self.limits.max_partitions or ticks_of(message_id) is None:
                raise InvalidMessageID()
            if (partition, message_id) not in pairs:
                pairs.append((partition, message_id))
        if not pairs:
            raise InvalidMessageID()
        return pairs

    # --- time ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.time_ns() / 1e9

    def _now_ms(self) -> int:
        return self._clock.time_ns() // 1_000_000


# --- settle window (stores of several nodes) ------------------------------------------------

SETTLE_SECONDS = {"weak": 1.0, "strong": 5.0, "very_strong": 600.0}


def settle_window_ms(storage: Storage, consistency: str) -> int:
    """How long reads hold back a new message, by the queue's consistency (plus the store's
    ``base_delay``, if it has one), as the original did: on a store of several nodes a message
    stamped earlier by another server may still be on its way to the replicas read, and a
    reader paging with ``after=`` must not skip it. Zero on a single node."""
    if storage.nodes <= 1:
        return 0
    base = float(getattr(storage, "base_delay", 0))
    return int((SETTLE_SECONDS.get(consistency, SETTLE_SECONDS["strong"]) + base) * 1000)


def settled(messages: list[Message], window_ms: int, now_ms: int) -> list[Message]:
    """The messages stamped at least ``window_ms`` before ``now_ms`` (the limit was applied
    before, so a read may return fewer than it asked for)."""
    if window_ms <= 0:
        return messages
    cutoff = ticks_from_ns((now_ms - window_ms) * 1_000_000)
    return [m for m in messages if m.ticks <= cutoff]


def _reject_unknown(errors: Errors, params: Mapping[str, object], known: frozenset[str]) -> None:
    for key in params:
        if key not in known:
            errors[key] = f"Unknown parameter; expected one of {', '.join(sorted(known))}"


def _principles(errors: Errors, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, str):
        errors["principles"] = f"{value!r} is not a valid permission list."
        return ()
    items: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not _PRINCIPLE.fullmatch(item):
            errors["principles"] = f"{item!r} is not a valid permission list."
            return ()
        if item not in items:
            items.append(item)
    return tuple(items)


def _dedup_id(errors: Errors, field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_DEDUP_ID:
        errors[field] = f"{value!r} is not a string of 1 to {MAX_DEDUP_ID} characters"
        return None
    return value


def claim_id(claim: Claim) -> str:
    """The opaque id of a claim: message id, partition and token, 50 hex digits."""
    message = claim.message
    return f"{message.id}{message.partition:02x}{claim.token:016x}"


def _claim_refs(text: str) -> tuple[list[str], list[ClaimRef]]:
    """Comma-separated claim ids (see claim_id), each once."""
    items: list[str] = []
    refs: list[ClaimRef] = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item or item in items:
            continue
        message_id = item[:32]
        if not _CLAIM_ID.fullmatch(item) or ticks_of(message_id) is None:
            raise InvalidRequest({"claim_ids": f'"{item}" is not a claim id'})
        items.append(item)
        refs.append(ClaimRef(int(item[32:34], 16), message_id, int(item[34:], 16)))
    if not items:
        raise InvalidRequest({"claim_ids": "Required"})
    return items, refs


def _all_current(items: list[str], done: list[bool], verb: str) -> list[str]:
    """The claim ids that were current; ClaimExpired if any was not."""
    ok = [item for item, current in zip(items, done, strict=True) if current]
    if len(ok) < len(items):
        failed = [item for item, current in zip(items, done, strict=True) if not current]
        raise ClaimExpired({verb: ok, "failed": failed})
    return ok


def _partition_list(errors: Errors, value: str | None) -> list[int]:
    if value is None:
        return [1]
    numbers: list[int] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isascii() or not item.isdigit() or len(item) > 9:
            errors["partitions"] = (
                f'"{value}" is not a valid comma separated list of integers or a single integer.'
            )
            return []
        number = int(item)
        if number not in numbers:
            numbers.append(number)
    return numbers


def _cursor(
    errors: Errors, since: str | None, after: str | None, descending: bool
) -> Cursor | None:
    """``since`` (a timestamp or an id, inclusive) or ``after`` (an id, exclusive)."""
    if since and after:
        errors["after"] = "since and after cannot be used together"
        return None
    if after:
        ticks = ticks_of(after.lower())
        if ticks is None:
            errors["after"] = f'"{after}" is not a message id'
            return None
        return Cursor(ticks, after.lower(), inclusive=False)
    if not since:
        return None
    ticks = ticks_of(since.lower())
    if ticks is not None:
        return Cursor(ticks, since.lower(), inclusive=True)
    ticks = ticks_from_timestamp(since)
    if ticks is None:
        errors["since"] = f'"{since}" is not a timestamp or a message id'
        return None
    if ticks_from_timestamp("0") == ticks:
        return None  # since=0 means "from the start", as in the original
    return Cursor(ticks, "~" if descending else "", inclusive=True)
