"""Response shapes: what each operation answers, as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import falcon.asgi
import orjson

from queuey.core.ids import timestamp_of
from queuey.core.models import Claim, Message, Queue, QueueStats
from queuey.service import Posted, claim_id
from queuey.service.bounded_read import Read


def ok(resp: falcon.asgi.Response, body: dict[str, Any], status: int = 200) -> None:
    resp.status = status
    resp.data = orjson.dumps(body)


def read(done: Read) -> dict[str, Any]:
    """A read's answer; one cut short by the read bound says where to go on."""
    answer = messages(done.messages)
    if done.rest is not None:
        more: dict[str, Any] = {"partition": done.rest.partition}
        if done.rest.after is not None:
            more["after"] = done.rest.after
        answer["more"] = more
    return answer


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


def queue_list(
    queues: Sequence[str] | Sequence[Queue], counts: Sequence[int] | None
) -> dict[str, Any]:
    """A listing: names, or queues' details, with their counts when asked."""
    entries: list[dict[str, object]] = [
        {"queue_name": q} if isinstance(q, str) else queue_details(q) for q in queues
    ]
    if counts is not None:
        for entry, count in zip(entries, counts, strict=True):
            entry["count"] = count
    return {"status": "ok", "queues": entries}


def extended(claim_ids: list[str], until_ms: int | None) -> dict[str, Any]:
    """An extension's answer; a release (``until_ms`` None) leaves no lease to end."""
    if until_ms is None:
        return {"status": "ok", "released": claim_ids}
    return {"status": "ok", "extended": claim_ids, "claim_expires": epoch(until_ms)}


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
