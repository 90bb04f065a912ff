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
import math
import os
import threading
from bisect import bisect_right
from collections.abc import Callable

import falcon.asgi
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from queuey.core import observer
from queuey.core.errors import Forbidden

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: What the message counter counts, by application: the API's events (counted per request),
#: then the storage's (:data:`queuey.core.observer.EVENTS`).
EVENTS = ("posted", "read", "claimed", "acked", *observer.EVENTS)
#: The gauges, read when the metrics are flushed: name -> help.
GAUGES = {
    "open_streams": "Streams open on this server (summed over workers)",
    "waiting_long_polls": "Reads and claims waiting for a message (summed over workers)",
}
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
UNMATCHED = "unmatched"  # the route label of requests no route matched

#: Seconds between flushes: what the hot path gathers meanwhile is kept as it came.
FLUSH_INTERVAL = 1.0

# Request latencies: from a cached read (sub-millisecond) to a long poll's 20 s.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 25)


def _add(child: Histogram, latencies: list[float]) -> None:
    """What Histogram.observe does one latency at a time, for many at once (sorted here)."""
    latencies.sort()
    start = 0
    for bound, bucket in zip((*BUCKETS, math.inf), child._buckets, strict=True):
        end = bisect_right(latencies, bound, start)  # the latencies <= bound
        if end > start:
            bucket.inc(end - start)
        start = end
    child._sum.inc(math.fsum(latencies))


class Metrics:
    """This process's metrics, and the observer (:class:`queuey.core.observer.Observer`) of
    its storage and service.

    The hot path only appends latencies to lists and adds to plain dicts (a request costs a
    dict look-up and an append, a storage call an append, no lock); :meth:`flush` sorts the
    latencies into buckets and moves everything into the prometheus_client metrics. A scrape
    flushes first, so a single process answers exact values; every process also flushes every
    :data:`FLUSH_INTERVAL` seconds (:meth:`run_flusher`), which bounds what the lists hold and,
    with several workers, makes a scrape answered by one worker include the others' values of
    up to that long ago.
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
            "queuey_messages",
            "Messages posted, read, claimed, acked, redelivered, dead-lettered or expired, "
            "by application",
            ("application", "event"), registry=self.registry,
        )  # fmt: skip
        self.wakes = Counter(
            "queuey_waiter_wakes", "Long polls and stream feeds woken by a change of their queue"
            " (or of every queue, when the store cannot tell which)", registry=self.registry,
        )  # fmt: skip
        #: This process's count of wakes (the Notifier's), and its value at the last flush.
        self.wakes_counted: Callable[[], int] = lambda: 0
        self._wakes_flushed = 0
        self.storage_latency = Histogram(
            "queuey_storage_duration_seconds", "Time a storage operation took, by operation",
            ("operation",), buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.storage_errors = Counter(
            "queuey_storage_errors", "Storage operations that failed, by operation",
            ("operation",), registry=self.registry,
        )  # fmt: skip
        self.sweeps = Counter(
            "queuey_sweeps", "Sweep runs, by outcome (ok or failed)", ("outcome",),
            registry=self.registry,
        )  # fmt: skip
        self.swept = Counter(
            "queuey_swept", "Units of upkeep the sweeps did (messages reclaimed, leases ended)",
            registry=self.registry,
        )  # fmt: skip
        self.sweep_latency = Histogram(
            "queuey_sweep_duration_seconds", "Time a sweep run took", buckets=BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.gauges = {
            name: Gauge(f"queuey_{name}", text, registry=self.registry,
                        multiprocess_mode="livesum")
            for name, text in GAUGES.items()
        }  # fmt: skip
        self._sources: dict[str, Callable[[], int]] = {}
        # The latencies of requests by (route, method, status): one per request.
        self._requests: dict[tuple[str, str, int], list[float]] = {}
        self._messages: dict[tuple[str, str], int] = {}
        # Each storage operation's latencies: lists kept for good (the wrappers hold them).
        self._storage_calls: dict[str, list[float]] = {}
        self._storage_errors: dict[str, int] = {}
        self._sweeps: list[tuple[float, int, bool]] = []
        # Events may come from another thread (SQLite's writer): a lock of their own.
        self._events: dict[tuple[str, str], int] = {}
        self._events_lock = threading.Lock()

    def watch(self, gauge: str, source: Callable[[], int]) -> None:
        """Set the gauge ``gauge`` (:data:`GAUGES`) from ``source`` at each flush."""
        self._sources[gauge] = source

    # --- the observer of the storage and service ----------------------------------------

    def event(self, application: str, event: str, n: int) -> None:
        with self._events_lock:
            key = (application, event)
            self._events[key] = self._events.get(key, 0) + n

    def storage_latencies(self, operation: str) -> list[float]:
        return self._storage_calls.setdefault(operation, [])

    def storage_error(self, operation: str) -> None:
        self._storage_errors[operation] = self._storage_errors.get(operation, 0) + 1

    def sweep(self, seconds: float, units: int, failed: bool) -> None:
        self._sweeps.append((seconds, units, failed))

    # --- requests -------------------------------------------------------------------------

    def request(
        self,
        route: str,
        method: str,
        status: int,
        seconds: float,
        counted: tuple[str, str, int] | None = None,
    ) -> None:
        """A request to ``route`` answered ``status`` after ``seconds``; ``counted``: the
        (application, event, n) of the messages it handled, counted if it succeeded."""
        latencies = self._requests.get((route, method, status))
        if latencies is None:
            latencies = self._request_latencies(route, method, status)
        latencies.append(seconds)
        if counted is not None and status < 400:
            application, event, n = counted
            counts = self._messages
            key = (application, event)
            counts[key] = counts.get(key, 0) + n

    def _request_latencies(self, route: str, method: str, status: int) -> list[float]:
        if method not in METHODS:  # counted as OTHER: the methods a client sends are no labels
            return self._requests.setdefault((route, "OTHER", status), [])
        latencies: list[float] = []
        self._requests[route, method, status] = latencies
        return latencies

    def flush(self) -> None:
        """Add what the hot path gathered since the last flush to the exported metrics."""
        requests, self._requests = self._requests, {}
        messages, self._messages = self._messages, {}
        latency: dict[tuple[str, str], list[float]] = {}
        for (route, method, status), latencies in requests.items():
            self.requests.labels(route, method, str(status)).inc(len(latencies))
            latency.setdefault((route, method), []).extend(latencies)
        for (route, method), latencies in latency.items():
            _add(self.latency.labels(route, method), latencies)
        with self._events_lock:
            events, self._events = self._events, {}
        for counts in (messages, events):
            for (application, event), n in counts.items():
                self.messages.labels(application, event).inc(n)
        failed, self._storage_errors = self._storage_errors, {}
        for operation, latencies in self._storage_calls.items():
            if latencies:
                _add(self.storage_latency.labels(operation), latencies)
                latencies.clear()
        for operation, n in failed.items():
            self.storage_errors.labels(operation).inc(n)
        sweeps, self._sweeps = self._sweeps, []
        for seconds, units, sweep_failed in sweeps:
            self.sweeps.labels("failed" if sweep_failed else "ok").inc()
            self.swept.inc(units)
            self.sweep_latency.observe(seconds)
        for name, source in self._sources.items():
            self.gauges[name].set(source())
        wakes = self.wakes_counted()
        self.wakes.inc(wakes - self._wakes_flushed)
        self._wakes_flushed = wakes

    async def run_flusher(self) -> None:
        """Flush every FLUSH_INTERVAL seconds until cancelled; then flush what is left."""
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
