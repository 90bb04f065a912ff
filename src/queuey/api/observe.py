"""What every request leaves behind: its ``X-Request-Id``, an access log line, its metrics.

The request id is the client's ``X-Request-Id`` when it is 1-128 characters of letters, digits
and ``._:-`` (anything else could forge log lines), otherwise a new random one. It is echoed on
every answer, errors and unrouted paths included, and :data:`request_id` holds it while the
request runs, so any log line the request causes can name it (:mod:`queuey.logs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
import sys
import time
from typing import TextIO

import falcon.asgi
import orjson

from queuey.api.metrics import UNMATCHED, Metrics

Request = falcon.asgi.Request
Response = falcon.asgi.Response

HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

#: The id of the request this task is answering, or None outside requests.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "queuey_request_id", default=None
)
#: Seconds an access log line may wait in the buffer before it is written out.
FLUSH_DELAY = 0.5


def new_request_id() -> str:
    return os.urandom(8).hex()


def count(req: Request, application: str, event: str, n: int) -> None:
    """Count ``n`` messages of ``event`` (api.metrics.EVENTS) for ``application``, once the
    request has succeeded."""
    req.context.counted = (application, event, n)


class Observer:
    """Falcon middleware: request ids always; access log lines (``text`` or ``json``; ``off``
    for none) and metrics when enabled."""

    def __init__(
        self, access_log_format: str, metrics: Metrics | None, out: TextIO | None = None
    ) -> None:
        self.log_format = access_log_format
        self.metrics = metrics
        self.out = sys.stdout if out is None else out
        self._flush_due = False
        #: Whether anything needs the time a request took.
        self._timed = metrics is not None or access_log_format != "off"

    async def process_request(self, req: Request, resp: Response) -> None:
        given = req.get_header(HEADER)
        rid = given if given is not None and _SANE_ID.fullmatch(given) else new_request_id()
        context = req.context
        context.request_id = rid
        if self._timed:
            context.started = time.perf_counter()
        request_id.set(rid)

    async def process_response(
        self, req: Request, resp: Response, resource: object, req_succeeded: bool
    ) -> None:
        context = req.context
        # getattr, not Context.get: a C call; what a request sets may be missing (a request
        # refused before process_request ran, a resource that counted nothing).
        rid = getattr(context, "request_id", None) or new_request_id()
        resp.set_header(HEADER, rid)
        if not self._timed:
            return
        started = getattr(context, "started", None)
        seconds = 0.0 if started is None else time.perf_counter() - started
        status = resp.status
        if type(status) is not int:  # Falcon's status_code normalises it, at a cost
            status = resp.status_code
        metrics = self.metrics
        if metrics is not None:
            route = req.uri_template or UNMATCHED
            metrics.request(route, req.method, status, seconds, getattr(context, "counted", None))
        if self.log_format != "off":
            self._log(req, resp, rid, status, seconds)

    def _log(self, req: Request, resp: Response, rid: str, status: int, seconds: float) -> None:
        data = resp.data  # a property: read once
        size = None if data is None else len(data)
        if self.log_format == "json":
            line = orjson.dumps(
                {
                    "time": time.time(),
                    "request_id": rid,
                    "remote": req.remote_addr,
                    "method": req.method,
                    "path": req.path,
                    "query": req.query_string,
                    "status": status,
                    "bytes": size,
                    "ms": round(seconds * 1000, 3),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            ).decode()
        else:
            target = f"{req.path}?{req.query_string}" if req.query_string else req.path
            line = (
                f'{req.remote_addr} "{req.method} {target}" {status} '
                f"{'-' if size is None else size} {seconds * 1000:.1f}ms id={rid}\n"
            )
        # A buffered write, flushed within FLUSH_DELAY: logging's per-line record, lock and
        # flush would cost about a fifth of a small POST (bench/overhead.py).
        self.out.write(line)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        self._flush_due = False
        with contextlib.suppress(OSError, ValueError):  # stdout closed or gone
            self.out.flush()
