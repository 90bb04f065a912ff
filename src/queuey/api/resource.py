"""The base of the REST resources: the service they call, and who is calling."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import falcon.asgi

from queuey.api.auth import KeyRing, authenticate
from queuey.service import QueueService

Responder = Callable[..., Awaitable[None]]


class Resource:
    """A REST resource. Its responders are written ``on_<method>(self, req, resp, caller,
    **route_params)``: the caller (:class:`queuey.core.models.Caller`) is resolved from the
    request's credentials once, here, before the responder runs; an unknown application key
    or an invalid token answers 401 without running it."""

    def __init__(self, service: QueueService, keys: KeyRing) -> None:
        self.service = service
        self.keys = keys

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, responder in list(vars(cls).items()):
            if name.startswith("on_") and inspect.iscoroutinefunction(responder):
                setattr(cls, name, _with_caller(responder))


def _with_caller(responder: Responder) -> Responder:
    @functools.wraps(responder)
    async def resolved(
        self: Resource, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: str
    ) -> None:
        caller = authenticate(req, self.keys, self.service.tokens, params.get("app"))
        await responder(self, req, resp, caller, **params)

    return resolved
