"""Request parsing: query strings and bodies (raw, form-encoded, multipart or JSON), read with
limits before anything reaches the service."""

from __future__ import annotations

from urllib.parse import parse_qsl

import falcon.asgi
import orjson

from queuey.api import asgi
from queuey.api.asgi import too_large
from queuey.core.errors import InvalidParameter, InvalidRequest


def query(req: falcon.asgi.Request) -> dict[str, str]:
    """Query parameters; a repeated parameter counts with its last value. ``token`` is a
    credential (api/auth.py), not a parameter."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in req.params.items() if k != "token"}


def limit_body(req: falcon.asgi.Request, limit: int) -> None:
    """Refuse (413) a body over ``limit`` bytes: at once when its Content-Length says so, else
    from the read that crosses the limit (see ``queuey.api.asgi``), never buffering past it."""
    length = req.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    asgi.limit_body(req.scope, limit)


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without buffering it."""
    limit_body(req, limit)
    body: bytes = await req.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large(limit)
    return body


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


async def params(req: falcon.asgi.Request, limit: int) -> dict[str, object]:
    """The query string's parameters, then the body's (form-encoded or a JSON object)."""
    merged: dict[str, object] = dict(query(req))
    if req.content_length or req.get_header("Transfer-Encoding"):
        merged.update(await form(req, limit))
    return merged


async def form(req: falcon.asgi.Request, limit: int) -> dict[str, object]:
    """Parameters of a POST/PUT on queues: form-encoded or a JSON object."""
    content_type = (req.content_type or "").partition(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        limit_body(req, limit)
        params: dict[str, object] = {}
        media = await req.get_media()
        async for part in media:
            if not part.name:
                raise InvalidRequest({"body": "Every multipart/form-data part needs a name"})
            params[part.name] = await part.get_text()
        return params
    body = await read_body(req, limit)
    if content_type == "application/json":
        if not body.strip():
            return {}
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidParameter() from None
        if not isinstance(parsed, dict):
            raise InvalidParameter("The JSON body must be an object of parameters.")
        return parsed
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise InvalidRequest({"body": "Form body is not valid UTF-8"}) from None
