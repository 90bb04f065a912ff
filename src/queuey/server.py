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
    #: Seconds to receive a whole request; set from the settings before the server starts.
    request_timeout: float = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a new connection has to send its first request in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self) -> None:
        self._read_deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _timed_out(self) -> None:
        self._read_deadline = None
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            transport.write(_timeout_response(self.request_timeout))
        transport.close()
