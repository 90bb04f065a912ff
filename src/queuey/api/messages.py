"""``/v1/{app}/{queue}/{ids}``: messages by id."""

from __future__ import annotations

import falcon.asgi

from queuey.api import requests, responses
from queuey.api.resource import Resource
from queuey.core.models import Caller

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class MessagesByIdResource(Resource):
    async def on_get(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, ids: str
    ) -> None:
        found = await self.service.get_messages(caller, app, queue, ids)
        responses.ok(resp, responses.messages(found))

    on_head = on_get

    async def on_put(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, ids: str
    ) -> None:
        body = await requests.read_body(req, self.service.limits.max_message_bytes)
        await self.service.put_messages(
            caller, app, queue, ids, body, req.content_type, req.get_header("x-ttl")
        )
        responses.ok(resp, {"status": "ok"})

    async def on_delete(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, ids: str
    ) -> None:
        await self.service.delete_messages(caller, app, queue, ids)
        responses.ok(resp, {"status": "ok"})
