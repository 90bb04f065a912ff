"""``GET /v1/{app}/{queue}/stream``: server-sent events, NDJSON, and WebSocket on the same path.

Every check (credentials, rights, parameters, ``max_streams``) is made before the stream
starts, so a refusal is the usual JSON error (for a WebSocket, an HTTP response to its
handshake when the server supports it, else a close code of 3000 + the status). Then the
subscriber's frames (:mod:`queuey.streams`) are written as they come, with a heartbeat when
nothing came for ``stream_heartbeat`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

import falcon.asgi
import orjson

from queuey.api import errors, requests, responses
from queuey.api.auth import KeyRing, caller_of
from queuey.api.resource import Resource
from queuey.core.errors import (
    ClaimExpired,
    InvalidRequest,
    InvalidToken,
    NotFound,
    QueueNotFound,
    QueueyError,
)
from queuey.core.models import Caller, Claim, Message
from queuey.core.validation import Errors, check_choice, check_int
from queuey.service import QueueService
from queuey.streams import End, StreamRequest, Streams, Subscriber
from queuey.streams.hub import MAX_CREDIT

Request = falcon.asgi.Request
Response = falcon.asgi.Response
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"
#: Milliseconds an EventSource waits before it reconnects.
RETRY_MS = 2000
_PATH = re.compile(r"/v1/([^/]+)/([^/]+)/stream/?")
#: Where the server puts, in a request's scope, a function that writes frames (pieces of the
#: request's chunked response body, or WebSocket text messages) at once, returning False when
#: it cannot (see :meth:`queuey.server.QueueyHttpProtocol.write_body` and
#: :meth:`queuey.server.QueueyWebSocketProtocol.write_texts`).
WRITE_FRAMES = "queuey.write_frames"
#: Where a stream puts, in its request's scope, the function that ends it (given an End): the
#: server's shutdown ends it (:meth:`queuey.server.QueueyHttpProtocol.shutdown`), and a server
#: that gives WRITE_FRAMES ends it when its connection is lost, so no task waits for the
#: ASGI disconnect then.
END_STREAM = "queuey.end_stream"
# WebSocket close codes: the queue was deleted, the token expired, the client was too slow,
# the server restarts.
CLOSE_CODES = {End.DELETED: 4404, End.EXPIRED: 4401, End.OVERFLOW: 1008, End.SHUTDOWN: 1012}
# The error an ending stream's last frame (SSE ``event: end``, an NDJSON line) reports.
END_ERRORS: dict[End, QueueyError] = {End.DELETED: QueueNotFound(), End.EXPIRED: InvalidToken()}


def _end_error(reason: End) -> bytes:
    """The JSON error body that says why the stream ends (b"": none to say)."""
    error = END_ERRORS.get(reason)
    return b"" if error is None else errors.error_body(error.errors)


class Sse:
    """Server-sent events: ``id``, ``event: message`` and ``data`` per message."""

    joinable = True
    media_type = EVENT_STREAM
    opening = b"retry: %d\n\n" % RETRY_MS
    heartbeat = b": heartbeat\n\n"

    def message(self, message: Message) -> bytes:
        data = orjson.dumps(responses.message(message))
        return b"id: %s\nevent: message\ndata: %s\n\n" % (message.id.encode(), data)

    def claim(self, claim: Claim) -> bytes:
        data = orjson.dumps(responses.claim(claim))
        return b"id: %s\nevent: message\ndata: %s\n\n" % (claim.message.id.encode(), data)

    def end(self, reason: End) -> bytes:
        body = _end_error(reason)
        return b"event: end\ndata: %s\n\n" % body if body else b""


class NdJson:
    """One message object per line; an empty line is the heartbeat."""

    joinable = True
    media_type = NDJSON
    opening = b""
    heartbeat = b"\n"

    def message(self, message: Message) -> bytes:
        return orjson.dumps(responses.message(message), option=orjson.OPT_APPEND_NEWLINE)

    def claim(self, claim: Claim) -> bytes:
        return orjson.dumps(responses.claim(claim), option=orjson.OPT_APPEND_NEWLINE)

    def end(self, reason: End) -> bytes:
        body = _end_error(reason)
        return body + b"\n" if body else b""


class WsText:
    """One message object per WebSocket text frame (its UTF-8 payload)."""

    joinable = False

    def message(self, message: Message) -> bytes:
        return orjson.dumps(responses.message(message))

    def claim(self, claim: Claim) -> bytes:
        return orjson.dumps(responses.claim(claim))


SSE, NDJSON_FRAMING, WEBSOCKET = Sse(), NdJson(), WsText()
HttpFraming = Sse | NdJson


class StreamResource(Resource):
    def __init__(self, service: QueueService, keys: KeyRing, streams: Streams) -> None:
        super().__init__(service, keys)
        self.streams = streams

    async def _check(
        self, req: Request, caller: Caller, app: str, queue: str
    ) -> tuple[StreamRequest, HttpFraming]:
        params = requests.query(req)
        errs = Errors()
        accept = req.get_header("Accept") or ""
        default = "ndjson" if NDJSON in accept and EVENT_STREAM not in accept else "sse"
        kind = check_choice(errs, "format", params.get("format"), ("sse", "ndjson"), default)
        errs.raise_if_any()
        request = await self.streams.check(
            caller, app, queue, params, req.get_header("Last-Event-ID")
        )
        return request, NDJSON_FRAMING if kind == "ndjson" else SSE

    async def on_get(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        request, framing = await self._check(req, caller, app, queue)
        subscriber = await self.streams.subscribe(request, framing)
        _stream_headers(resp, framing)
        req.scope[END_STREAM] = subscriber.end
        receive: Receive = req.scope["queuey.receive"]
        resp.stream = _http_frames(subscriber, framing, receive, req.scope.get(WRITE_FRAMES))

    async def on_head(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        _, framing = await self._check(req, caller, app, queue)
        _stream_headers(resp, framing)


def _stream_headers(resp: Response, framing: HttpFraming) -> None:
    resp.content_type = framing.media_type
    resp.set_header("Cache-Control", "no-cache")
    resp.set_header("X-Accel-Buffering", "no")  # nginx: pass each frame on at once


async def _http_frames(
    subscriber: Subscriber,
    framing: HttpFraming,
    receive: Receive,
    write: Callable[[list[bytes]], bool] | None,
) -> AsyncIterator[bytes]:
    """The stream's body: what the subscriber could not write at once with ``write`` (the
    server's direct writer of this response's body, when it has one), heartbeats, the end."""
    watcher = (
        None if write is not None else asyncio.create_task(watch_disconnect(receive, subscriber))
    )
    try:
        if framing.opening:
            yield framing.opening
        if write is not None:  # the answer's head went out: frames may follow it directly
            subscriber.attach(write, framing.heartbeat)
        while True:
            chunks = await subscriber.take()
            if chunks:
                yield b"".join(chunks)
            elif subscriber.ended is not None:
                last = framing.end(subscriber.ended)
                if last and subscriber.ended is not End.GONE:
                    yield last
                return
            else:
                yield framing.heartbeat
    finally:
        subscriber.end(End.GONE)
        if watcher is not None:
            watcher.cancel()


async def watch_disconnect(receive: Receive, subscriber: Subscriber) -> None:
    """End the stream when its client goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass
    subscriber.end(End.GONE)


class StreamSocket:
    """The WebSocket side of ``/v1/{app}/{queue}/stream`` (raw ASGI: Falcon cannot answer a
    refused handshake with an HTTP response)."""

    def __init__(self, service: QueueService, keys: KeyRing, streams: Streams) -> None:
        self.service = service
        self.keys = keys
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = headers_of(scope)
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            match = _PATH.fullmatch(scope["path"])
            if match is None:
                raise NotFound()
            app, name = unquote(match.group(1)), unquote(match.group(2))
            caller = caller_of(
                headers.get("authorization"), params.pop("token", None), self.keys,
                self.service.tokens, app,
            )  # fmt: skip
            request = await self.streams.check(
                caller, app, name, params, headers.get("last-event-id")
            )
            subscriber = await self.streams.subscribe(request, WEBSOCKET)
        except QueueyError as error:
            await deny(scope, send, error)
            return
        await send({"type": "websocket.accept"})
        write = scope.get(WRITE_FRAMES)
        if write is not None:  # heartbeats are left to the WebSocket server's pings
            subscriber.attach(write, b"")
        session = _Session(self, caller, request, subscriber)
        reader = asyncio.create_task(session.read(receive))
        try:
            await session.write(send)
        finally:
            subscriber.end(End.GONE)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def headers_of(scope: Scope) -> dict[str, str]:
    """A WebSocket handshake's headers by lower-case name."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def deny(
    scope: Scope, send: Send, error: QueueyError, extra: Mapping[str, str] | None = None
) -> None:
    """Refuse a WebSocket handshake with ``error`` (and ``extra`` headers)."""
    status = errors.status_of(error)
    if "websocket.http.response" in scope.get("extensions", {}):
        fields = {**errors.error_headers(status, error.retry_after), **(extra or {})}
        headers = [(b"content-type", b"application/json")] + [
            (k.lower().encode(), v.encode()) for k, v in fields.items()
        ]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        body = errors.error_body(error.errors, error.details)
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 3000 + status})


class _Session:
    """One accepted WebSocket: frames out, and the client's ack/extend/credit frames in."""

    def __init__(
        self, socket: StreamSocket, caller: Caller, request: StreamRequest, subscriber: Subscriber
    ) -> None:
        self.service = socket.service
        self.streams = socket.streams
        self.caller = caller
        self.request = request
        self.subscriber = subscriber

    async def write(self, send: Send) -> None:
        """Frames out; heartbeats are left to the WebSocket server's pings."""
        subscriber = self.subscriber
        with contextlib.suppress(OSError):  # the client went away
            while True:
                chunks = await subscriber.take()
                for chunk in chunks:
                    await send({"type": "websocket.send", "text": chunk.decode()})
                if not chunks and subscriber.ended is not None:
                    code = CLOSE_CODES.get(subscriber.ended)
                    if code is not None:
                        await send({"type": "websocket.close", "code": code})
                    return

    async def read(self, receive: Receive) -> None:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                self.subscriber.end(End.GONE)
                return
            text = event.get("text")
            if text is None and event.get("bytes") is not None:
                text = event["bytes"].decode("utf-8", "replace")
            reply = await self.answer(text or "")
            data = orjson.dumps(reply)
            self.subscriber.push([data], len(data))

    async def answer(self, text: str) -> dict[str, Any]:
        """The reply to one client frame."""
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"error": {"frame": "Not JSON"}}
        if not isinstance(frame, dict) or len(frame.keys() & {"ack", "extend", "credit"}) != 1:
            return {"error": {"frame": 'Expected one of "ack", "extend", "credit"'}}
        try:
            if "credit" in frame:
                return self._credit(frame["credit"])
            verb = "ack" if "ack" in frame else "extend"
            items = frame[verb]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise InvalidRequest({verb: "Expected a list of claim ids"})
            return await self._settle(verb, ",".join(items), frame.get("ttl"))
        except ClaimExpired as error:
            return dict(error.details)
        except QueueyError as error:
            return {"error": error.errors}

    async def _settle(self, verb: str, claim_ids: str, ttl: object) -> dict[str, Any]:
        queue = self.request.queue
        app, name = queue.app, queue.name
        if verb == "ack":
            try:
                done = await self.service.ack(self.caller, app, name, claim_ids)
            finally:
                self.streams.settle(app, name, claim_ids.split(","))
            return {"acked": done, "failed": []}
        errs = Errors()
        seconds = check_int(errs, "ttl", ttl, None, 0)
        errs.raise_if_any()
        assert seconds is not None
        until = self.service.now_ms() + seconds * 1000
        failed: object = []
        try:
            extended, _ = await self.service.extend(
                self.caller, app, name, claim_ids, {"ttl": seconds}
            )
        except ClaimExpired as error:  # some were current: their leases moved all the same
            current = error.details.get("released" if seconds == 0 else "extended")
            extended = current if isinstance(current, list) else []
            failed = error.details.get("failed", [])
        self.streams.settle(app, name, extended, until)
        return {"extended": extended, "failed": failed}

    def _credit(self, value: object) -> dict[str, Any]:
        errs = Errors()
        credit = check_int(errs, "credit", value, None, 1, MAX_CREDIT)
        if self.request.mode != "roundrobin":
            errs["credit"] = "Only with mode=roundrobin"
        errs.raise_if_any()
        assert credit is not None
        queue = self.request.queue
        self.streams.credit(queue.app, queue.name, self.subscriber, credit)
        return {"credit": credit}
