"""create_app: the ASGI application, wired once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi

from queuey.api import (
    claims,
    console,
    errors,
    maintenance,
    messages,
    openapi,
    ops,
    queues,
    streams,
    tokens,
)
from queuey.api.asgi import QueueyApp
from queuey.api.auth import KeyRing
from queuey.api.cors import Cors, CorsPolicy
from queuey.service import QueueService
from queuey.streams import Streams

AsgiApp = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]


class Lifespan:
    """Opens storage and starts the sweeper at start-up; ends the streams and finishes writes
    at shutdown."""

    def __init__(
        self, service: QueueService, streams: Streams, sweep_interval: float, sweep_batch: int
    ) -> None:
        self.service = service
        self.streams = streams
        self.sweep_interval = sweep_interval
        self.sweep_batch = sweep_batch

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.service.start(self.sweep_interval, self.sweep_batch)

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.streams.stop()
        await self.service.stop()


def create_app(
    service: QueueService,
    keys: KeyRing,
    sweep_interval: float = 10.0,
    sweep_batch: int = 1000,
    cors: CorsPolicy | None = None,
) -> AsgiApp:
    """The app; every route is added through :meth:`Cors.add_route`, so that preflights
    answer with its methods."""
    routes = Cors(cors or CorsPolicy())
    hub = Streams(service)
    app = QueueyApp(
        media_type=falcon.MEDIA_JSON,
        middleware=[routes, Lifespan(service, hub, sweep_interval, sweep_batch)],
        cors_enable=False,
    )
    app.websocket = streams.StreamSocket(service, keys, hub)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_form_urlencoded = False
    app.resp_options.secure_cookies_by_default = False
    errors.install(app)

    def route(template: str, resource: object, suffix: str | None = None) -> None:
        routes.add_route(app, template, resource, suffix)

    route("/__heartbeat__", ops.Heartbeat(service))
    route("/__lbheartbeat__", ops.LbHeartbeat())
    route("/__version__", ops.Version(service))
    route("/openapi.json", openapi.OpenApi())
    site = console.Console()
    route("/", site, suffix="root")
    route("/console", site, suffix="index")
    route("/console/{asset}", site)
    route("/tokens/{app}", tokens.TokensResource(service, keys))
    route("/v1/{app}", queues.ApplicationResource(service, keys))
    route("/v1/{app}/{queue}", queues.QueueResource(service, keys))
    route("/v1/{app}/{queue}/claims", claims.ClaimsResource(service, keys))
    route("/v1/{app}/{queue}/claims/{claim_ids}", claims.ClaimResource(service, keys, hub))
    route("/v1/{app}/{queue}/stats", claims.StatsResource(service, keys))
    route("/v1/{app}/{queue}/messages", maintenance.PurgeResource(service, keys))
    route("/v1/{app}/{queue}/redrive", maintenance.RedriveResource(service, keys))
    route("/v1/{app}/{queue}/stream", streams.StreamResource(service, keys, hub))
    route("/v1/{app}/{queue}/{ids}", messages.MessagesByIdResource(service, keys))
    return app
