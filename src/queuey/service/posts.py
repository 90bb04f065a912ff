"""New messages from what a request posts: one raw body, a JSON batch, or overwrites by id.

Everything is checked before anything is written, and every bad field is reported at once.
Ids are allocated here: a message's id holds its time, and a delayed message gets the id and
time of when it falls due."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from queuey.core.clock import Clock
from queuey.core.errors import InvalidParameter, InvalidRequest, PayloadTooLarge
from queuey.core.ids import TICKS_PER_SECOND, IdGenerator, ticks_of
from queuey.core.limits import Limits
from queuey.core.models import Message, Queue
from queuey.core.validation import Errors, check_int
from queuey.service.params import dedup_id

DEFAULT_CONTENT_TYPE = "text/plain"


@dataclass(frozen=True, slots=True)
class NewMessages:
    """Messages to write; ``dedup_ids[i]`` belongs to ``messages[i]`` (None: no message
    carried a dedup id)."""

    messages: list[Message]
    dedup_ids: list[str | None] | None = None


class MessageFactory:
    def __init__(self, limits: Limits, clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._ids = IdGenerator(clock)
        self._random = random.Random()

    def raw(
        self,
        queue: Queue,
        body: bytes,
        content_type: str | None,
        ttl: str | None,
        partition: str | None,
        delay: str | None,
        dedup: str | None,
    ) -> NewMessages:
        """One message whose body is the whole request body; the rest comes from headers."""
        limits = self._limits
        settings = queue.settings
        errors = Errors()
        text = self._body(errors, "body", body)
        seconds = errors.integer("ttl", ttl, limits.default_ttl, 1, limits.max_ttl)
        number = errors.integer("partition", partition, 0, 1, queue.partitions)  # 0: not given
        delay_s = settings.delay
        if delay is not None:
            delay_s = errors.integer("delay", delay, settings.delay, 0, limits.max_ttl)
        dedup_ids = [dedup_id(errors, "dedup_id", dedup)]
        errors.raise_if_any()
        if number == 0:
            number = self._random.randint(1, queue.partitions) if queue.partitions > 1 else 1
        message_id, ticks = self._ids.next()
        now_ms = self._now_ms()
        message = self._delayed(
            message_id, ticks, number, text, content_type or DEFAULT_CONTENT_TYPE,
            now_ms + seconds * 1000, delay_s, now_ms,
        )  # fmt: skip
        return NewMessages([message], dedup_ids if dedup_ids[0] is not None else None)

    def batch(self, queue: Queue, payload: object) -> NewMessages:
        """``{"messages": [{"body", "ttl"?, "partition"?, "content_type"?, "delay"?,
        "dedup_id"?}, ...]}``."""
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            raise InvalidParameter()
        items: list[object] = payload["messages"]
        limits = self._limits
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
            delay = item.get("delay")
            if delay is not None or default_delay:
                delay_s = check_int(
                    errors, f"{index}.delay", delay, default_delay, 0, limits.max_ttl
                )
                message = self._delayed(
                    ids[index], first + index, number, body, content_type, expires_ms,
                    delay_s or 0, now_ms,
                )  # fmt: skip
            else:
                message = Message(ids[index], first + index, number, body, content_type, expires_ms)
            dedup = item.get("dedup_id")
            if dedup is not None:
                if dedup_ids is None:
                    dedup_ids = [None] * len(messages)
                dedup_ids.append(dedup_id(errors, f"{index}.dedup_id", dedup))
            elif dedup_ids is not None:
                dedup_ids.append(None)
            messages.append(message)
        errors.raise_if_any()
        return NewMessages(messages, dedup_ids)

    def overwrites(
        self,
        queue: Queue,
        pairs: Sequence[tuple[int, str]],
        body: bytes,
        content_type: str | None,
        ttl: str | None,
    ) -> list[Message]:
        """The messages with these (partition, id) pairs, a new body and a new TTL."""
        limits = self._limits
        errors = Errors()
        text = self._body(errors, "body", body)
        seconds = errors.integer("ttl", ttl, limits.default_ttl, 1, limits.max_ttl)
        for partition, _ in pairs:
            check_int(errors, "partition", partition, None, 1, queue.partitions)
        errors.raise_if_any()
        expires_ms = self._now_ms() + seconds * 1000
        return [
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

    def _delayed(
        self,
        message_id: str,
        ticks: int,
        partition: int,
        body: str,
        content_type: str,
        expires_ms: int,
        delay_s: int,
        now_ms: int,
    ) -> Message:
        """The message, due ``delay_s`` seconds from now with the id and timestamp of that time
        (a new id when it is delayed); its TTL counts from then."""
        if not delay_s:
            return Message(message_id, ticks, partition, body, content_type, expires_ms)
        message_id, ticks = self._ids.delayed(delay_s * TICKS_PER_SECOND)
        delay_ms = delay_s * 1000
        return Message(
            message_id,
            ticks,
            partition,
            body,
            content_type,
            expires_ms + delay_ms,
            now_ms + delay_ms,
        )

    def _body(self, errors: Errors, field: str, body: bytes) -> str:
        """The body as text ("" when it is bad)."""
        if not body:
            errors[field] = "Required"
            return ""
        if len(body) > self._limits.max_message_bytes:
            raise PayloadTooLarge({field: self._too_large()})
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            errors[field] = "Body is not valid UTF-8 text; base64-encode binary data"
            return ""

    def _json_body(self, errors: Errors, field: str, body: object) -> str | None:
        if body is None or body == "" or body is False:
            errors[field] = "Required"
            return None
        if isinstance(body, bool) or not isinstance(body, str | int | float):
            errors[field] = f"{body!r} is not a string"
            return None
        text = body if isinstance(body, str) else str(body)
        if len(text) > self._limits.max_message_bytes // 4 and (
            len(text.encode("utf-8")) > self._limits.max_message_bytes
        ):
            raise PayloadTooLarge({field: self._too_large()})
        return text

    def _too_large(self) -> str:
        return f"Message body is over the limit of {self._limits.max_message_bytes} bytes"

    def _now_ms(self) -> int:
        return self._clock.time_ns() // 1_000_000
