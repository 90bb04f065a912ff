"""Every API call once: the request it makes and how its answer decodes.

``Client`` and ``AsyncClient`` expose these functions as their methods; they differ only in
how they send the request (see ``servers.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, Literal, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import orjson

from queuey.client.models import (
    ClaimedMessage,
    Extension,
    Message,
    NewMessage,
    Posted,
    Queue,
    QueueSettings,
    QueueStats,
    Token,
)

T = TypeVar("T")
D = TypeVar("D")
Payload = dict[str, Any]
Order = Literal["ascending", "descending"]
Right = Literal["read", "post", "claim", "stream", "stats"]
Mode = Literal["broadcast", "roundrobin"]
#: Seconds a stream may stay silent (heartbeats included) before it is taken for cut: its
#: server sends a heartbeat every ``stream_heartbeat`` seconds (15).
STREAM_SILENCE = 60.0


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and the decoding of its successful answer.

    ``path`` is below the application's URL (``/v1/<app>``), or below the server's root when
    it starts with ``/`` (where ``{app}`` stands for the application). ``wait`` is how long the
    server may hold the request (long polling), on top of the client's timeout. Only
    ``statuses`` answers are decoded; the others raise.
    """

    method: str
    path: str
    decode: Callable[[Payload], T]
    query: Mapping[str, str] | None = None
    form: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    wait: float = 0.0
    retry: bool = True
    statuses: tuple[int, ...] = (200, 201)


class QueueOptions(TypedDict, total=False):
    """A queue's settings (api.md, "Queue settings"); the ones left out keep their value."""

    partitions: int
    type: Literal["user", "public"]
    consistency: Literal["weak", "strong", "very_strong"]
    principles: Sequence[str]
    delivery: Literal["at_most_once", "at_least_once", "exactly_once"]
    claim_ttl: int
    max_deliveries: int
    dead_letter_queue: str
    delay: int
    dedup_window: int
    policy: Literal["broadcast", "roundrobin"]
    paused: bool


class StreamOptions(TypedDict, total=False):
    """Where a stream starts and how it delivers (api.md "Streams").

    ``mode`` defaults to the queue's ``policy``; ``partitions`` to all of the queue's.
    Broadcast only: ``after`` (a message id), ``since`` (a timestamp or message id),
    ``last_event_id`` (resume after that message). Round-robin only: ``ttl`` (the lease) and
    ``credit`` (unacked messages held at once). None is the same as left out.
    """

    mode: Mode | None
    partitions: Iterable[int] | None
    after: str | None
    since: str | float | None
    last_event_id: str | None
    ttl: int | None
    credit: int | None


# --- queues -----------------------------------------------------------------------------------


def list_queues(
    offset: str | None = None,
    limit: int | None = None,
    details: bool = False,
    include_count: bool = False,
) -> Call[list[Queue]]:
    """The application's queues, by name from ``offset`` on (inclusive)."""
    query = _strings(offset=offset, limit=limit, details=details or None,
                     include_count=include_count or None)  # fmt: skip
    return Call("GET", "", _queues, query=query)


def create_queue(name: str | None = None, **options: Unpack[QueueOptions]) -> Call[Queue]:
    """Create a queue (a new uuid4 name when ``name`` is None). An existing queue with the
    same settings is not an error: its ``was_created`` is False."""
    form = _queue_form(options)
    if name is not None:
        form["queue_name"] = name
    return Call("POST", "", _queue, form=form)


def update_queue(name: str, **options: Unpack[QueueOptions]) -> Call[Queue]:
    """Change the settings given (partitions only grow)."""
    return Call("PUT", _path(name), _queue, form=_queue_form(options))


def delete_queue(name: str) -> Call[None]:
    """Delete a queue and all its messages."""
    return Call("DELETE", _path(name), _nothing)


def stats(queue: str) -> Call[QueueStats]:
    return Call("GET", _path(queue, "stats"), _stats)


# --- messages ---------------------------------------------------------------------------------


def post(
    queue: str,
    body: str | bytes,
    *,
    ttl: int | None = None,
    partition: int | None = None,
    delay: int | None = None,
    dedup_id: str | None = None,
    content_type: str | None = None,
) -> Call[Posted]:
    """Post one message (a raw body). A JSON ``content_type`` goes as a batch of one, since a
    JSON request body is a batch to the API."""
    if content_type is not None and _is_json(content_type):
        text = body.decode() if isinstance(body, bytes) else body
        item = NewMessage(text, ttl, partition, delay, dedup_id, content_type)
        return Call("POST", _path(queue), _first_posted, **_batch(item))
    headers = _strings(**{"X-TTL": ttl, "X-Partition": partition, "X-Delay": delay,
                          "X-Dedup-Id": dedup_id, "Content-Type": content_type})  # fmt: skip
    content = body.encode() if isinstance(body, str) else body
    return Call("POST", _path(queue), _first_posted, content=content, headers=headers)


def post_batch(queue: str, messages: Iterable[NewMessage | str]) -> Call[list[Posted]]:
    """Post up to 1000 messages at once, all or nothing; the answer keeps their order."""
    return Call("POST", _path(queue), _posted, **_batch(*messages))


def read(
    queue: str,
    *,
    since: str | float | None = None,
    after: str | None = None,
    order: Order | None = None,
    limit: int | None = None,
    partitions: Iterable[int] | None = None,
    wait: int | None = None,
) -> Call[list[Message]]:
    """Messages of ``partitions`` (default: partition 1) in time order, never removing them.
    ``since`` is a timestamp or a message id (inclusive; a float time is only as exact as a
    float: pass a message's ``timestamp`` string to start exactly at it), ``after`` a message
    id (exclusive);
    ``wait`` holds the request up to that many seconds until a message arrives."""
    query = _strings(since=since, after=after, order=order, limit=limit,
                     partitions=_numbers(partitions), wait=wait)  # fmt: skip
    return Call("GET", _path(queue), _messages, query=query, wait=wait or 0)


def get_messages(queue: str, ids: Iterable[str | Message | Posted]) -> Call[list[Message]]:
    """The messages of these ids (``[partition:]id``) that exist."""
    return Call("GET", _path(queue, _refs(ids)), _messages)


def put_messages(
    queue: str,
    ids: Iterable[str | Message | Posted],
    body: str | bytes,
    *,
    ttl: int | None = None,
    content_type: str | None = None,
) -> Call[None]:
    """Overwrite these messages' body and restart their TTL, creating the missing ones."""
    headers = _strings(**{"X-TTL": ttl, "Content-Type": content_type})
    content = body.encode() if isinstance(body, str) else body
    return Call("PUT", _path(queue, _refs(ids)), _nothing, content=content, headers=headers)


def delete_messages(queue: str, ids: Iterable[str | Message | Posted]) -> Call[None]:
    return Call("DELETE", _path(queue, _refs(ids)), _nothing)


# --- claims -----------------------------------------------------------------------------------


def claim(
    queue: str,
    *,
    limit: int | None = None,
    ttl: int | None = None,
    partitions: Iterable[int] | None = None,
    wait: int | None = None,
) -> Call[list[ClaimedMessage]]:
    """Lease up to ``limit`` available messages for ``ttl`` seconds (default: the queue's
    ``claim_ttl``), oldest first, waiting up to ``wait`` seconds for one."""
    form = _strings(limit=limit, ttl=ttl, partitions=_numbers(partitions), wait=wait)
    return Call("POST", _path(queue, "claims"), _claimed, form=form, wait=wait or 0)


def ack(queue: str, claims: Iterable[str | ClaimedMessage]) -> Call[list[str]]:
    """Acknowledge claims: their messages are deleted. Raises ClaimExpired, listing what was
    still acked and what failed, when any claim was no longer current."""
    return Call("DELETE", _path(queue, "claims", _claim_ids(claims)), _acked)


def extend(queue: str, claims: Iterable[str | ClaimedMessage], ttl: int) -> Call[Extension]:
    """Keep the messages leased ``ttl`` more seconds from now (0 releases them)."""
    form = {"ttl": str(ttl)}
    return Call("PATCH", _path(queue, "claims", _claim_ids(claims)), _extension, form=form)


def release(queue: str, claims: Iterable[str | ClaimedMessage]) -> Call[Extension]:
    """Make the claimed messages available again at once."""
    return extend(queue, claims, 0)


# --- streams ----------------------------------------------------------------------------------


def stream(queue: str, websocket: bool = False, **options: Unpack[StreamOptions]) -> Call[None]:
    """The request that opens a stream (``Client.stream``, ``Client.stream_socket``)."""
    query = _strings(**{**options, "partitions": _numbers(options.get("partitions"))})
    query.pop("last_event_id", None)
    headers = _strings(**{"Last-Event-ID": options.get("last_event_id")})
    if not websocket:
        headers["Accept"] = "text/event-stream"
    return Call("GET", _path(queue, "stream"), _nothing, query=query, headers=headers,
                wait=STREAM_SILENCE, statuses=(101,) if websocket else (200,))  # fmt: skip


# --- maintenance and tokens -------------------------------------------------------------------


def purge(queue: str) -> Call[int]:
    """Delete every message and claim of the queue, keeping it and its settings; how many
    messages went (approximate on Cassandra)."""
    return Call("DELETE", _path(queue, "messages"), _count("purged"))


def redrive(queue: str, *, to: str | None = None, limit: int | None = None) -> Call[int]:
    """Move messages of a dead-letter queue back (to the queue each came from, or ``to``),
    at most ``limit``; how many moved. Repeating a call never moves a message twice."""
    return Call("POST", _path(queue, "redrive"), _count("moved"),
                form=_strings(to=to, limit=limit))  # fmt: skip


def mint_token(
    subject: str, queues: Iterable[str], rights: Iterable[Right], *, ttl: int | None = None
) -> Call[Token]:
    """A signed token for a web page of ``subject`` (``user:<id>`` or ``bid:<email>``): it
    acts for the application with only ``rights``, on only ``queues`` (a trailing ``*``
    matches a prefix), for ``ttl`` seconds (3600)."""
    form = _strings(queues=",".join(queues), rights=",".join(rights), subject=subject, ttl=ttl)
    return Call("POST", "/tokens/{app}", _token, form=form)


# --- operations -------------------------------------------------------------------------------


def heartbeat() -> Call[bool]:
    """True when the server and its storage answer (no retry: the answer is the point)."""
    return Call("GET", "/__heartbeat__", _is_ok, retry=False, statuses=(200, 503))


def version() -> Call[dict[str, str]]:
    return Call("GET", "/__version__", _version)


# --- requests ---------------------------------------------------------------------------------


def _path(*segments: str) -> str:
    return "/".join(quote(segment, safe=":,") for segment in segments)


def _strings(**values: object) -> dict[str, str]:
    """The values that are set, written as the API reads them."""
    return {key: _text(value) for key, value in values.items() if value is not None}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.7f}"
    return str(value)


def _numbers(values: Iterable[int] | None) -> str | None:
    return None if values is None else ",".join(str(value) for value in values)


def _queue_form(options: QueueOptions) -> dict[str, str]:
    form = _strings(**options)
    principles = options.get("principles")
    if principles is not None and not isinstance(principles, str):
        form["principles"] = ",".join(principles)
    return form


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == "application/json"


def _batch(*messages: NewMessage | str) -> dict[str, Any]:
    items = [_item(message) for message in messages]
    return {
        "content": orjson.dumps({"messages": items}),
        "headers": {"Content-Type": "application/json"},
    }


def _item(message: NewMessage | str) -> dict[str, object]:
    if isinstance(message, str):
        return {"body": message}
    fields = {
        "body": message.body,
        "ttl": message.ttl,
        "partition": message.partition,
        "delay": message.delay,
        "dedup_id": message.dedup_id,
        "content_type": message.content_type,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _refs(ids: Iterable[str | Message | Posted]) -> str:
    return ",".join(item if isinstance(item, str) else item.ref for item in ids)


def claim_list(claims: Iterable[str | ClaimedMessage]) -> list[str]:
    return [item if isinstance(item, str) else item.claim_id for item in claims]


def _claim_ids(claims: Iterable[str | ClaimedMessage]) -> str:
    return ",".join(claim_list(claims))


# --- answers ----------------------------------------------------------------------------------


def _nothing(payload: Payload) -> None:
    return None


def _is_ok(payload: Payload) -> bool:
    return payload.get("status") == "ok"


def _version(payload: Payload) -> dict[str, str]:
    return {key: str(value) for key, value in payload.items() if key != "status"}


def _queues(payload: Payload) -> list[Queue]:
    return [_queue(entry) for entry in payload["queues"]]


def _pick(cls: type[D], payload: Payload, **decoded: object) -> D:
    """``cls`` from the fields of ``payload`` it has (the server may add more), with
    ``decoded`` replacing some of them."""
    values = {field.name: payload[field.name] for field in fields(cls)}  # type: ignore[arg-type]
    return cls(**{**values, **decoded})


def _queue(entry: Payload) -> Queue:
    settings = None
    if "partitions" in entry:
        settings = _pick(QueueSettings, entry, principles=tuple(entry["principles"]))
    created = entry.get("created")
    return Queue(
        name=entry["queue_name"],
        settings=settings,
        # A listing's ``created`` is when (epoch seconds); a create/update answer's says whether.
        created_at=None if isinstance(created, bool) else created,
        count=entry.get("count"),
        was_created=created if isinstance(created, bool) else None,
    )


def _posted(payload: Payload) -> list[Posted]:
    return [
        Posted(item["key"], item["timestamp"], item["partition"], item.get("duplicate", False))
        for item in payload["messages"]
    ]


def _first_posted(payload: Payload) -> Posted:
    return _posted(payload)[0]


def decode_message(payload: Payload) -> Message:
    """A message of a read, or (with its ``claim_id``) of a claim or a round-robin stream."""
    if "claim_id" in payload:
        return _pick(ClaimedMessage, payload)
    return _pick(Message, payload)


def _messages(payload: Payload) -> list[Message]:
    return [_pick(Message, item) for item in payload["messages"]]


def _claimed(payload: Payload) -> list[ClaimedMessage]:
    return [_pick(ClaimedMessage, item) for item in payload["messages"]]


def _acked(payload: Payload) -> list[str]:
    return list(payload["acked"])


def _extension(payload: Payload) -> Extension:
    if "released" in payload:
        return Extension(tuple(payload["released"]), None)
    return Extension(tuple(payload["extended"]), payload["claim_expires"])


def _count(field: str) -> Callable[[Payload], int]:
    def count(payload: Payload) -> int:
        return int(payload[field])

    return count


def _token(payload: Payload) -> Token:
    return Token(payload["token"], payload["expires"])


def _stats(payload: Payload) -> QueueStats:
    return _pick(QueueStats, payload["stats"])
