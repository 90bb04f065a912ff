"""``/tokens/{app}``: the owner mints a token for a web page (outside ``/v1/``, where any name
may be a queue's)."""

from __future__ import annotations

import falcon.asgi

from queuey.api import requests, responses
from queuey.api.resource import Resource
from queuey.core.models import Caller


class TokensResource(Resource):
    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, caller: Caller, app: str
    ) -> None:
        params = await requests.params(req, self.service.limits.max_message_bytes)
        token, expires = await self.service.mint_token(caller, app, params)
        responses.ok(resp, {"status": "ok", "token": token, "expires": expires}, 201)
