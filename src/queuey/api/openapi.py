"""``GET /openapi.json``: the API's OpenAPI document (``openapi.yaml`` beside this module),
read once and served as JSON without credentials."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import falcon.asgi
import orjson
import yaml

Request = falcon.asgi.Request
Response = falcon.asgi.Response


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document as a mapping."""
    text = resources.files("queuey.api").joinpath("openapi.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    return parsed


@functools.cache
def document_json() -> bytes:
    return orjson.dumps(document())


class OpenApi:
    def __init__(self) -> None:
        document_json()  # read at start-up: a broken document stops the app being made

    async def on_get(self, req: Request, resp: Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = document_json()

    on_head = on_get
