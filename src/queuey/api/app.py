"""create_app: the ASGI application, wired once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

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
from queuey.api.asgi import QueueyApp, Sockets
from queuey.api.auth import KeyRing
from queuey.api.cors import Cors, CorsPolicy
from queuey.api.frontend import FrontEnd, Mount
from queuey.api.metrics import Metrics, MetricsResource
from queuey.api.observe import Observer
from queuey.service import QueueService
from queuey.streams import Streams

AsgiApp = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]


class Lifespan:
    """Opens storage and starts the sweeper (and the metrics' flusher) at start-up; ends the
    streams and finishes writes at shutdown."""

    def __init__(
        self,
        service: QueueService,
        streams: Streams,
        sweep_interval: float,
        sweep_batch: int,
        metrics: Metrics | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.service = service
        self.streams = streams
        self.sweep_interval = sweep_interval
        self.sweep_batch = sweep_batch
        self.metrics = metrics
        self._flusher: asyncio.Task[None] | None = None
        self.observer = observer

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.service.start(self.sweep_interval, self.sweep_batch)
        if self.metrics is not None:
            self._flusher = asyncio.create_task(self.metrics.run_flusher())

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.streams.stop()
        await self.service.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self.observer is not None:
            self.observer.flush()


def create_app(
    service: QueueService,
    keys: KeyRing,
    sweep_interval: float = 10.0,
    sweep_batch: int = 1000,
    access_log: str = "off",
    metrics: Metrics | None = None,
    metrics_token: str | None = None,
    access_log_to: TextIO | None = None,
    cors: CorsPolicy | None = None,
    front_ends: Sequence[FrontEnd] = (),
) -> AsgiApp:
    """The app; ``metrics`` None leaves out ``GET /metrics`` and the instrumentation. Access
    log lines go to ``access_log_to`` (stdout by default). Every route is added through
    :meth:`Cors.add_route`, so that preflights answer with its methods."""
    routes = Cors(cors or CorsPolicy())
    hub = Streams(service)
    if metrics is not None:
        metrics.watch("open_streams", lambda: hub.open)
        metrics.watch("waiting_long_polls", lambda: service.waiting_long_polls)
    observer = Observer(access_log, metrics, access_log_to)
    app = QueueyApp(
        media_type=falcon.MEDIA_JSON,
        middleware=[
            observer,
            routes,
            Lifespan(service, hub, sweep_interval, sweep_batch, metrics, observer),
        ],
        cors_enable=False,
    )
    sockets = Sockets(streams.StreamSocket(service, keys, hub))
    app.websocket = sockets
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
    if metrics is not None:
        notifier = service.notifier
        metrics.wakes_counted = lambda: notifier.wakes
        route("/metrics", MetricsResource(metrics, metrics_token))
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
    mount = Mount(app, routes, sockets, hub)
    for front_end in front_ends:
        front_end.install(mount)
    return app
