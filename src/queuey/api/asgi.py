"""The Falcon ASGI app, refusing bodies that stop before their end."""

from __future__ import annotations

from typing import Any

import falcon.asgi

from queuey.api import delivery
from queuey.core.errors import IncompleteBody

Receive = Any  # an ASGI receive callable
Event = dict[str, Any]


class QueueyApp(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """A client that goes away in the middle of its request body (or is disconnected by the
    server's request timeout) must not have the part it sent taken for the whole body.

    Falcon's request stream ends quietly at a disconnect; here a disconnect while more of the
    body is due raises IncompleteBody (408) from the read instead, so nothing is stored.

    Every request gets a :class:`queuey.api.delivery.Connection` (in its scope): long polls
    stop waiting when their client disconnects, and what a claim took for an answer that did
    not reach its client is given back.
    """

    async def __call__(self, scope: Any, receive: Receive, send: Any) -> None:  # type: ignore[override]
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        client = scope[delivery.SCOPE_KEY] = delivery.Connection()
        receive = client.receiving(_whole_bodies(receive))
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
