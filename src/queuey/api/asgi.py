"""The Falcon ASGI app, refusing bodies that stop before their end, with WebSocket connections
handed to a raw ASGI handler (the stream route's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import falcon.asgi

from queuey.api import delivery
from queuey.core.errors import IncompleteBody

Receive = Any  # an ASGI receive callable
Event = dict[str, Any]
WebSocketHandler = Callable[[Any, Receive, Any], Awaitable[None]]


class QueueyApp(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """A client that goes away in the middle of its request body (or is disconnected by the
    server's request timeout) must not have the part it sent taken for the whole body.

    Falcon's request stream ends quietly at a disconnect; here a disconnect while more of the
    body is due raises IncompleteBody (408) from the read instead, so nothing is stored.

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
        client = scope[delivery.SCOPE_KEY] = delivery.Connection()
        receive = client.receiving(_whole_bodies(receive))
        scope["queuey.receive"] = receive  # streams watch it for the client leaving
        try:
            await super().__call__(scope, receive, client.sending(send))
        finally:
            await client.finish()


def _whole_bodies(receive: Receive) -> Receive:
    expecting = False  # whether more of the body is due

    async def guarded() -> Event:
        nonlocal expecting
        event: Event = await receive()
        if event["type"] == "http.request":
            expecting = event.get("more_body", False)
        elif expecting:
            expecting = False
            raise IncompleteBody()
        return event

    return guarded
