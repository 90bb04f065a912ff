"""Logging set-up of a server process: the level, and the request id in every line a request
causes."""

from __future__ import annotations

import logging

from queuey.api.observe import request_id


class RequestIdFilter(logging.Filter):
    """Appends ``request_id=<id>`` to records logged while a request is being answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
            record.msg = f"{record.msg} [request_id={rid}]"
        return True


def configure(level: str) -> None:
    """Root logging at ``level``, with request ids. (Access log lines do not go through
    logging: :class:`queuey.api.observe.Observer` writes them to stdout.)"""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
