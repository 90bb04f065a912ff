"""The AweQ front end (api.md Part 4, reference/aweq.md): AweQ's four routes and bodies over
one work queue of one application, whose ``claim_ttl`` is AweQ's checkout lifetime.

Keys are the messages' ids in AweQ's dashed UUID form; the same key comes back on receive and
acknowledges the message's current claim on delete. Errors are JSON and carry AweQ's words in
``message``, where AweQ's developer tool looks for them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import falcon.asgi
import orjson

from queuey.api import requests, responses
from queuey.api.frontend import Access, Mount, install_errors, on_first_use
from queuey.core.errors import InvalidRequest
from queuey.core.ids import UUID_EPOCH_OFFSET
from queuey.core.limits import MAX_CLAIM_LIMIT
from queuey.core.models import Caller, Claim
from queuey.core.validation import Errors, check_int
from queuey.service import QueueService

Request = falcon.asgi.Request
Response = falcon.asgi.Response
T = TypeVar("T")

CHECKOUT_LIFETIME = 120  # seconds: AweQ's, the claim_ttl of the queue it creates
TICKS_PER_MS = 10_000
NONE_AVAILABLE = "No messages available in queue."
FEWER_AVAILABLE = "Fewer messages available than requested."
ALL_AVAILABLE = "Requested batch-size available."


class AweqError(InvalidRequest):
    """A request AweQ refused, in AweQ's words (400)."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__({field: text})
        self.details = {"message": text}


class AweQ:
    """The front end: ``queue`` of ``access.application``, created on first use."""

    def __init__(self, service: QueueService, access: Access, queue: str) -> None:
        self.service = service
        self.access = access
        self.queue = queue

    def install(self, mount: Mount) -> None:
        install_errors(mount.app)
        app = self.access.application
        mount.route("/send-message", SendMessage(self), app)
        mount.route("/receive-message", ReceiveMessage(self), app)
        mount.route("/delete-message/{key}", DeleteMessage(self), app)
        mount.route("/get-stats", GetStats(self), app)

    async def use(self, req: Request, call: Callable[[Caller, str, str], Awaitable[T]]) -> T:
        """``call(caller, application, queue)``, creating the queue on first use."""
        caller = self.access.caller(req)
        settings = {"claim_ttl": CHECKOUT_LIFETIME}
        app = self.access.application
        return await on_first_use(self.service, caller, app, self.queue, call, settings)


class Route:
    def __init__(self, front_end: AweQ) -> None:
        self.front_end = front_end
        self.service = front_end.service


class SendMessage(Route):
    async def on_post(self, req: Request, resp: Response) -> None:
        params = await requests.params(req, self.service.limits.max_batch_bytes)
        body, content_type = _stored(params.get("message"))
        posted, _ = await self.front_end.use(
            req,
            lambda caller, app, queue: self.service.post_raw(
                caller, app, queue, body, content_type, None, None
            ),
        )
        responses.ok(resp, {"status": "okay", "key": dashed(posted[0].id)})


class ReceiveMessage(Route):
    async def on_get(self, req: Request, resp: Response) -> None:
        count = _count(req.get_param("count"))
        params = {"limit": min(count, MAX_CLAIM_LIMIT)}
        claims = await self.front_end.use(
            req, lambda caller, app, queue: self.service.claim(caller, app, queue, params)
        )
        info = (
            NONE_AVAILABLE if not claims else FEWER_AVAILABLE if len(claims) < count
            else ALL_AVAILABLE
        )  # fmt: skip
        responses.ok(
            resp, {"status": "okay", "message": info, "messages": [_item(c) for c in claims]}
        )


class DeleteMessage(Route):
    async def on_delete(self, req: Request, resp: Response, key: str) -> None:
        message_id = _message_id(key)
        await self.front_end.use(
            req,
            lambda caller, app, queue: self.service.ack_message(caller, app, queue, message_id),
        )
        # AweQ answered okay whether or not the key was checked out.
        responses.ok(resp, {"status": "okay"})


class GetStats(Route):
    async def on_get(self, req: Request, resp: Response) -> None:
        queue, counts = await self.front_end.use(req, self.service.stats)
        stats = {
            "queue_length": counts.available,
            "checkouts_count": counts.claimed,
            "checkout_lifetime": f"{queue.settings.claim_ttl}s",
            # A lease ends on time: its message is available again at once, with no rescue
            # loop to wait for.
            "rescue_interval": "0s",
        }
        responses.ok(resp, {"status": "okay", "stats": stats})

    on_head = on_get


def dashed(message_id: str) -> str:
    """A message id (32 hex digits) in AweQ's key form, the dashed UUID."""
    return str(uuid.UUID(hex=message_id))


def _message_id(key: str) -> str:
    try:
        return uuid.UUID(key.strip()).hex
    except ValueError:
        raise AweqError("key", f"{key!r} is not a message key.") from None


def _stored(message: object) -> tuple[bytes, str]:
    """The body and content type that keep a message as it was sent: text as it is, any
    other JSON value as JSON. AweQ refused what JavaScript takes for false."""
    if message is None or message is False or message == "" or message == 0:
        raise AweqError("message", "Message content required.")
    if isinstance(message, str):
        return message.encode("utf-8"), "text/plain"
    return orjson.dumps(message), "application/json"


def _count(text: str | None) -> int:
    errors = Errors()
    count = check_int(errors, "count", text, 1, 1)
    if count is None:
        raise AweqError("count", errors["count"])
    return count


def _item(claim: Claim) -> dict[str, Any]:
    message = claim.message
    body: object = message.body
    if requests.is_json(message.content_type):
        # JSON posted through the v1 API that does not parse is shown as text.
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(message.body)
    return {
        "key": dashed(message.id),
        "timestamp": (message.ticks - UUID_EPOCH_OFFSET) // TICKS_PER_MS,
        "retry_count": message.deliveries - 1,
        "message": body,
    }
