"""Logging set-up of a server process: the level, and the request id in every line a request
causes."""

from __future__ import annotations

import logging
import sys

from queuey.api.observe import access_log, request_id


class RequestIdFilter(logging.Filter):
    """Appends ``request_id=<id>`` to records logged while a request is being answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid is not None and not hasattr(record, "request_id") and record.name != access_log.name:
            record.request_id = rid
            record.msg = f"{record.msg} [request_id={rid}]"
        return True


def configure(level: str, access_log_format: str) -> None:
    """Root logging at ``level`` with request ids; access lines (when not ``off``) go to stdout
    whatever the level, one per request, without a prefix."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
    access_log.propagate = False
    access_log.handlers.clear()
    if access_log_format != "off":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
