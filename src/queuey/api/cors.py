"""CORS: which web origins may call Queuey from a browser, and the headers that tell them so.

Origins are allowed for every application (``[queuey] cors_origins``, ``*`` for any) or for one
(``[cors] <app> = origins``, on its ``/v1/<app>`` and ``/tokens/<app>`` URLs and the routes of
the front ends serving it). An allowed origin is echoed back with ``Vary: Origin`` on every
answer, errors included; a preflight answers 204 with exactly the methods of the route it asks
about. Other origins (``null``, another scheme,
host or port) get no CORS headers at all. Origins are compared whole, as the browser sends them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import falcon
import falcon.asgi
import falcon.routing

ALLOWED_HEADERS = (
    "Authorization", "Content-Type", "X-TTL", "X-Partition", "X-Delay", "X-Dedup-Id",
    "Last-Event-ID",
)  # fmt: skip
EXPOSED_HEADERS = ("Retry-After", "Location", "WWW-Authenticate")
MAX_AGE = 600
_APP_PREFIXES = ("v1", "tokens")


def normal_origin(origin: str) -> str:
    """An origin as browsers send it: lower-case scheme and host, no trailing slash."""
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True)
class CorsPolicy:
    everywhere: frozenset[str] = frozenset()
    per_application: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, origins: Collection[str], apps: Mapping[str, Collection[str]]) -> CorsPolicy:
        def normal(items: Collection[str]) -> frozenset[str]:
            return frozenset(normal_origin(item) for item in items)

        return cls(normal(origins), {app: normal(items) for app, items in apps.items()})

    def allows(self, origin: str, path: str, application: str | None = None) -> bool:
        """Whether ``origin`` may call ``path``; ``application``: the application a front
        end's route serves (the v1 and tokens URLs name theirs)."""
        if origin == "null" or "://" not in origin:
            return False
        if "*" in self.everywhere or origin in self.everywhere:
            return True
        parts = path.split("/", 3)
        if len(parts) > 2 and parts[1] in _APP_PREFIXES:
            application = parts[2]
        return application is not None and origin in self.per_application.get(application, ())


class Cors:
    """Middleware: preflights, and the CORS headers of every answer to an allowed origin."""

    def __init__(self, policy: CorsPolicy) -> None:
        self.policy = policy
        self.methods: dict[str, str] = {}  # uri template -> the methods of its route
        self.applications: dict[str, str] = {}  # a front end's uri template -> its application

    def add_route(
        self,
        app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response],
        template: str,
        resource: object,
        suffix: str | None = None,
        application: str | None = None,
    ) -> None:
        """Add a route to ``app`` and remember its methods for preflights (and the
        application it serves, for a front end's route)."""
        if suffix is None:
            app.add_route(template, resource)
        else:
            app.add_route(template, resource, suffix=suffix)
        methods = set(falcon.routing.map_http_methods(resource, suffix=suffix))
        if "GET" in methods:
            methods.add("HEAD")
        methods.add("OPTIONS")
        self.methods[template] = ", ".join(m for m in falcon.COMBINED_METHODS if m in methods)
        if application is not None:
            self.applications[template] = application

    def _origin(self, req: falcon.asgi.Request) -> str | None:
        origin = req.get_header("Origin")
        if origin is None:
            return None
        application = self.applications.get(req.uri_template or "")
        return origin if self.policy.allows(origin, req.path, application) else None

    async def process_resource(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        params: dict[str, Any],
    ) -> None:
        if req.method != "OPTIONS" or not req.get_header("Access-Control-Request-Method"):
            return
        template = req.uri_template
        if self._origin(req) is None or template not in self.methods:
            return
        resp.status = 204
        resp.set_header("Access-Control-Allow-Methods", self.methods[template])
        resp.set_header("Access-Control-Allow-Headers", ", ".join(ALLOWED_HEADERS))
        resp.set_header("Access-Control-Max-Age", str(MAX_AGE))
        resp.complete = True

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        if req.get_header("Origin") is None:
            return
        resp.append_header("Vary", "Origin")
        origin = self._origin(req)
        if origin is None:
            return
        resp.set_header("Access-Control-Allow-Origin", origin)
        resp.set_header("Access-Control-Expose-Headers", ", ".join(EXPOSED_HEADERS))
