"""Prometheus metrics (api.md Part 3 "Operations") and ``GET /metrics``.

Labels are bounded: routes are URI templates, methods a fixed set, applications the configured
ones. A queue name is never a label (there may be millions of queues).

With several worker processes, ``queuey serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
directory before any worker imports prometheus_client: every process then writes its values to
files there, and a scrape, whichever worker answers it, sums the files of all of them.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

import falcon.asgi
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from queuey.core.errors import Forbidden

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: What the message counter counts, by application.
EVENTS = ("posted", "read", "claimed", "acked")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
UNMATCHED = "unmatched"  # the route label of requests no route matched

# Request latencies: from a cached read (sub-millisecond) to a long poll's 20 s.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 25)


class Metrics:
    """This process's metrics. Observing a request costs two dict look-ups and two
    increments: the labelled children are cached."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.requests = Counter(
            "queuey_http_requests", "HTTP requests answered, by route, method and status",
            ("route", "method", "status"), registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "queuey_http_request_duration_seconds", "Time to answer a request, by route and method",
            ("route", "method"), buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.messages = Counter(
            "queuey_messages", "Messages posted, read, claimed and acked, by application",
            ("application", "event"), registry=self.registry,
        )  # fmt: skip
        self._requests: dict[tuple[str, str, int], Callable[[], None]] = {}
        self._latency: dict[tuple[str, str], Callable[[float], None]] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        counted = self._requests.get((route, method, status))
        if counted is None:
            counted = self._requests[route, method, status] = self.requests.labels(
                route, method, str(status)
            ).inc
        counted()
        timed = self._latency.get((route, method))
        if timed is None:
            timed = self._latency[route, method] = self.latency.labels(route, method).observe
        timed(seconds)

    def count(self, application: str, event: str, n: int) -> None:
        if n:
            self.messages.labels(application, event).inc(n)

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's values, or every worker's summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exited(self) -> None:
        """Forget this process's live gauges (counters and histograms keep their sums)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


class MetricsResource:
    """``GET /metrics``: open to loopback clients; others need the ``metrics_token``."""

    def __init__(self, metrics: Metrics, token: str | None) -> None:
        self.metrics = metrics
        self.token = token

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.remote_addr not in LOOPBACK and not self._token_matches(req.auth):
            raise Forbidden(
                "/metrics answers loopback clients; others send "
                "Authorization: Bearer <[queuey] metrics_token>"
            )
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = self.metrics.exposition()

    def _token_matches(self, auth: str | None) -> bool:
        if self.token is None or auth is None:
            return False
        scheme, _, given = auth.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )
