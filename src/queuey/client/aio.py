"""``AsyncClient``: the API over asyncio, and its streams."""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Generic, ParamSpec, Self, TypeVar, Unpack, cast

import httpx
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from queuey.client import calls, errors
from queuey.client.base import Api
from queuey.client.calls import Call, Payload, StreamOptions
from queuey.client.models import ClaimedMessage, Message
from queuey.client.servers import Exchange, Outcome
from queuey.client.streams import (
    UPGRADED,
    Subscription,
    checked,
    handshake,
    refusal,
    settled,
)

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")


class AsyncClient(Api[httpx.AsyncClient]):
    """``Client`` for asyncio: the same arguments and methods, awaited.

    >>> async with AsyncClient("http://127.0.0.1:5000/v1/queuey", key) as queuey:
    ...     await queuey.post("inbox", "Hello!")
    """

    def open(self, verify: ssl.SSLContext | bool) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=verify)

    def bind(self, build: Callable[P, Call[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.send(build(*args, **kwargs))

        return method

    async def send(self, call: Call[T]) -> T:
        return await self.drive(self.servers.exchange(call), stream=False)

    async def drive(self, exchange: Exchange[T], stream: bool) -> T:
        """Send the requests of ``exchange`` (``stream``: leaving a 200 answer's body unread)."""
        delay, request = next(exchange)
        while True:
            if delay:
                await asyncio.sleep(delay)
            outcome: Outcome
            try:
                outcome = await self.http.send(request, stream=stream)
                if stream and outcome.status_code != 200:
                    await outcome.aread()
                    await outcome.aclose()
            except httpx.TransportError as error:
                outcome = error
            try:
                delay, request = exchange.send(outcome)
            except StopIteration as done:
                return cast(T, done.value)

    async def stream(self, queue: str, **options: Unpack[StreamOptions]) -> AsyncEventStream:
        """``Client.stream`` for asyncio: an async iterator (opened when awaited)."""
        stream = AsyncEventStream(self, Subscription(calls.stream(queue, **options), self.retries))
        await stream.open()
        return stream

    async def stream_socket(
        self, queue: str, **options: Unpack[StreamOptions]
    ) -> AsyncSocketStream:
        """``Client.stream_socket`` for asyncio."""
        call = calls.stream(queue, websocket=True, **options)
        stream = AsyncSocketStream(self, Subscription(call, self.retries))
        await stream.open()
        return stream

    async def connect_socket(self, call: Call[None]) -> ClientConnection:
        """A WebSocket for ``call``, with the fail-over and retries of any call."""
        exchange = self.servers.connect(call)
        delay, request = next(exchange)
        socket: ClientConnection | None = None
        while True:
            if delay:
                await asyncio.sleep(delay)
            outcome: Outcome
            try:
                socket = await ws_connect(**handshake(request, self.verify, self.servers.timeout))
                outcome = httpx.Response(UPGRADED)
            except InvalidStatus as refused:
                answer = refused.response
                outcome = refusal(answer.status_code, answer.headers, bytes(answer.body or b""))
            except (OSError, TimeoutError, InvalidHandshake) as failed:
                outcome = httpx.ConnectError(f"{type(failed).__name__}: {failed}")
            try:
                delay, request = exchange.send(outcome)
            except StopIteration:
                assert socket is not None
                return socket

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class _AsyncStream(AsyncIterator[Message], Generic[C]):
    """``sync._Stream`` for asyncio: the connection (``C``) is opened by ``open``."""

    def __init__(self, client: AsyncClient, subscription: Subscription) -> None:
        self.client = client
        self.subscription = subscription
        self._connection: C | None = None

    @property
    def connection(self) -> C:
        assert self._connection is not None, "open() first"
        return self._connection

    @property
    def last_event_id(self) -> str | None:
        """The last broadcast message received: where the stream resumes."""
        return self.subscription.last_event_id

    async def _connect(self) -> C:
        raise NotImplementedError

    async def open(self) -> None:
        self._connection = await self._connect()
        self.subscription.opened()

    async def _reopen(self) -> None:
        while True:
            await asyncio.sleep(self.subscription.retry)
            try:
                return await self.open()
            except errors.ClientError as failure:
                self.subscription.reopen_failed(failure)

    async def aclose(self) -> None:
        self.subscription.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncEventStream(_AsyncStream[httpx.Response]):
    """``EventStream`` for asyncio."""

    def __init__(self, client: AsyncClient, subscription: Subscription) -> None:
        super().__init__(client, subscription)
        self._messages = self._follow()

    async def __anext__(self) -> Message:
        return await anext(self._messages)

    async def _connect(self) -> httpx.Response:
        call = self.subscription.call()
        return await self.client.drive(self.client.servers.connect(call), True)

    async def _follow(self) -> AsyncGenerator[Message, None]:
        subscription = self.subscription
        while not subscription.closed:
            try:
                async for line in self.connection.aiter_lines():
                    message = subscription.sse_line(line)
                    if message is not None:
                        yield message
            except httpx.TransportError:
                pass  # cut off, or silent too long: resume
            finally:
                await self.connection.aclose()
            await self._reopen()

    async def aclose(self) -> None:
        await super().aclose()
        if self._connection is not None:
            await self._connection.aclose()
        await self._messages.aclose()


class AsyncSocketStream(_AsyncStream[ClientConnection]):
    """``SocketStream`` for asyncio. Not for use from several tasks at once."""

    def __init__(self, client: AsyncClient, subscription: Subscription) -> None:
        super().__init__(client, subscription)
        self._pending: collections.deque[Message] = collections.deque()

    async def __anext__(self) -> Message:
        while not self._pending:
            frame = await self._receive(resume=True)
            if isinstance(frame, Message):
                return frame
        return self._pending.popleft()

    async def ack(self, claims: Iterable[str | ClaimedMessage]) -> list[str]:
        """Acknowledge claims; raises ``ClaimExpired`` when some were no longer current."""
        return settled("acked", await self._ask({"ack": calls.claim_list(claims)}))

    async def extend(self, claims: Iterable[str | ClaimedMessage], ttl: int) -> list[str]:
        """Keep the claims leased ``ttl`` more seconds (0 releases them)."""
        frame = {"extend": calls.claim_list(claims), "ttl": ttl}
        return settled("extended", await self._ask(frame))

    async def credit(self, credit: int) -> None:
        """How many unacked messages the server may hand this round-robin stream."""
        checked(await self._ask({"credit": credit}))

    async def _ask(self, frame: Payload) -> Payload:
        try:
            await self.connection.send(orjson.dumps(frame).decode())
        except ConnectionClosed as closed:
            raise errors.ConnectionFailed(f"the stream was cut: {closed}") from closed
        while True:
            reply = await self._receive(resume=False)
            if isinstance(reply, Message):
                self._pending.append(reply)
            else:
                return reply

    async def _receive(self, resume: bool) -> Message | Payload:
        subscription = self.subscription
        while True:
            try:
                return subscription.ws_frame(await self.connection.recv())
            except ConnectionClosed as closed:
                if subscription.closed and resume:
                    raise StopAsyncIteration from None
                subscription.ws_closed(closed.rcvd)
                if not resume or subscription.closed:
                    raise errors.ConnectionFailed(f"the stream was cut: {closed}") from closed
                await self._reopen()

    async def _connect(self) -> ClientConnection:
        return await self.client.connect_socket(self.subscription.call())

    async def aclose(self) -> None:
        await super().aclose()
        if self._connection is not None:
            await self._connection.close()
