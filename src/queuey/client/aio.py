"""``AsyncClient``: the API over asyncio."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import httpx

from queuey.client.base import Api
from queuey.client.calls import Call
from queuey.client.servers import Outcome

P = ParamSpec("P")
T = TypeVar("T")


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
        exchange = self.servers.exchange(call)
        delay, request = next(exchange)
        while True:
            if delay:
                await asyncio.sleep(delay)
            outcome: Outcome
            try:
                outcome = await self.http.send(request)
            except httpx.TransportError as error:
                outcome = error
            try:
                delay, request = exchange.send(outcome)
            except StopIteration as done:
                return cast(T, done.value)

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
