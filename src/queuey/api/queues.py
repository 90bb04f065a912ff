"""``/v1/{app}`` and ``/v1/{app}/{queue}``: queues, and posting and reading messages."""

from __future__ import annotations

import falcon.asgi
import orjson

from queuey.api import render
from queuey.core.errors import InvalidParameter

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class Application(render.Resource):
    async def on_get(self, req: Request, resp: Response, app: str) -> None:
        caller = self.caller(req)
        queues, counts = await self.service.list_queues(caller, app, render.query(req))
        entries: list[dict[str, object]] = [
            {"queue_name": q} if isinstance(q, str) else render.queue_details(q) for q in queues
        ]
        if counts is not None:
            for entry, count in zip(entries, counts, strict=True):
                entry["count"] = count
        render.ok(resp, {"status": "ok", "queues": entries})

    on_head = on_get

    async def on_post(self, req: Request, resp: Response, app: str) -> None:
        caller = self.caller(req)
        params = await render.form(req, self.service.limits.max_message_bytes)
        queue = await self.service.create_queue(caller, app, params)
        render.ok(resp, {"status": "ok", **render.queue_settings(queue)}, 201)


class Queue(render.Resource):
    async def on_get(self, req: Request, resp: Response, app: str, queue: str) -> None:
        caller = self.caller(req)
        found = await self.service.read_messages(caller, app, queue, render.query(req))
        render.ok(resp, render.messages(found))

    on_head = on_get

    async def on_post(self, req: Request, resp: Response, app: str, queue: str) -> None:
        caller = self.caller(req)
        limits = self.service.limits
        if render.is_json(req.content_type):
            body = await render.read_body(req, limits.max_batch_bytes)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise InvalidParameter() from None
            posted = await self.service.post_batch(caller, app, queue, payload)
        else:
            body = await render.read_body(req, limits.max_message_bytes)
            posted = await self.service.post_raw(
                caller, app, queue, body, req.content_type,
                req.get_header("X-TTL"), req.get_header("X-Partition"),
                req.get_header("X-Delay"), req.get_header("X-Dedup-Id"),
            )  # fmt: skip
        render.ok(resp, render.posted(posted), 201)

    async def on_put(self, req: Request, resp: Response, app: str, queue: str) -> None:
        caller = self.caller(req)
        params = await render.form(req, self.service.limits.max_message_bytes)
        updated = await self.service.update_queue(caller, app, queue, params)
        render.ok(resp, {"status": "ok", **render.queue_settings(updated),
                         "created": updated.created})  # fmt: skip

    async def on_delete(self, req: Request, resp: Response, app: str, queue: str) -> None:
        caller = self.caller(req)
        await self.service.delete_queue(caller, app, queue)
        render.ok(resp, {"status": "ok"})
