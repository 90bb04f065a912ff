"""``/v1/{app}`` and ``/v1/{app}/{queue}``: queues, and posting and reading messages."""

from __future__ import annotations

import falcon.asgi
import orjson

from queuey.api import requests, responses
from queuey.api.delivery import connection
from queuey.api.observe import count
from queuey.api.resource import Resource
from queuey.core.errors import InvalidParameter
from queuey.core.models import Caller

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class ApplicationResource(Resource):
    async def on_get(self, req: Request, resp: Response, caller: Caller, app: str) -> None:
        queues, counts = await self.service.list_queues(caller, app, requests.query(req))
        responses.ok(resp, responses.queue_list(queues, counts))

    on_head = on_get

    async def on_post(self, req: Request, resp: Response, caller: Caller, app: str) -> None:
        params = await requests.form(req, self.service.limits.max_message_bytes)
        queue, created = await self.service.create_queue(caller, app, params)
        responses.ok(
            resp, {"status": "ok", **responses.queue_settings(queue), "created": created}, 201
        )


class QueueResource(Resource):
    async def on_get(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        query = requests.query(req)
        read = await self.service.read_messages(caller, app, queue, query, connection(req))
        count(req, app, "read", len(read.messages))
        responses.ok(resp, responses.read(read))

    on_head = on_get

    async def on_post(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        limits = self.service.limits
        if requests.is_json(req.content_type):
            body = await requests.read_body(req, limits.max_batch_bytes)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise InvalidParameter() from None
            posted = await self.service.post_batch(caller, app, queue, payload)
        else:
            body = await requests.read_body(req, limits.max_message_bytes)
            posted = await self.service.post_raw(
                caller, app, queue, body, req.content_type,
                req.get_header("X-TTL"), req.get_header("X-Partition"),
                req.get_header("X-Delay"), req.get_header("X-Dedup-Id"),
            )  # fmt: skip
        count(req, app, "posted", len(posted[0]))
        responses.ok(resp, responses.posted(posted), 201)

    async def on_put(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        params = await requests.form(req, self.service.limits.max_message_bytes)
        updated = await self.service.update_queue(caller, app, queue, params)
        responses.ok(resp, {"status": "ok", **responses.queue_settings(updated),
                            "created": updated.created})  # fmt: skip

    async def on_delete(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        await self.service.delete_queue(caller, app, queue)
        responses.ok(resp, {"status": "ok"})
