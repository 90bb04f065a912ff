"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import orjson

from queuey.core import errors

log = logging.getLogger("queuey")

# Most specific class first: the first match wins.
STATUS: tuple[tuple[type[errors.QueueyError], int], ...] = (
    (errors.PayloadTooLarge, 413),
    (errors.InvalidRequest, 400),
    (errors.InvalidParameter, 400),
    (errors.InvalidMessageID, 400),
    (errors.InvalidUpdate, 400),
    (errors.IncompleteBody, 408),
    (errors.Unauthorized, 401),
    (errors.InvalidApplicationKey, 401),
    (errors.InvalidToken, 401),
    (errors.Forbidden, 403),
    (errors.QuotaExceeded, 403),
    (errors.NotFound, 404),
    (errors.MethodNotAllowed, 405),
    (errors.Conflict, 409),
    (errors.TooManyRequests, 429),
    (errors.StorageUnavailable, 503),
    (errors.TooManyStreams, 503),
)

# Errors the framework raises itself (no route, bad method, bad request line...).
_FRAMEWORK: dict[int, type[errors.QueueyError]] = {
    404: errors.NotFound,
    400: errors.InvalidParameter,
}


def status_of(error: errors.QueueyError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_headers(status: int, retry_after: int | None = None) -> dict[str, str]:
    """The headers an error response of ``status`` carries; ``retry_after``: the error's
    seconds before a retry (a 503 says 1 without it)."""
    if status == 401:
        return {"WWW-Authenticate": "Application"}
    if retry_after is not None or status == 503:
        return {"Retry-After": str(retry_after or 1)}
    if status in (408, 413):  # the rest of the body is not worth reading
        return {"Connection": "close"}
    return {}


def error_body(error_msg: dict[str, str], details: dict[str, object] | None = None) -> bytes:
    """The JSON body of every error response."""
    return orjson.dumps({"status": "error", "error_msg": error_msg, **(details or {})})


def render_error(
    resp: falcon.asgi.Response,
    status: int,
    error_msg: dict[str, str],
    details: dict[str, object] | None = None,
    retry_after: int | None = None,
) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body(error_msg, details)
    for name, value in error_headers(status, retry_after).items():
        resp.set_header(name, value)


async def queuey_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
) -> None:
    assert isinstance(ex, errors.QueueyError)
    render_error(resp, status_of(ex), ex.errors, ex.details, ex.retry_after)
    if isinstance(ex, errors.MethodNotAllowed):
        resp.set_header("Allow", ", ".join(ex.allowed))


async def framework_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
) -> None:
    assert isinstance(ex, falcon.HTTPError)
    status = ex.status_code
    if status == 405:
        allowed = dict(ex.headers or {}).get("Allow", "")
        render_error(resp, 405, {"MethodNotAllowed": f"Allowed methods: {allowed}"})
        resp.set_header("Allow", allowed)
        return
    cls = _FRAMEWORK.get(status)
    key = cls.key if cls else (ex.title or "Error").replace(" ", "")
    message = cls.message if cls and not ex.description else (ex.description or ex.title)
    render_error(resp, status, {key: str(message)})


async def unexpected_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    render_error(resp, 500, {"InternalError": "The server failed; the error was logged."})


def install(app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]) -> None:
    app.add_error_handler(Exception, unexpected_error)
    app.add_error_handler(falcon.HTTPError, framework_error)
    app.add_error_handler(errors.QueueyError, queuey_error)
