"""The web console: the static files of ``queuey/console/``, served under ``/console/``.

The files are read once, when the app is made, and served from memory with a strict
Content-Security-Policy (scripts, styles and connections from this origin only, no inline code,
never framed) and an ETag, so a browser revalidates them cheaply (``no-cache``) and always runs
the console of the server it talks to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import falcon.asgi

from queuey.core.errors import NotFound

Request = falcon.asgi.Request
Response = falcon.asgi.Response

CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    data: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    folder = resources.files("queuey").joinpath("console")
    assets = {}
    for name, content_type in CONTENT_TYPES.items():
        data = folder.joinpath(name).read_bytes()
        assets[name] = Asset(data, content_type, hashlib.sha256(data).hexdigest()[:32])
    return assets


class Console:
    """``GET /`` redirects to the console; ``/console/`` is its page, ``/console/<file>`` the
    rest."""

    def __init__(self) -> None:
        self.assets = load_assets()

    async def on_get_root(self, req: Request, resp: Response) -> None:
        redirect(resp, "/console/")

    on_head_root = on_get_root

    async def on_get_index(self, req: Request, resp: Response) -> None:
        # The trailing slash is stripped from req.path: the page's relative links need it.
        if not req.scope["path"].endswith("/"):
            redirect(resp, "console/")
            return
        self.serve(req, resp, "index.html")

    on_head_index = on_get_index

    async def on_get(self, req: Request, resp: Response, asset: str) -> None:
        self.serve(req, resp, asset)

    on_head = on_get

    def serve(self, req: Request, resp: Response, name: str) -> None:
        asset = self.assets.get(name)
        if asset is None:
            raise NotFound()
        resp.set_headers(HEADERS)
        resp.etag = asset.etag
        if any(tag in (asset.etag, "*") for tag in req.if_none_match or ()):
            resp.status = 304
            return
        resp.content_type = asset.content_type
        resp.data = asset.data


def redirect(resp: Response, location: str) -> None:
    resp.status = 302
    resp.location = location
    resp.content_type = "text/plain; charset=utf-8"
    resp.data = b""
