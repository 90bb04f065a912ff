"""``/v1/{app}/{queue}/messages`` (purge) and ``/v1/{app}/{queue}/redrive``: the owner's upkeep
of a queue."""

from __future__ import annotations

import falcon.asgi

from queuey.api import requests, responses
from queuey.api.resource import Resource
from queuey.core.models import Caller

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class PurgeResource(Resource):
    async def on_delete(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        purged = await self.service.purge(caller, app, queue)
        responses.ok(resp, {"status": "ok", "purged": purged})


class RedriveResource(Resource):
    async def on_post(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        params = await requests.params(req, self.service.limits.max_message_bytes)
        moved = await self.service.redrive(caller, app, queue, params)
        responses.ok(resp, {"status": "ok", "moved": moved})
