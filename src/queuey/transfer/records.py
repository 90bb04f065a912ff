"""The lines of an export (NDJSON): a header, then each queue followed by its messages.

::

    {"format": "queuey-export", "version": 1, "app": "myapp", "exported_ms": 1795508311000}
    {"kind": "queue", "name": "jobs", "created": 1795508000.5, "settings": {"partitions": 2, ...}}
    {"kind": "message", "queue": "jobs", "partition": 1, "id": "…", "timestamp": "…",
     "content_type": "text/plain", "expires_ms": …, "ttl_ms": …, "due_ms": 0, "deliveries": 0,
     "body": "…"}

A body is JSON text when it is valid Unicode; otherwise (lone surrogates, which JSON cannot
carry) ``body_b64`` holds its UTF-8 bytes with the surrogates passed through, so every body
comes back exactly. ``expires_ms`` and ``due_ms`` are epoch milliseconds (what an import
stores); ``ttl_ms`` (time left at the export) and ``timestamp`` (the id's time, as the API
writes it) are for people and other tools.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from queuey.core.errors import InvalidRequest
from queuey.core.ids import ticks_of, timestamp_of
from queuey.core.limits import Limits
from queuey.core.models import Message, Queue, QueueSettings
from queuey.service import params

FORMAT = "queuey-export"
VERSION = 1
MAX_CONTENT_TYPE = 255


class BadRecord(ValueError):
    """A line that is not a record of an export; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Header:
    app: str
    exported_ms: int


@dataclass(frozen=True, slots=True)
class QueueRecord:
    name: str
    created: float
    settings: QueueSettings


@dataclass(frozen=True, slots=True)
class MessageRecord:
    queue: str
    message: Message


Record = Header | QueueRecord | MessageRecord


def header_line(app: str, now_ms: int) -> bytes:
    record = {"format": FORMAT, "version": VERSION, "app": app, "exported_ms": now_ms}
    return orjson.dumps(record) + b"\n"


def queue_line(queue: Queue) -> bytes:
    settings = dataclasses.asdict(queue.settings)
    settings["principles"] = list(queue.settings.principles)
    record = {"kind": "queue", "name": queue.name, "created": queue.created, "settings": settings}
    return orjson.dumps(record) + b"\n"


def message_line(queue: str, message: Message, now_ms: int) -> bytes:
    record: dict[str, Any] = {
        "kind": "message",
        "queue": queue,
        "partition": message.partition,
        "id": message.id,
        "timestamp": timestamp_of(message.ticks),
        "content_type": message.content_type,
        "expires_ms": message.expires_ms,
        "ttl_ms": max(message.expires_ms - now_ms, 0),
        "due_ms": message.due_ms,
        "deliveries": message.deliveries,
    }
    try:
        return orjson.dumps({**record, "body": message.body}) + b"\n"
    except orjson.JSONEncodeError:  # not valid Unicode: its bytes, surrogates and all
        raw = message.body.encode("utf-8", "surrogatepass")
        return orjson.dumps({**record, "body_b64": base64.b64encode(raw).decode()}) + b"\n"


def parse(line: bytes, limits: Limits) -> Record:
    """The record of one line (BadRecord if it is none)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BadRecord(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    if "format" in record:
        return _header(record)
    kind = record.get("kind")
    if kind == "queue":
        return _queue(record, limits)
    if kind == "message":
        return _message(record)
    raise BadRecord(f"unknown kind {kind!r} (queue or message)")


def _header(record: dict[str, Any]) -> Header:
    if record.get("format") != FORMAT or record.get("version") != VERSION:
        raise BadRecord(f"not a {FORMAT} version {VERSION} header")
    app, exported = record.get("app"), record.get("exported_ms")
    if not isinstance(app, str) or not app or not _is_int(exported):
        raise BadRecord("the header needs app (text) and exported_ms (integer)")
    return Header(app, exported)


def _queue(record: dict[str, Any], limits: Limits) -> QueueRecord:
    name, created, settings = record.get("name"), record.get("created"), record.get("settings")
    if not isinstance(settings, dict) or not isinstance(created, int | float):
        raise BadRecord("a queue needs created (a number) and settings (an object)")
    given = {key: _as_param(value) for key, value in settings.items()}
    try:
        valid_name, parsed = params.new_queue({**given, "queue_name": name}, limits)
    except InvalidRequest as error:
        details = "; ".join(f"{k}: {v}" for k, v in error.errors.items())
        raise BadRecord(f"queue {name!r}: {details}") from None
    return QueueRecord(valid_name, float(created), parsed)


def _as_param(value: object) -> object:
    """A setting as the API takes it (principles as a comma list)."""
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value


def _message(record: dict[str, Any]) -> MessageRecord:
    queue, message_id = record.get("queue"), record.get("id")
    if not isinstance(queue, str) or not isinstance(message_id, str):
        raise BadRecord("a message needs queue and id (text)")
    ticks = ticks_of(message_id)
    if ticks is None:
        raise BadRecord(f"{message_id!r} is not a message id (32 hex digits, a version-1 UUID)")
    numbers = [record.get(field) for field in ("partition", "expires_ms", "due_ms", "deliveries")]
    partition, expires_ms, due_ms, deliveries = (n if _is_int(n) else -1 for n in numbers)
    if partition < 1 or min(expires_ms, due_ms, deliveries) < 0:
        raise BadRecord(
            "a message needs partition (1 or more), expires_ms, due_ms and deliveries "
            "(integers, 0 or more)"
        )
    content_type = record.get("content_type")
    if not isinstance(content_type, str) or not 0 < len(content_type) <= MAX_CONTENT_TYPE:
        raise BadRecord(f"content_type must be text of 1 to {MAX_CONTENT_TYPE} characters")
    body = _body(record)
    message = Message(message_id, ticks, partition, body, content_type, expires_ms, due_ms,
                      deliveries)  # fmt: skip
    return MessageRecord(queue, message)


def _body(record: dict[str, Any]) -> str:
    if isinstance(record.get("body"), str):
        return str(record["body"])
    encoded = record.get("body_b64")
    if not isinstance(encoded, str):
        raise BadRecord("a message needs body (text) or body_b64 (base64)")
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeDecodeError):
        raise BadRecord("body_b64 is not base64 of UTF-8 text") from None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
