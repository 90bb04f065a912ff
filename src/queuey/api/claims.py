"""``/v1/{app}/{queue}/claims``, ``.../claims/{claim_ids}`` and ``.../stats``: work-queue
consumption (api.md Part 2)."""

from __future__ import annotations

import falcon.asgi

from queuey.api import requests, responses
from queuey.api.delivery import connection
from queuey.api.resource import Resource
from queuey.core.models import Caller

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class ClaimsResource(Resource):
    async def on_post(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        params = await requests.params(req, self.service.limits.max_message_bytes)
        found = await self.service.claim(caller, app, queue, params, connection(req))
        responses.ok(resp, responses.claims(found))


class ClaimResource(Resource):
    async def on_delete(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, claim_ids: str
    ) -> None:
        acked = await self.service.ack(caller, app, queue, claim_ids)
        responses.ok(resp, {"status": "ok", "acked": acked})

    async def on_patch(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, claim_ids: str
    ) -> None:
        params = await requests.params(req, self.service.limits.max_message_bytes)
        extended, until = await self.service.extend(caller, app, queue, claim_ids, params)
        responses.ok(resp, responses.extended(extended, until))


class StatsResource(Resource):
    async def on_get(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        found, counts = await self.service.stats(caller, app, queue)
        responses.ok(resp, responses.stats(found, counts))

    on_head = on_get
