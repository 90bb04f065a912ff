"""Whether a request's client is still there, and whether its answer reached it.

A long poll (a claim or read with ``wait``) can outlast its client: the client gives up and
closes the connection. The server then reports ``http.disconnect`` from the request's
``receive`` (once the body has been read, uvicorn's ``receive`` blocks until the connection is
lost or the answer is complete). :class:`Connection` watches for it while the request waits,
so the wait ends at once and nothing is claimed for nobody; and it notes whether the answer's
last byte was handed to a connection that was still open, so that what was claimed for an
answer that went nowhere is given back (see :meth:`Connection.undelivered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import falcon.asgi

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Undo = Callable[[], Awaitable[None]]

#: The scope key of the request's :class:`Connection`.
SCOPE_KEY = "queuey.connection"


class Connection:
    """One request's client, as the service's long polls see it (``service.waiting.Client``)."""

    def __init__(self) -> None:
        self._receive: Receive | None = None
        self._gone = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._undo: list[Undo] = []
        self._delivered = False

    @property
    def gone(self) -> bool:
        """Whether the client has disconnected (as far as has been seen yet)."""
        return self._gone.is_set()

    async def departed(self) -> None:
        """Return when the client disconnects. Only once the request's body has been read:
        from then on the connection's events are read here (and what remains of a body is
        dropped)."""
        self._watch()
        await self._gone.wait()

    def undelivered(self, undo: Undo) -> None:
        """Run ``undo`` after the request if its answer did not reach an open connection (the
        client was gone when the answer's end was sent, or the send failed)."""
        self._undo.append(undo)
        self._watch()

    # --- the ASGI side ------------------------------------------------------------------

    def receiving(self, receive: Receive) -> Receive:
        """``receive`` noting a disconnect."""
        self._receive = receive

        async def observed() -> dict[str, Any]:
            event = await receive()
            if event["type"] == "http.disconnect":
                self._gone.set()
            return event

        return observed

    def sending(self, send: Send) -> Send:
        """``send`` noting whether the answer's end went to an open connection."""

        async def observed(event: dict[str, Any]) -> None:
            last = event["type"] == "http.response.body" and not event.get("more_body", False)
            if last and self._undo:
                await asyncio.sleep(0)  # a disconnect already reported is seen first
            await send(event)
            if last:
                self._delivered = not self.gone

        return observed

    async def finish(self) -> None:
        """After the request: stop watching, and undo what went undelivered."""
        watcher = self._watcher
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if self._delivered:
            return
        for undo in self._undo:
            try:
                await undo()
            except Exception:
                log.exception("could not give back what an undelivered answer held")

    def _watch(self) -> None:
        if self._watcher is None and self._receive is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._read_until_gone())

    async def _read_until_gone(self) -> None:
        receive = self._receive
        assert receive is not None
        with contextlib.suppress(Exception):
            while (await receive())["type"] != "http.disconnect":
                pass
        self._gone.set()


def connection(req: falcon.asgi.Request) -> Connection:
    """The request's connection (set up by :class:`queuey.api.asgi.QueueyApp`)."""
    found: Connection = req.scope[SCOPE_KEY]
    return found
