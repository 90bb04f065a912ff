"""Heartbeats and version: what load balancers and operators poll."""

from __future__ import annotations

import falcon.asgi

from queuey import __version__
from queuey.api.responses import ok
from queuey.service import QueueService

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class Heartbeat:
    """200 when the server and its storage answer; 503 (``storage``) when storage does not."""

    def __init__(self, service: QueueService) -> None:
        self.service = service

    async def on_get(self, req: Request, resp: Response) -> None:
        await self.service.heartbeat()
        ok(resp, {"status": "ok"})

    on_head = on_get


class LbHeartbeat:
    """200 whenever the process answers HTTP at all."""

    async def on_get(self, req: Request, resp: Response) -> None:
        ok(resp, {"status": "ok"})

    on_head = on_get


class Version:
    def __init__(self, service: QueueService) -> None:
        self.service = service

    async def on_get(self, req: Request, resp: Response) -> None:
        ok(
            resp,
            {
                "status": "ok",
                "name": "queuey",
                "version": __version__,
                "api": "v1",
                "storage": self.service.storage.name,
            },
        )

    on_head = on_get
