"""The Falcon ASGI app, refusing bodies that stop before their end or run over their limit,
answering unknown methods with a 405, handing large answers to the server in slices, and with
WebSocket connections handed to a raw ASGI handler (the stream route's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import falcon
import falcon.asgi
from falcon.constants import COMBINED_METHODS
from falcon.routing import map_http_methods

from queuey.api import delivery
from queuey.api.errors import error_body
from queuey.core.errors import IncompleteBody, MethodNotAllowed, NotFound, PayloadTooLarge

Receive = Any  # an ASGI receive callable
Send = Any  # an ASGI send callable
Event = dict[str, Any]
WebSocketHandler = Callable[[Any, Receive, Any], Awaitable[None]]

#: The scope key under which a resource states how many body bytes it accepts (see
#: :func:`limit_body`); the request's receive refuses more than that, whatever the encoding.
BODY_LIMIT = "queuey.body_limit"

#: The most response bytes handed to the server at once: the server waits until the client
#: has taken the previous slice (its transport's write buffer has drained) before it takes the
#: next, so a client that does not read holds at most about this much unsent data in the server.
SEND_SLICE = 65_536


def limit_body(scope: dict[str, Any], limit: int) -> None:
    """Refuse (413) a request body over ``limit`` bytes, wherever it is read from."""
    scope[BODY_LIMIT] = limit


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge({"body": f"Request body is over the limit of {limit} bytes"})


class Sockets:
    """WebSocket connections by path prefix; the others go to ``default``."""

    def __init__(self, default: WebSocketHandler) -> None:
        self.default = default
        self._prefixes: list[tuple[str, WebSocketHandler]] = []

    def add(self, prefix: str, handler: WebSocketHandler) -> None:
        self._prefixes.append((prefix, handler))

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        for prefix, handler in self._prefixes:
            if path.startswith(prefix):
                await handler(scope, receive, send)
                return
        await self.default(scope, receive, send)


class QueueyApp(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """A client that goes away in the middle of its request body (or is disconnected by the
    server's request timeout) must not have the part it sent taken for the whole body.

    Falcon's request stream ends quietly at a disconnect; here a disconnect while more of the
    body is due raises IncompleteBody (408) from the read instead, so nothing is stored. A body
    that grows past the limit its resource set (:func:`limit_body`) raises PayloadTooLarge
    (413) from the read that crosses it, so no encoding (form, JSON, multipart, raw) buffers
    more than the limit.

    Falcon answers a method it does not know (``PURGE``) with a 400; here it is a 405 with
    ``Allow``, as for any other method the resource does not support.

    Every request gets a :class:`queuey.api.delivery.Connection` (in its scope): long polls
    stop waiting when their client disconnects, and what a claim took for an answer that did
    not reach its client is given back.
    """

    #: Where WebSocket connections go (None: Falcon's own handling).
    websocket: WebSocketHandler | None = None

    async def __call__(self, scope: Any, receive: Receive, send: Any) -> None:  # type: ignore[override]
        kind = scope["type"]
        if kind == "websocket" and self.websocket is not None:
            await self.websocket(scope, receive, send)
            return
        if kind != "http":
            await super().__call__(scope, receive, send)
            return
        if scope["method"] not in COMBINED_METHODS:
            await _send_error(send, *self.unknown_method(scope["path"]))
            return
        client = scope[delivery.SCOPE_KEY] = delivery.Connection()
        receive = client.receiving(_whole_bodies(receive, scope))
        scope["queuey.receive"] = receive  # streams watch it for the client leaving
        try:
            await super().__call__(scope, receive, _in_slices(client.sending(send)))
        finally:
            await client.finish()

    def allowed_methods(self, path: str) -> list[str] | None:
        """The methods the resource at ``path`` answers, as its 405's ``Allow`` lists them (the
        ones it implements, then OPTIONS); None when no resource is there."""
        if len(path) > 1 and self.req_options.strip_url_path_trailing_slash:
            path = path.rstrip("/")
        route = self._router.find(path)
        if route is None:
            return None
        implemented = map_http_methods(route[0])
        allowed = sorted(m for m in implemented if m not in ("CONNECT", "TRACE", "OPTIONS"))
        return [*allowed, "OPTIONS"]

    def unknown_method(self, path: str) -> tuple[int, dict[str, str], list[tuple[bytes, bytes]]]:
        """Status, error and headers of the answer to a method no resource implements."""
        allowed = self.allowed_methods(path)
        if allowed is None:
            return 404, {NotFound.key: NotFound.message}, []
        listed = ", ".join(allowed)
        error = {MethodNotAllowed.key: f"Allowed methods: {listed}"}
        return 405, error, [(b"allow", listed.encode())]


async def _send_error(
    send: Send, status: int, error_msg: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    body = error_body(error_msg)
    head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": head + headers})
    await send({"type": "http.response.body", "body": body})


def _whole_bodies(receive: Receive, scope: dict[str, Any]) -> Receive:
    expecting = False  # whether more of the body is due
    received = 0

    async def guarded() -> Event:
        nonlocal expecting, received
        event: Event = await receive()
        if event["type"] == "http.request":
            expecting = event.get("more_body", False)
            received += len(event.get("body", b""))
            limit = scope.get(BODY_LIMIT)
            if limit is not None and received > limit:
                raise too_large(limit)
        elif expecting:
            expecting = False
            raise IncompleteBody()
        return event

    return guarded


def _in_slices(send: Send) -> Send:
    """A response body of more than SEND_SLICE bytes goes to the server a slice at a time; each
    ``send`` returns once the server's write buffer for the connection has room again."""

    async def sliced(event: Event) -> None:
        body = event.get("body", b"")
        if event["type"] != "http.response.body" or len(body) <= SEND_SLICE:
            await send(event)
            return
        more_body = event.get("more_body", False)
        view = memoryview(body)
        last = len(body) - SEND_SLICE
        for start in range(0, len(body), SEND_SLICE):
            piece = bytes(view[start : start + SEND_SLICE])
            await send({"type": "http.response.body", "body": piece,
                        "more_body": more_body or start < last})  # fmt: skip

    return sliced
