"""The web console's files (src/queuey/console/) as the app serves them: content types, the
Content-Security-Policy, revalidation, the redirects to the page. What the page does is tested
in a real browser (tests/browser/)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources

import falcon.testing
import pytest

from tests.api.conftest import memory_app

ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


@pytest.fixture
async def http() -> AsyncIterator[falcon.testing.ASGIConductor]:
    async with falcon.testing.ASGIConductor(memory_app()) as conductor:
        yield conductor


def policy(header: str) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in header.split(";"))
    return {name: value for name, value in directives}


async def test_the_root_and_the_bare_console_path_redirect_to_the_page(
    http: falcon.testing.ASGIConductor,
) -> None:
    for path, location in (("/", "/console/"), ("/console", "console/")):
        for method in ("GET", "HEAD"):
            result = await http.simulate_request(method, path)
            assert result.status_code == 302, path
            assert result.headers["location"] == location


async def test_the_page_is_html_under_a_strict_content_security_policy(
    http: falcon.testing.ASGIConductor,
) -> None:
    result = await http.simulate_get("/console/")
    assert result.status_code == 200
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    directives = policy(result.headers["content-security-policy"])
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name  # no 'unsafe-inline', no other origin
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'none'"  # a form can never send a key anywhere
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["x-frame-options"] == "DENY"
    assert result.headers["referrer-policy"] == "no-referrer"
    assert result.headers["cache-control"] == "no-cache"


async def test_every_file_the_page_links_is_served_with_its_type(
    http: falcon.testing.ASGIConductor,
) -> None:
    page = (await http.simulate_get("/console/")).text
    linked = set(re.findall(r'(?:src|href)="([^"#:]+)"', page))
    assert linked == set(ASSETS)
    for name, content_type in ASSETS.items():
        result = await http.simulate_get(f"/console/{name}")
        assert result.status_code == 200, name
        assert result.headers["content-type"] == content_type
        assert "content-security-policy" in result.headers
        folder = resources.files("queuey").joinpath("console")
        assert result.content == folder.joinpath(name).read_bytes()
        head = await http.simulate_head(f"/console/{name}")
        assert head.status_code == 200 and head.content == b""


async def test_the_page_has_no_inline_script_or_style(http: falcon.testing.ASGIConductor) -> None:
    page = (await http.simulate_get("/console/")).text
    assert re.findall(r"<script[^>]*>", page) == ['<script src="console.js" defer>']
    assert "<style" not in page
    assert not re.search(r"<[^>]*\s(style|on\w+)\s*=", page)  # style or handler attributes


async def test_the_script_never_builds_markup_from_strings(
    http: falcon.testing.ASGIConductor,
) -> None:
    script = (await http.simulate_get("/console/console.js")).text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "localStorage" not in script  # the credential lives in sessionStorage only


async def test_a_file_is_revalidated_by_its_etag(http: falcon.testing.ASGIConductor) -> None:
    first = await http.simulate_get("/console/console.js")
    etag = first.headers["etag"]
    again = await http.simulate_get("/console/console.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak = await http.simulate_get("/console/console.js", headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    other = await http.simulate_get("/console/console.js", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200 and other.content == first.content
    css = await http.simulate_get("/console/console.css")
    assert css.headers["etag"] != etag


async def test_an_unknown_file_is_a_json_404(http: falcon.testing.ASGIConductor) -> None:
    for path in ("/console/nothing.js", "/console/..%2Fapi%2Fapp.py", "/console/index.html/x"):
        result = await http.simulate_get(path)
        assert result.status_code == 404, path
        assert result.json == {
            "status": "error",
            "error_msg": {"NotFound": "The resource could not be found."},
        }


async def test_the_console_takes_only_get_and_head(http: falcon.testing.ASGIConductor) -> None:
    for path in ("/", "/console/", "/console/console.js"):
        result = await http.simulate_post(path)
        assert result.status_code == 405, path
        assert set(result.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
