"""``Client``: the API over blocking HTTP."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar, cast

import httpx

from queuey.client.base import Api
from queuey.client.calls import Call
from queuey.client.servers import Outcome

P = ParamSpec("P")
T = TypeVar("T")


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
        exchange = self.servers.exchange(call)
        delay, request = next(exchange)
        while True:
            if delay:
                time.sleep(delay)
            outcome: Outcome
            try:
                outcome = self.http.send(request)
            except httpx.TransportError as error:
                outcome = error
            try:
                delay, request = exchange.send(outcome)
            except StopIteration as done:
                return cast(T, done.value)

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
