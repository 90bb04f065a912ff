"""``Client``: the API over blocking HTTP, and its streams."""

from __future__ import annotations

import collections
import functools
import ssl
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Generic, ParamSpec, Self, TypeVar, Unpack, cast

import httpx
import orjson
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

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


class Client(Api[httpx.Client]):
    """A blocking Queuey client (arguments: see ``Api``; methods: ``calls``). Errors are
    raised as the exceptions of ``queuey.client.errors``.

    >>> with Client("http://127.0.0.1:5000/v1/queuey", key) as queuey:
    ...     queuey.post("inbox", "Hello!")
    """

    def open(self, verify: ssl.SSLContext | bool) -> httpx.Client:
        return httpx.Client(verify=verify)

    def bind(self, build: Callable[P, Call[T]]) -> Callable[P, T]:
        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.send(build(*args, **kwargs))

        return method

    def send(self, call: Call[T]) -> T:
        return self.drive(self.servers.exchange(call), stream=False)

    def drive(self, exchange: Exchange[T], stream: bool) -> T:
        """Send the requests of ``exchange`` (``stream``: leaving a 200 answer's body unread)."""
        delay, request = next(exchange)
        while True:
            if delay:
                time.sleep(delay)
            outcome: Outcome
            try:
                outcome = self.http.send(request, stream=stream)
                if stream and outcome.status_code != 200:
                    outcome.read()
                    outcome.close()
            except httpx.TransportError as error:
                outcome = error
            try:
                delay, request = exchange.send(outcome)
            except StopIteration as done:
                return cast(T, done.value)

    def stream(self, queue: str, **options: Unpack[StreamOptions]) -> EventStream:
        """The queue's messages as they become visible, over server-sent events: an iterator
        that resumes after a disconnection (api.md "Streams"). ``mode`` defaults to the
        queue's ``policy``; round-robin messages are ``ClaimedMessage``s, to ``ack``."""
        return EventStream(self, Subscription(calls.stream(queue, **options), self.retries))

    def stream_socket(self, queue: str, **options: Unpack[StreamOptions]) -> SocketStream:
        """``stream`` over a WebSocket, which also acks, extends and sets the credit."""
        call = calls.stream(queue, websocket=True, **options)
        return SocketStream(self, Subscription(call, self.retries))

    def connect_socket(self, call: Call[None]) -> ClientConnection:
        """A WebSocket for ``call``, with the fail-over and retries of any call."""
        exchange = self.servers.connect(call)
        delay, request = next(exchange)
        socket: ClientConnection | None = None
        while True:
            if delay:
                time.sleep(delay)
            outcome: Outcome
            try:
                socket = ws_connect(
                    legacy=True, **handshake(request, self.verify, self.servers.timeout)
                )
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

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Stream(Iterator[Message], Generic[C]):
    """What both kinds of stream do with their connection (``C``): open it, open it again
    after a cut (``Subscription`` says when to give up), close it."""

    def __init__(self, client: Client, subscription: Subscription) -> None:
        self.client = client
        self.subscription = subscription
        self.connection = self._open()

    @property
    def last_event_id(self) -> str | None:
        """The last broadcast message received: where the stream resumes."""
        return self.subscription.last_event_id

    def _connect(self) -> C:
        raise NotImplementedError

    def _open(self) -> C:
        connection = self._connect()
        self.subscription.opened()
        return connection

    def _reopen(self) -> C:
        while True:
            time.sleep(self.subscription.retry)
            try:
                return self._open()
            except errors.ClientError as failure:
                self.subscription.reopen_failed(failure)

    def close(self) -> None:
        self.subscription.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventStream(_Stream[httpx.Response]):
    """A stream over server-sent events (``Client.stream``); ``last_event_id`` is where it
    would resume. Close it (or use it in ``with``) to leave."""

    def __init__(self, client: Client, subscription: Subscription) -> None:
        super().__init__(client, subscription)
        self._messages = self._follow()

    def __next__(self) -> Message:
        return next(self._messages)

    def _connect(self) -> httpx.Response:
        return self.client.drive(self.client.servers.connect(self.subscription.call()), True)

    def _follow(self) -> Generator[Message, None, None]:
        subscription = self.subscription
        while not subscription.closed:
            try:
                for line in self.connection.iter_lines():
                    message = subscription.sse_line(line)
                    if message is not None:
                        yield message
            except httpx.TransportError:
                pass  # cut off, or silent too long: resume
            finally:
                self.connection.close()
            self.connection = self._reopen()

    def close(self) -> None:
        super().close()
        self.connection.close()
        self._messages.close()


class SocketStream(_Stream[ClientConnection]):
    """A stream over a WebSocket (``Client.stream_socket``). ``ack``, ``extend`` and
    ``credit`` wait for the server's reply; messages that arrive meanwhile are kept for the
    iteration. Not for use from several threads at once."""

    def __init__(self, client: Client, subscription: Subscription) -> None:
        self._pending: collections.deque[Message] = collections.deque()
        super().__init__(client, subscription)

    def __next__(self) -> Message:
        while not self._pending:
            frame = self._receive(resume=True)
            if isinstance(frame, Message):
                return frame
        return self._pending.popleft()

    def ack(self, claims: Iterable[str | ClaimedMessage]) -> list[str]:
        """Acknowledge claims; raises ``ClaimExpired`` when some were no longer current."""
        return settled("acked", self._ask({"ack": calls.claim_list(claims)}))

    def extend(self, claims: Iterable[str | ClaimedMessage], ttl: int) -> list[str]:
        """Keep the claims leased ``ttl`` more seconds (0 releases them)."""
        return settled("extended", self._ask({"extend": calls.claim_list(claims), "ttl": ttl}))

    def credit(self, credit: int) -> None:
        """How many unacked messages the server may hand this round-robin stream."""
        checked(self._ask({"credit": credit}))

    def _ask(self, frame: Payload) -> Payload:
        try:
            self.connection.send(orjson.dumps(frame).decode())
        except ConnectionClosed as closed:
            raise errors.ConnectionFailed(f"the stream was cut: {closed}") from closed
        while True:
            reply = self._receive(resume=False)
            if isinstance(reply, Message):
                self._pending.append(reply)
            else:
                return reply

    def _receive(self, resume: bool) -> Message | Payload:
        subscription = self.subscription
        while True:
            try:
                return subscription.ws_frame(self.connection.recv())
            except ConnectionClosed as closed:
                if subscription.closed and resume:
                    raise StopIteration from None
                subscription.ws_closed(closed.rcvd)
                if not resume or subscription.closed:
                    raise errors.ConnectionFailed(f"the stream was cut: {closed}") from closed
                self.connection = self._reopen()

    def _connect(self) -> ClientConnection:
        return self.client.connect_socket(self.subscription.call())

    def close(self) -> None:
        super().close()
        self.connection.close()
