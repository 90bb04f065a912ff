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
    Forbidden,
    InvalidMessageID,
    InvalidParameter,
    InvalidRequest,
    PayloadTooLarge,
    QueueNotFound,
    StorageUnavailable,
    Unauthorized,
)
from queuey.core.ids import IdGenerator, ticks_from_ns, ticks_from_timestamp, ticks_of
from queuey.core.limits import Limits
from queuey.core.models import (
    CONSISTENCIES,
    QUEUE_TYPES,
    Caller,
    Cursor,
    Message,
    Queue,
    QueueSettings,
)
from queuey.core.validation import Errors, check_bool, check_choice, check_int
from queuey.storage.base import Storage

log = logging.getLogger("queuey")

DEFAULT_CONTENT_TYPE = "text/plain"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PRINCIPLE = re.compile(r"app:[A-Za-z0-9_.-]{1,64}|user:[^\s,:]{1,256}|bid:[^\s,@]+@[^\s,@]+")
_ID_ITEM = re.compile(r"(?:(\d{1,3}):)?([0-9A-Fa-f]{32})")
_QUEUE_PARAMS = frozenset({"queue_name", "partitions", "type", "consistency", "principles"})


class Right(Enum):
    """What a request needs on a queue: owners hold every right."""

    OWNER = "owner"  # post, update, delete the queue, overwrite messages
    READ = "read"  # read messages (public queues: anyone)
    DELETE = "delete"  # delete messages (principals too)


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

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, sweep_interval: float, sweep_batch: int) -> None:
        await self.storage.open()
        self._sweeper = asyncio.create_task(self._sweep_forever(sweep_interval, sweep_batch))

    async def stop(self) -> None:
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
        return await self.storage.create_queue(app, name, settings, self._now())

    async def update_queue(
        self, caller: Caller, app: str, name: str, params: Mapping[str, object]
    ) -> Queue:
        queue = await self._queue(caller, app, name, Right.OWNER)
        errors = Errors()
        _reject_unknown(errors, params, _QUEUE_PARAMS - {"queue_name"})
        settings = self._settings(errors, params, queue.settings)
        errors.raise_if_any()
        return await self.storage.update_queue(app, name, settings)

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
        if errors:
            return current
        assert partitions is not None and queue_type is not None and consistency is not None
        return replace(
            current,
            partitions=partitions,
            type=queue_type,
            consistency=consistency,
            principles=principles,
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
    ) -> list[Message]:
        """Post one message whose body is the whole request body."""
        queue = await self._queue(caller, app, name, Right.OWNER)
        errors = Errors()
        text = self._body(errors, "body", body)
        message = self._new_message(errors, "", queue, text, ttl, partition, content_type)
        errors.raise_if_any()
        assert message is not None
        await self.storage.write_messages(queue, (message,))
        return [message]

    async def post_batch(
        self, caller: Caller, app: str, name: str, payload: object
    ) -> list[Message]:
        """Post ``{"messages": [{"body", "ttl"?, "partition"?, "content_type"?}, ...]}``: the
        whole batch is validated before anything is written."""
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
            if body is not None and number is not None:
                messages.append(
                    Message(ids[index], first + index, number, body, content_type, expires_ms)
                )
        errors.raise_if_any()
        if not messages:
            return []
        await self.storage.write_messages(queue, messages)
        return messages

    def _new_message(
        self,
        errors: Errors,
        prefix: str,
        queue: Queue,
        body: str | None,
        ttl: object,
        partition: object,
        content_type: str | None,
    ) -> Message | None:
        limits = self.limits
        seconds = check_int(errors, f"{prefix}ttl", ttl, limits.default_ttl, 1, limits.max_ttl)
        number = check_int(errors, f"{prefix}partition", partition, 0, 1, queue.partitions)
        if body is None or seconds is None or number is None or errors:
            return None
        if number == 0:
            number = self._random.randint(1, queue.partitions) if queue.partitions > 1 else 1
        message_id, ticks = self._ids.next()
        expires_ms = self._now_ms() + seconds * 1000
        return Message(
            message_id, ticks, number, body, content_type or DEFAULT_CONTENT_TYPE, expires_ms
        )

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
        errors.raise_if_any()
        assert limit is not None
        now_ms = self._now_ms()
        found = await self.storage.read_messages(
            queue, partitions, cursor, descending, limit, now_ms
        )
        return settled(found, settle_window_ms(self.storage, queue.settings.consistency), now_ms)

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


def _partition_list(errors: Errors, value: str | None) -> list[int]:
    if value is None:
        return [1]
    numbers: list[int] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or len(item) > 9:
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
