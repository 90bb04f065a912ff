"""The HTTP protocol of ``queuey serve``: uvicorn's httptools protocol, with a deadline on
reading each request.

uvicorn closes a connection idle between requests after ``timeout_keep_alive``, but sets no
limit on a connection that never sends a request, or on one that sends its request a byte at a
time, or stops in the middle: each would hold its socket and memory for as long as the client
likes. Here a client has ``request_timeout`` seconds (``[queuey] request_timeout``) to send a
whole request, head and body, from the request's first byte or, on a new connection, from the
connection's opening; after that it gets a 408 (when no response has started) and the
connection is closed. A request whose body was cut off this way stores nothing (see
``queuey.api.asgi``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _timeout_response(seconds: float) -> bytes:
    body = orjson.dumps(
        {"status": "error",
         "error_msg": {"RequestTimeout": f"The request was not received within {seconds:g} s."}}
    )  # fmt: skip
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class QueueyHttpProtocol(HttpToolsProtocol):
    """Requests only note when their reading began and ended (two attribute stores); one
    timer a connection, re-armed when it fires (every ``request_timeout`` at most), closes the
    connection whose current request has been read for longer, instead of a timer armed and
    cancelled for every request."""

    def __init__(self, *args: Any, request_timeout: float = 60.0, **kwargs: Any) -> None:
        """``request_timeout``: seconds to receive a whole request."""
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self._watch: asyncio.TimerHandle | None = None
        # When the request being read began (or the connection opened); None while no
        # request is being read (between requests, or while the application answers).
        self._reading_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        now = self.loop.time()
        self._reading_since = now  # a new connection has to send its first request in time
        self._watch = self.loop.call_at(now + self.request_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._reading_since is None:
            self._reading_since = self.loop.time()

    def on_message_complete(self) -> None:
        self._reading_since = None
        super().on_message_complete()

    def shutdown(self) -> None:
        """Server shutdown: a stream in progress ends (its client reconnects, elsewhere if
        need be) instead of holding the shutdown up forever."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            end = cycle.scope.get("queuey.end_stream")
            if callable(end):
                end()
        super().shutdown()

    def _check(self) -> None:
        now = self.loop.time()
        since = self._reading_since
        if since is not None and now - since >= self.request_timeout:
            self._watch = None
            self._timed_out()
            return
        due = since + self.request_timeout if since is not None else now + self.request_timeout
        self._watch = self.loop.call_at(due, self._check)

    def _timed_out(self) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            transport.write(_timeout_response(self.request_timeout))
        transport.close()
