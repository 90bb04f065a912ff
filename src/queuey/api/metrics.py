"""Prometheus metrics (api.md Part 3 "Operations") and ``GET /metrics``.

Labels are bounded: routes are URI templates, methods a fixed set, applications the configured
ones. A queue name is never a label (there may be millions of queues).

With several worker processes, ``queuey serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
directory before any worker imports prometheus_client: every process then writes its values to
files there, and a scrape, whichever worker answers it, sums the files of all of them.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from bisect import bisect_left
from collections.abc import Callable

import falcon.asgi
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from queuey.core.errors import Forbidden

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: What the message counter counts, by application.
EVENTS = ("posted", "read", "claimed", "acked")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
UNMATCHED = "unmatched"  # the route label of requests no route matched

#: Seconds between flushes of a worker's values, when several workers share them.
FLUSH_INTERVAL = 1.0

# Request latencies: from a cached read (sub-millisecond) to a long poll's 20 s.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 25)


class Metrics:
    """This process's metrics.

    The hot path only adds to plain dicts (a request costs a few dict operations and a
    bisect, no lock); :meth:`flush` moves what they gathered into the prometheus_client
    metrics. A scrape flushes first, so a single process answers exact values; with several
    workers each also flushes every :data:`FLUSH_INTERVAL` seconds (:meth:`run_flusher`), so a
    scrape answered by one worker includes the others' values of up to that long ago.
    """

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
        self.wakes = Counter(
            "queuey_waiter_wakes", "Long polls and stream feeds woken by a change of their queue"
            " (or of every queue, when the store cannot tell which)", registry=self.registry,
        )  # fmt: skip
        #: This process's count of wakes (the Notifier's), and its value at the last flush.
        self.wakes_counted: Callable[[], int] = lambda: 0
        self._wakes_flushed = 0
        self._requests: dict[tuple[str, str, int], int] = {}
        # Per (route, method): a count per bucket (the last one +Inf), then the sum of seconds.
        self._latency: dict[tuple[str, str], list[float]] = {}
        self._messages: dict[tuple[str, str], int] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        counts = self._requests
        key = (route, method, status)
        counts[key] = counts.get(key, 0) + 1
        timed = self._latency.get((route, method))
        if timed is None:
            timed = self._latency[route, method] = [0.0] * (len(BUCKETS) + 2)
        timed[bisect_left(BUCKETS, seconds)] += 1  # the first bucket whose bound >= seconds
        timed[-1] += seconds

    def count(self, application: str, event: str, n: int) -> None:
        counts = self._messages
        key = (application, event)
        counts[key] = counts.get(key, 0) + n

    def flush(self) -> None:
        """Add what the hot path gathered since the last flush to the exported metrics."""
        requests, self._requests = self._requests, {}
        latency, self._latency = self._latency, {}
        messages, self._messages = self._messages, {}
        for (route, method, status), n in requests.items():
            self.requests.labels(route, method, str(status)).inc(n)
        for (route, method), timed in latency.items():
            child = self.latency.labels(route, method)
            # What Histogram.observe does one observation at a time, for many at once.
            for bucket, observed in zip(child._buckets, timed[:-1], strict=True):
                if observed:
                    bucket.inc(observed)
            child._sum.inc(timed[-1])
        for (application, event), n in messages.items():
            self.messages.labels(application, event).inc(n)
        wakes = self.wakes_counted()
        self.wakes.inc(wakes - self._wakes_flushed)
        self._wakes_flushed = wakes

    async def run_flusher(self) -> None:
        """Flush every FLUSH_INTERVAL seconds (for the other workers' scrapes) until cancelled;
        then flush what is left."""
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's values, or every worker's summed."""
        self.flush()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


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
