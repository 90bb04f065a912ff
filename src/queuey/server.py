"""The HTTP protocol of ``queuey serve``: uvicorn's httptools protocol, with a deadline on
reading each request, bounds on request heads, and answers of its own to requests no
application should see.

uvicorn closes a connection idle between requests after ``timeout_keep_alive``, but sets no
limit on a connection that never sends a request, or on one that sends its request a byte at a
time, or stops in the middle: each would hold its socket and memory for as long as the client
likes. Here a client has ``request_timeout`` seconds (``[queuey] request_timeout``) to send a
whole request, head and body, from the request's first byte or, on a new connection, from the
connection's opening; after that it gets a 408 (when no response to that request has started)
and the connection is closed. A request whose body was cut off this way stores nothing (see
``queuey.api.asgi``). A client that takes nothing of its answer for ``request_timeout`` seconds
while the server has more to send is disconnected too, so that the answer is released.

The head of a request is refused (431, connection closed) when it is over ``max_header_bytes``
or has more than ``max_header_count`` fields, counted as it arrives. Requests that HTTP/1.1 does
not allow, or that could be read two ways by the proxies in front of the server, get a 400 and
the connection is closed: HTTP/0.9, an HTTP/1.1 request without exactly one ``Host``, a
``Transfer-Encoding`` other than ``chunked``, and ``Transfer-Encoding`` on HTTP/1.0. A method the
parser does not know (``FOO``, a lowercase ``get``) gets the application's 405 with ``Allow``.
Every such answer is the API's JSON error.

Both protocols put a writer of a stream's frames in its request's scope
(:data:`queuey.api.streams.WRITE_FRAMES`): a feed writes a message to each of its
subscribers' connections in one pass, without waking a task a subscriber.
"""

from __future__ import annotations

import asyncio
import http
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from queuey.api.asgi import QueueyApp
from queuey.api.errors import error_body
from queuey.api.streams import END_STREAM, WRITE_FRAMES
from queuey.core.limits import Limits
from queuey.streams import End

# The request line of a request whose method the parser refused: a token, an origin-form
# target and an HTTP/1.x version (RFC 9112 section 3).
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (/[^ \r\n]*) HTTP/1\.[01]\r?\n")
_DEFAULTS = Limits()


class Refused(Exception):
    """A request the protocol answers itself, before the application sees it."""

    def __init__(
        self,
        status: int,
        error_msg: dict[str, str],
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(status, error_msg)
        self.status = status
        self.error_msg = error_msg
        self.headers = headers

    def response(self) -> bytes:
        body = error_body(self.error_msg)
        phrase = http.HTTPStatus(self.status).phrase
        head = [
            f"HTTP/1.1 {self.status} {phrase}".encode(),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
            *(name + b": " + value for name, value in self.headers),
        ]
        return b"\r\n".join(head) + b"\r\n\r\n" + body


def _bad_request(field: str, message: str) -> Refused:
    return Refused(400, {field: message})


def _queuey_app(app: object) -> QueueyApp | None:
    """The QueueyApp the server runs, under any middleware uvicorn wrapped it in."""
    for _ in range(8):
        if isinstance(app, QueueyApp):
            return app
        app = getattr(app, "app", None)
    return None


class QueueyHttpProtocol(HttpToolsProtocol):
    """Requests only note when their reading began and ended (two attribute stores); one
    timer a connection, re-armed when it fires (every ``request_timeout`` at most), closes the
    connection whose current request has been read for longer, or whose client has not taken
    its answer for longer, instead of a timer armed and cancelled for every request."""

    def __init__(
        self,
        *args: Any,
        request_timeout: float = 60.0,
        max_header_bytes: int = _DEFAULTS.max_header_bytes,
        max_header_count: int = _DEFAULTS.max_header_count,
        **kwargs: Any,
    ) -> None:
        """``request_timeout``: seconds to receive a whole request; ``max_header_bytes``: most
        bytes in a request's head (request line and header fields); ``max_header_count``: most
        header fields in a request."""
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count
        # The application, which says which methods a path allows (under uvicorn's wrappers).
        self.application = _queuey_app(self.app)
        self._watch: asyncio.TimerHandle | None = None
        # When the request being read began (or the connection opened); None while no
        # request is being read (between requests, or while the application answers).
        self._reading_since: float | None = None
        # When the transport's write buffer filled up (the client stopped reading); None while
        # there is room in it.
        self._stalled_since: float | None = None
        self._in_message = False  # a request has begun and is not complete
        self._in_head = False  # ...and its head is not complete
        self._head_bytes = 0
        self._hosts = 0
        self._transfer_codings: list[bytes] = []
        # The cycle whose application is running (self.cycle is the newest, maybe queued).
        self._running: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        now = self.loop.time()
        self._reading_since = now  # a new connection has to send its first request in time
        self._watch = self.loop.call_at(now + self.request_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        # uvicorn tells only the newest cycle; the one answering pipelined requests must also
        # stop writing to the closed transport.
        for cycle in (self._running, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
                end = cycle.scope.get(END_STREAM)  # a stream's client left
                if callable(end):
                    end(End.GONE)
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        cycle.scope[WRITE_FRAMES] = self.write_body  # type: ignore[literal-required]
        super()._start_asgi_task(cycle, app)

    def write_body(self, pieces: list[bytes]) -> bool:
        """Write a piece of the running answer's chunked body at once, beside ASGI's
        ``send`` (a stream's feed writes a message to each of its subscribers in one pass,
        waking no task). False, writing nothing, when it cannot be written at once: the answer
        has not started, is not chunked or is complete, the connection is closing, or its
        write buffer is full (the client is not taking what it was sent); the caller then
        sends it through ASGI, which waits for room."""
        cycle = self._running
        if (
            cycle is None
            or not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
            or cycle.disconnected
            or self.flow.write_paused
            or self.transport.is_closing()
        ):
            return False
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    def pause_writing(self) -> None:
        self._stalled_since = self.loop.time()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._stalled_since = None
        super().resume_writing()

    # Reading requests

    def data_received(self, data: bytes) -> None:
        starts_request = not self._in_message
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserInvalidMethodError:
            self._refuse(self._unknown_method(data if starts_request else b""))
            return
        except httptools.HttpParserError as error:
            refusal = error.__context__
            if not isinstance(refusal, Refused):
                refusal = _bad_request("InvalidRequest", f"Invalid HTTP request: {error}")
            self._refuse(refusal)
            return
        if self._in_head:  # the head goes on past this piece (the whole piece counts)
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(self._head_too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = self._in_head = True
        self._head_bytes = self._hosts = 0
        self._transfer_codings = []
        if self._reading_since is None:
            self._reading_since = self.loop.time()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        name = self.headers[-1][0]
        if name == b"host":
            self._hosts += 1
        elif name == b"transfer-encoding":
            self._transfer_codings += [c.strip().lower() for c in value.split(b",")]
        if len(self.headers) > self.max_header_count:
            raise Refused(431, {"headers": f"More than {self.max_header_count} header fields"})

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            raise self._head_too_large()
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise _bad_request("InvalidRequest", f"HTTP/{version} is not supported; use HTTP/1.1")
        if self._hosts > 1 or (version == "1.1" and self._hosts == 0):
            raise _bad_request("Host", "An HTTP/1.1 request has exactly one Host header")
        if self._transfer_codings:
            if version == "1.0":
                raise _bad_request("Transfer-Encoding", "HTTP/1.0 has no Transfer-Encoding")
            if self._transfer_codings != [b"chunked"]:
                raise _bad_request("Transfer-Encoding", "Only chunked is supported")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_since = None
        self._in_message = False
        super().on_message_complete()

    def shutdown(self) -> None:
        """Server shutdown: a stream in progress ends (its client reconnects, elsewhere if
        need be) instead of holding the shutdown up forever."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            end = cycle.scope.get(END_STREAM)
            if callable(end):
                end(End.SHUTDOWN)
        super().shutdown()

    def _head_too_large(self) -> Refused:
        return Refused(431, {"headers": f"Request head over {self.max_header_bytes} bytes"})

    def _unknown_method(self, data: bytes) -> Refused:
        """The application's answer to a method it does not know, when ``data`` starts with the
        request's line; else a 400."""
        line = _REQUEST_LINE.match(data)
        if line is None or self.application is None:
            return _bad_request("InvalidRequest", "Invalid HTTP method")
        path = unquote(line.group(2).split(b"?", 1)[0].decode("ascii", "replace"))
        return Refused(*self.application.unknown_method(path))

    def _refuse(self, refusal: Refused) -> None:
        if not self.transport.is_closing():
            self.transport.write(refusal.response())
            self.transport.close()

    # The deadline

    def _check(self) -> None:
        now = self.loop.time()
        since = self._reading_since
        if since is not None and now - since >= self.request_timeout:
            self._watch = None
            self._timed_out()
            return
        stalled = self._stalled_since
        if stalled is not None and now - stalled >= self.request_timeout:
            self._watch = None
            self.transport.abort()  # drops what the client did not take
            return
        starts = [t for t in (since, stalled) if t is not None]
        due = min(starts) + self.request_timeout if starts else now + self.request_timeout
        self._watch = self.loop.call_at(due, self._check)

    def _timed_out(self) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if self._in_head or cycle is None:  # no answer to this request has begun
            answer = cycle is None or cycle.response_complete or not cycle.response_started
        else:  # the request's answer may already be out (a 401 before its body was read)
            answer = not cycle.response_started
        if answer:
            transport.write(
                Refused(
                    408,
                    {"RequestTimeout": f"The request was not received within "
                                       f"{self.request_timeout:g} s."},
                ).response()
            )  # fmt: skip
        transport.close()


class QueueyWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (websockets' sans-I/O one), with a writer of text messages
    that a stream's feed calls for each subscriber in one pass, beside ASGI's ``send``."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope[WRITE_FRAMES] = self.write_texts  # type: ignore[literal-required]

    def write_texts(self, payloads: list[bytes]) -> bool:
        """Send each UTF-8 payload as a text message at once (framed, and compressed when the
        client asked for it, by the connection). False, sending nothing, when they cannot go
        at once: the connection is not open (not yet accepted, closing, gone) or its write
        buffer is full; the caller then sends them through ASGI, which waits for room."""
        conn = self.conn
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or conn.state is not State.OPEN
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        for payload in payloads:
            conn.send_text(payload)
        self.transport.write(b"".join(conn.data_to_send()))
        return True
