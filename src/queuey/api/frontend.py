"""What the compatibility front ends (api.md Part 4) share: who may call them, their queues
created on first use, and listing an application's queues with their lengths."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import falcon.asgi

from queuey.api import errors
from queuey.api.asgi import Sockets, WebSocketHandler
from queuey.api.auth import KeyRing
from queuey.api.cors import Cors
from queuey.core.errors import (
    Forbidden,
    InvalidApplicationKey,
    QueueExists,
    QueueNotFound,
    Unauthorized,
)
from queuey.core.models import Caller, Queue
from queuey.service import QueueService
from queuey.streams import Streams

T = TypeVar("T")
AsgiApp = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]
CHALLENGE = 'Basic realm="Queuey"'


@dataclass(frozen=True)
class Mount:
    """Where a front end adds its routes: the app, through the CORS route table (so that
    preflights and CORS headers follow the settings, the application's own origins
    included), its WebSocket paths, and the streams of the server process."""

    app: AsgiApp
    routes: Cors
    sockets: Sockets
    streams: Streams

    def route(self, template: str, resource: object, application: str) -> None:
        """Add an HTTP route of ``application``'s front end."""
        self.routes.add_route(self.app, template, resource, application=application)

    def socket(self, prefix: str, handler: WebSocketHandler) -> None:
        """Hand WebSocket connections whose path starts with ``prefix`` to ``handler``."""
        self.sockets.add(prefix, handler)


class FrontEnd(Protocol):
    def install(self, mount: Mount) -> None:
        """Add the front end's routes (and what they need)."""
        ...


class BasicUnauthorized(Unauthorized):
    message = (
        "Credentials are required: HTTP Basic with the application's name and key, or "
        "Authorization: Application <key>"
    )


class BasicInvalidKey(InvalidApplicationKey):
    message = "Invalid application name or key"


class Access:
    """Who calls a front end: the one application it serves, named by HTTP Basic (the
    application's name and one of its keys) or ``Authorization: Application <key>``; requests
    from ``hosts_allow`` address prefixes (``all``: any) need no credentials. Another
    application's valid credentials are refused (403)."""

    def __init__(self, application: str, keys: KeyRing, hosts_allow: Sequence[str] = ()) -> None:
        self.application = application
        self.keys = keys
        self.hosts_allow = tuple(hosts_allow)

    def caller(self, req: falcon.asgi.Request) -> Caller:
        return self.caller_of(req.auth, req.remote_addr)

    def caller_of(self, authorization: str | None, address: str | None) -> Caller:
        """The caller sending ``authorization`` from ``address``."""
        if self._allowed(address):
            return Caller(self.application)
        header = (authorization or "").strip()
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            name, key = _basic(value)
            caller = self._caller(f"Application {key}")
            if caller.app != name:
                raise BasicInvalidKey()
        else:
            caller = self._caller(header)
        if caller.app is None:
            raise BasicUnauthorized()
        if caller.app != self.application:
            raise Forbidden()
        return caller

    def _caller(self, header: str) -> Caller:
        try:
            return self.keys.caller(header)
        except InvalidApplicationKey:
            raise BasicInvalidKey() from None

    def _allowed(self, address: str | None) -> bool:
        if "all" in self.hosts_allow:
            return True
        return (
            bool(self.hosts_allow) and address is not None and address.startswith(self.hosts_allow)
        )


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BasicInvalidKey() from None
    name, colon, key = decoded.partition(":")
    # A key never holds these; refusing them keeps a password from smuggling a second
    # credential into the Authorization syntax.
    if not colon or not key or any(c in key for c in "; \t"):
        raise BasicInvalidKey()
    return name, key


async def _challenge(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
) -> None:
    await errors.queuey_error(req, resp, ex, params)
    resp.set_header("WWW-Authenticate", CHALLENGE)


def install_errors(app: AsgiApp) -> None:
    """A 401 of a front end asks for HTTP Basic credentials, which its clients can send."""
    app.add_error_handler(BasicUnauthorized, _challenge)
    app.add_error_handler(BasicInvalidKey, _challenge)


async def on_first_use(
    service: QueueService,
    caller: Caller,
    app: str,
    queue: str,
    call: Callable[[Caller, str, str], Awaitable[T]],
    settings: Mapping[str, object],
) -> T:
    """``call(caller, app, queue)``, creating the queue with ``settings`` first if it does not
    exist yet."""
    try:
        return await call(caller, app, queue)
    except QueueNotFound:
        pass
    with contextlib.suppress(QueueExists):  # another request created it meanwhile
        await service.create_queue(caller, app, {"queue_name": queue, **settings})
    return await call(caller, app, queue)


async def queue_with_count(
    service: QueueService, caller: Caller, app: str, name: str
) -> tuple[Queue, int] | None:
    """The queue and how many live messages it holds, or None if there is no such queue."""
    params = {"offset": name, "limit": "1", "include_count": "true"}
    queues, counts = await service.list_queues(caller, app, params)
    if not queues or not isinstance(queues[0], Queue) or queues[0].name != name:
        return None
    return queues[0], (counts or [0])[0]


async def all_queues(service: QueueService, caller: Caller, app: str) -> list[tuple[Queue, int]]:
    """Every queue of ``app`` with its live message count, in name order."""
    found: list[tuple[Queue, int]] = []
    page = service.limits.max_list_limit
    offset = ""
    while True:
        params = {"offset": offset, "limit": str(page), "include_count": "true"}
        queues, counts = await service.list_queues(caller, app, params)
        pairs = [(q, c) for q, c in zip(queues, counts or [], strict=True) if isinstance(q, Queue)]
        found += pairs
        if len(queues) < page:
            return found
        offset = pairs[-1][0].name + "\0"  # the first name after the last one
