"""Response shapes and request-body helpers shared by the resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import falcon.asgi
import orjson

from queuey.api.auth import KeyRing
from queuey.core.errors import InvalidParameter, InvalidRequest, PayloadTooLarge
from queuey.core.ids import timestamp_of
from queuey.core.models import Caller, Claim, Message, Queue, QueueStats
from queuey.service import Posted, QueueService, claim_id


class Resource:
    """A REST resource: the service to call and the keys that say who is calling."""

    def __init__(self, service: QueueService, keys: KeyRing) -> None:
        self.service = service
        self.keys = keys

    def caller(self, req: falcon.asgi.Request) -> Caller:
        return self.keys.caller(req.auth)


def ok(resp: falcon.asgi.Response, body: dict[str, Any], status: int = 200) -> None:
    resp.status = status
    resp.data = orjson.dumps(body)


def message(m: Message) -> dict[str, Any]:
    """A message as reads (and broadcast streams) return it."""
    return {
        "message_id": m.id,
        "timestamp": timestamp_of(m.ticks),
        "body": m.body,
        "partition": m.partition,
        "content_type": m.content_type,
    }


def messages(found: Sequence[Message]) -> dict[str, Any]:
    return {"status": "ok", "messages": [message(m) for m in found]}


def posted(result: Posted) -> dict[str, Any]:
    items, duplicates = result
    entries = [
        {"key": m.id, "timestamp": timestamp_of(m.ticks), "partition": m.partition} for m in items
    ]
    if duplicates is not None:
        for entry, duplicate in zip(entries, duplicates, strict=True):
            if duplicate:
                entry["duplicate"] = True
    return {"status": "ok", "messages": entries}


def epoch(ms: int) -> str:
    """Epoch milliseconds written like timestamps (7 decimals)."""
    return "%d.%03d0000" % divmod(ms, 1000)  # noqa: UP031


def claim(c: Claim) -> dict[str, Any]:
    """A claimed message as claims (and round-robin streams) return it."""
    m = c.message
    return {
        "message_id": m.id,
        "timestamp": timestamp_of(m.ticks),
        "body": m.body,
        "partition": m.partition,
        "content_type": m.content_type,
        "claim_id": claim_id(c),
        "claim_expires": epoch(c.expires_ms),
        "deliveries": m.deliveries,
    }


def claims(found: Sequence[Claim]) -> dict[str, Any]:
    return {"status": "ok", "messages": [claim(c) for c in found]}


def stats(queue: Queue, counts: QueueStats) -> dict[str, Any]:
    settings = queue.settings
    return {
        "status": "ok",
        "stats": {
            "messages": counts.available + counts.claimed,
            "available": counts.available,
            "claimed": counts.claimed,
            "delayed": counts.delayed,
            "dead_lettered": counts.dead_lettered,
            "oldest": None if counts.oldest is None else timestamp_of(counts.oldest),
            "newest": None if counts.newest is None else timestamp_of(counts.newest),
            "claim_ttl": settings.claim_ttl,
            "delivery": settings.delivery,
            "paused": settings.paused,
        },
    }


def queue_settings(queue: Queue) -> dict[str, Any]:
    settings = queue.settings
    return {
        "queue_name": queue.name,
        "partitions": settings.partitions,
        "type": settings.type,
        "consistency": settings.consistency,
        "principles": list(settings.principles),
        "delivery": settings.delivery,
        "claim_ttl": settings.claim_ttl,
        "max_deliveries": settings.max_deliveries,
        "dead_letter_queue": settings.dead_letter_queue,
        "delay": settings.delay,
        "dedup_window": settings.dedup_window,
        "policy": settings.policy,
        "paused": settings.paused,
    }


def queue_details(queue: Queue) -> dict[str, Any]:
    return {**queue_settings(queue), "created": queue.created, "application": queue.app}


def query(req: falcon.asgi.Request) -> dict[str, str]:
    """Query parameters; a repeated parameter counts with its last value."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in req.params.items()}


async def read_body(req: falcon.asgi.Request, limit: int, field: str = "body") -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without buffering it."""
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge({field: f"Request body is over the limit of {limit} bytes"})
    body: bytes = await req.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge({field: f"Request body is over the limit of {limit} bytes"})
    return body


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


async def params(req: falcon.asgi.Request, limit: int) -> dict[str, object]:
    """The query string's parameters, then the body's (form-encoded or a JSON object)."""
    merged: dict[str, object] = dict(query(req))
    if req.content_length or req.get_header("Transfer-Encoding"):
        merged.update(await form(req, limit))
    return merged


async def form(req: falcon.asgi.Request, limit: int) -> dict[str, object]:
    """Parameters of a POST/PUT on queues: form-encoded or a JSON object."""
    content_type = (req.content_type or "").partition(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        params: dict[str, object] = {}
        media = await req.get_media()
        async for part in media:
            params[part.name] = await part.get_text()
        return params
    body = await read_body(req, limit)
    if content_type == "application/json":
        if not body.strip():
            return {}
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidParameter() from None
        if not isinstance(parsed, dict):
            raise InvalidParameter("The JSON body must be an object of parameters.")
        return parsed
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise InvalidRequest({"body": "Form body is not valid UTF-8"}) from None
