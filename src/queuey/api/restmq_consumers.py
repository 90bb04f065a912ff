"""RestMQ's consumers (api.md Part 4, reference/restmq.md): ``/c/<queue>`` (COMET: one
``{"key","value"}`` JSON object per message, each followed by CRLF, on a chunked answer that
stays open) and ``/ws/<queue>`` (the same objects as WebSocket text frames), served by the
streams of the v1 API, so a consumer of any server process sees what any other process stores.

A consumer binds to its queue (created on first use) with the queue's policy. Broadcast: it
gets every live message of the queue from the oldest, then each new one, and leaves them
there. Round-robin: each message is claimed for one consumer in turn and acknowledged once its
frame was handed to the server; what was claimed for a consumer but not sent when it leaves is
given back at once, as it was. Stop and start pause and resume the queue, and so its
consumers. ``DELETE /q/<queue>`` ends its consumers, bound through any server process: it moves
the queue's end marker (:meth:`QueueService.end_consumers`), and the feed serving a consumer
ends it (as if the queue was deleted: the WebSocket closes with 1000, the COMET answer ends)
when it reads the marker above the one the consumer bound at, as soon as the change reaches its
process (:mod:`queuey.notify`), like a pause. v1 streams of the queue go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import orjson

from queuey.api.frontend import CHALLENGE, Access, BasicInvalidKey, BasicUnauthorized, on_first_use
from queuey.api.streams import Receive, Scope, Send, deny, headers_of, watch_disconnect
from queuey.core.errors import NotFound, QueueyError
from queuey.core.models import Caller, Claim, Message
from queuey.service import QueueService, claim_id
from queuey.streams import Chunk, End, StreamRequest, Streams, Subscriber

COMET_MEDIA_TYPE = "text/plain; charset=utf-8"
SOCKET_PREFIX = "/ws/"
# WebSocket close codes: the consumers were ended (DELETE /q/, or the queue was deleted), the
# client was too slow, the server restarts.
CLOSE_CODES = {End.DELETED: 1000, End.OVERFLOW: 1008, End.SHUTDOWN: 1012}


def key(queue: str, message: Message) -> str:
    """A message's key as RestMQ wrote them: ``<queue>:<id>``."""
    return f"{queue}:{message.id}"


class Framing:
    """The frames of one consumer, and the claims (round-robin) whose frames wait to be sent,
    oldest first: one claim per frame."""

    joinable = False

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.claims: deque[Claim] = deque()

    def encoded(self, message: Message) -> bytes:
        return orjson.dumps({"key": key(self.queue, message), "value": message.body})

    def message(self, message: Message) -> Chunk:
        raise NotImplementedError

    def claim(self, claim: Claim) -> Chunk:
        self.claims.append(claim)
        return self.message(claim.message)


class CometFraming(Framing):
    """One JSON object and CRLF per message, as RestMQ wrote them."""

    joinable = True

    def message(self, message: Message) -> Chunk:
        return self.encoded(message) + b"\r\n"


class SocketFraming(Framing):
    """One JSON object per WebSocket text frame (its UTF-8 payload)."""

    def message(self, message: Message) -> Chunk:
        return self.encoded(message)


class Consumer:
    """One bound consumer: its stream, and the claims it settles as their frames go out."""

    def __init__(
        self,
        consumers: Consumers,
        caller: Caller,
        request: StreamRequest,
        subscriber: Subscriber,
        framing: Framing,
    ) -> None:
        self.consumers = consumers
        self.caller = caller
        self.request = request
        self.subscriber = subscriber
        self.framing = framing
        self._closed = False

    async def sent(self, count: int) -> None:
        """``count`` frames were handed to the server: acknowledge their claims, and the
        round-robin credit they held comes back."""
        claims = self.framing.claims
        done = [claims.popleft() for _ in range(min(count, len(claims)))]
        if not done:
            return
        queue = self.request.queue
        ids = ",".join(claim_id(claim) for claim in done)
        # A claim whose lease ended before its frame went out is no longer current: its ack
        # fails and the message, available again, goes out again (at least once).
        with contextlib.suppress(QueueyError):
            await self.consumers.service.ack(self.caller, queue.app, queue.name, ids)
        self.consumers.streams.settle(queue.app, queue.name, ids.split(","))

    async def close(self) -> None:
        """The consumer left (or was ended): give back what was claimed for it and not sent.
        Ended by a purge or the queue's deletion, there is nothing to give back."""
        if self._closed:
            return
        self._closed = True
        self.subscriber.end(End.GONE)
        claims = list(self.framing.claims)
        self.framing.claims.clear()
        if not claims or self.subscriber.ended is End.DELETED:
            return
        service = self.consumers.service
        with contextlib.suppress(QueueyError):  # else their leases end as usual
            queue = await service.storage.get_queue(self.request.queue.app, self.request.queue.name)
            if queue is not None and queue.qid == self.request.queue.qid:
                removed = queue.settings.delivery == "at_most_once"
                await service.give_back(queue, claims, removed)

    async def frames(self) -> AsyncIterator[list[Chunk]]:
        """The frames to send, as they come, until the consumer ends (heartbeats are
        skipped: RestMQ's clients take every line for a message)."""
        subscriber = self.subscriber
        while True:
            chunks = await subscriber.take()
            if chunks:
                yield chunks
            elif subscriber.ended is not None:
                return


class Consumers:
    """Binds RestMQ consumers to the queues of one application."""

    def __init__(self, service: QueueService, streams: Streams, application: str) -> None:
        self.service = service
        self.streams = streams
        self.application = application

    async def bind(self, caller: Caller, queue: str, framing: Framing) -> Consumer:
        """A consumer of ``queue`` (created on first use) with the queue's policy."""
        request = await on_first_use(
            self.service, caller, self.application, queue,
            lambda caller, app, name: self.streams.check(caller, app, name, {}), {},
        )  # fmt: skip
        if request.mode == "broadcast":
            request = replace(request, position=(0, ""))  # from the oldest live message
        subscriber = await self.streams.subscribe(request, framing, consumer=True)
        return Consumer(self, caller, request, subscriber, framing)


class CometStream(AsyncIterator[bytes]):
    """A COMET consumer's answer: the frames as they come; Falcon closes it when the answer
    ends, however it ends, so what was not sent is given back at once."""

    def __init__(self, consumer: Consumer, receive: Receive) -> None:
        self.consumer = consumer
        self.receive = receive
        self._chunks = self._generate()

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def _generate(self) -> AsyncGenerator[bytes]:
        consumer = self.consumer
        watcher = asyncio.create_task(watch_disconnect(self.receive, consumer.subscriber))
        try:
            async for chunks in consumer.frames():
                yield b"".join(c for c in chunks if isinstance(c, bytes))
                await consumer.sent(len(chunks))
        finally:
            watcher.cancel()

    async def close(self) -> None:
        await self._chunks.aclose()
        await self.consumer.close()


class ConsumerSocket:
    """``/ws/<queue>`` (raw ASGI, as the v1 stream's WebSocket). What the client sends is
    read and dropped."""

    def __init__(self, consumers: Consumers, access: Access) -> None:
        self.consumers = consumers
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = headers_of(scope)
        client = scope.get("client") or (None, None)
        try:
            name = unquote(scope["path"].removeprefix(SOCKET_PREFIX))
            if not name or "/" in name:
                raise NotFound()
            caller = self.access.caller_of(headers.get("authorization"), client[0])
            consumer = await self.consumers.bind(caller, name, SocketFraming(name))
        except QueueyError as error:
            challenge = isinstance(error, BasicUnauthorized | BasicInvalidKey)
            await deny(scope, send, error, {"WWW-Authenticate": CHALLENGE} if challenge else None)
            return
        await send({"type": "websocket.accept"})
        reader = asyncio.create_task(_drain(receive, consumer.subscriber))
        try:
            await _write(consumer, send)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await consumer.close()


async def _write(consumer: Consumer, send: Send) -> None:
    with contextlib.suppress(OSError):  # the client went away
        async for chunks in consumer.frames():
            sent = 0
            try:
                for chunk in chunks:
                    await send({"type": "websocket.send", "text": chunk.decode()})
                    sent += 1
            finally:
                await consumer.sent(sent)
        code = CLOSE_CODES.get(consumer.subscriber.ended or End.GONE)
        if code is not None:
            await send({"type": "websocket.close", "code": code})


async def _drain(receive: Receive, subscriber: Subscriber) -> None:
    event: dict[str, Any] = {}
    while event.get("type") != "websocket.disconnect":
        event = await receive()
    subscriber.end(End.GONE)
