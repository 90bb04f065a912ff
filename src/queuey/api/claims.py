"""``/v1/{app}/{queue}/claims``, ``.../claims/{claim_ids}`` and ``.../stats``: work-queue
consumption (api.md Part 2)."""

from __future__ import annotations

import falcon.asgi

from queuey.api import requests, responses
from queuey.api.auth import KeyRing
from queuey.api.delivery import connection
from queuey.api.observe import count
from queuey.api.resource import Resource
from queuey.core.models import Caller
from queuey.service import QueueService
from queuey.streams import Streams

Request = falcon.asgi.Request
Response = falcon.asgi.Response


class ClaimsResource(Resource):
    async def on_post(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        params = await requests.params(req, self.service.limits.max_message_bytes)
        found = await self.service.claim(caller, app, queue, params, connection(req))
        count(req, app, "claimed", len(found))
        responses.ok(resp, responses.claims(found))


class ClaimResource(Resource):
    """Acks and extensions; round-robin streams holding the claims are told (credit)."""

    def __init__(self, service: QueueService, keys: KeyRing, streams: Streams) -> None:
        super().__init__(service, keys)
        self.streams = streams

    async def on_delete(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, claim_ids: str
    ) -> None:
        try:
            acked = await self.service.ack(caller, app, queue, claim_ids)
        finally:  # acked or no longer current: either way not held any more
            self.streams.settle(app, queue, [c.strip() for c in claim_ids.lower().split(",")])
        count(req, app, "acked", len(acked))
        responses.ok(resp, {"status": "ok", "acked": acked})

    async def on_patch(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str, claim_ids: str
    ) -> None:
        params = await requests.params(req, self.service.limits.max_message_bytes)
        extended, until = await self.service.extend(caller, app, queue, claim_ids, params)
        self.streams.settle(app, queue, extended, until)
        responses.ok(resp, responses.extended(extended, until))


class StatsResource(Resource):
    async def on_get(
        self, req: Request, resp: Response, caller: Caller, app: str, queue: str
    ) -> None:
        found, counts = await self.service.stats(caller, app, queue)
        responses.ok(resp, responses.stats(found, counts))

    on_head = on_get
