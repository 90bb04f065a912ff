"""``/v1/{app}/{queue}/{ids}``: messages by id."""

from __future__ import annotations

import falcon.asgi

from queuey.api import render

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class MessagesById(render.Resource):
    async def on_get(self, req: Request, resp: Response, app: str, queue: str, ids: str) -> None:
        caller = self.caller(req)
        found = await self.service.get_messages(caller, app, queue, ids)
        render.ok(resp, render.messages(found))

    on_head = on_get

    async def on_put(self, req: Request, resp: Response, app: str, queue: str, ids: str) -> None:
        caller = self.caller(req)
        body = await render.read_body(req, self.service.limits.max_message_bytes)
        await self.service.put_messages(
            caller, app, queue, ids, body, req.content_type, req.get_header("x-ttl")
        )
        render.ok(resp, {"status": "ok"})

    async def on_delete(self, req: Request, resp: Response, app: str, queue: str, ids: str) -> None:
        caller = self.caller(req)
        await self.service.delete_messages(caller, app, queue, ids)
        render.ok(resp, {"status": "ok"})
