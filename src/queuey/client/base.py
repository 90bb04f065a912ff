"""What ``Client`` and ``AsyncClient`` share: their arguments and their methods, each made of
one of ``calls``."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from queuey.client import calls
from queuey.client.calls import Call
from queuey.client.servers import Servers

if TYPE_CHECKING:
    from queuey.client.aio import AsyncClient
    from queuey.client.sync import Client

P = ParamSpec("P")
T = TypeVar("T")
H = TypeVar("H")


class Method(Generic[P, T]):
    """A client method: the parameters of its ``calls`` function, and its decoded answer
    (awaitable on ``AsyncClient``)."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any] | None = None) -> Callable[P, Call[T]]: ...

    @overload
    def __get__(self, client: Client, owner: type[Any] | None = None) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, client: AsyncClient, owner: type[Any] | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, client: Any, owner: type[Any] | None = None) -> Any:
        # On the class (help(), documentation tools): the call, with its signature.
        return self.build if client is None else client.bind(self.build)


class Api(Generic[H]):
    """The client's arguments and methods; ``H`` is its httpx client.

    Args:
        url: one or more base URLs of servers sharing a store (a list, or comma-separated),
            each ending in ``/v1/<app>`` or naming the application through ``app``.
        key: the application key (none: only public queues can be read).
        timeout: seconds to wait for a connection or an answer; a long poll adds its wait.
        retries: how many more attempts a 503 answer gets, each after its ``Retry-After``
            (at most ``max_retry_delay`` seconds) and on the next base URL.
        verify: TLS verification, as httpx takes it.
        http: an httpx client to send with (its own settings and transport), instead of a
            new one.

    A refused connection moves on to the next base URL at once, and the client stays on the
    one that answered; ``ConnectionFailed`` is raised when every URL refused in a row.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        key: str | None = None,
        *,
        app: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        max_retry_delay: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        http: H | None = None,
    ) -> None:
        self.servers = Servers(url, key, app, timeout, retries, max_retry_delay)
        self.verify = verify  # for WebSocket streams, which do not go through httpx
        self.http = http if http is not None else self.open(verify)

    def open(self, verify: ssl.SSLContext | bool) -> H:
        raise NotImplementedError

    @property
    def retries(self) -> int:
        return self.servers.retries

    list_queues = Method(calls.list_queues)
    create_queue = Method(calls.create_queue)
    update_queue = Method(calls.update_queue)
    delete_queue = Method(calls.delete_queue)
    stats = Method(calls.stats)
    post = Method(calls.post)
    post_batch = Method(calls.post_batch)
    read = Method(calls.read)
    get_messages = Method(calls.get_messages)
    put_messages = Method(calls.put_messages)
    delete_messages = Method(calls.delete_messages)
    claim = Method(calls.claim)
    ack = Method(calls.ack)
    extend = Method(calls.extend)
    release = Method(calls.release)
    purge = Method(calls.purge)
    redrive = Method(calls.redrive)
    mint_token = Method(calls.mint_token)
    heartbeat = Method(calls.heartbeat)
    version = Method(calls.version)
