"""CORS (api.md Part 3): allowed origins get their headers on every answer, errors included;
preflights name exactly the methods of the route; other origins get no CORS headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import falcon.testing
import pytest

from queuey.api.cors import CorsPolicy
from tests.api.conftest import AUTH, FORM, memory_app

EVERYWHERE = "https://console.example"
SHOP = "https://shop.example:8443"

# Every route of the app and the methods a preflight must list for it.
ROUTES = {
    "/__heartbeat__": "GET, HEAD, OPTIONS",
    "/__lbheartbeat__": "GET, HEAD, OPTIONS",
    "/__version__": "GET, HEAD, OPTIONS",
    "/openapi.json": "GET, HEAD, OPTIONS",
    "/": "GET, HEAD, OPTIONS",
    "/console": "GET, HEAD, OPTIONS",
    "/console/console.js": "GET, HEAD, OPTIONS",
    "/tokens/queuey": "POST, OPTIONS",
    "/v1/queuey": "GET, HEAD, OPTIONS, POST",
    "/v1/queuey/q": "DELETE, GET, HEAD, OPTIONS, POST, PUT",
    "/v1/queuey/q/claims": "OPTIONS, POST",
    "/v1/queuey/q/claims/c": "DELETE, OPTIONS, PATCH",
    "/v1/queuey/q/stats": "GET, HEAD, OPTIONS",
    "/v1/queuey/q/messages": "DELETE, OPTIONS",
    "/v1/queuey/q/redrive": "OPTIONS, POST",
    "/v1/queuey/q/stream": "GET, HEAD, OPTIONS",
    "/v1/queuey/q/a1": "DELETE, GET, HEAD, OPTIONS, PUT",
}


@pytest.fixture
async def http() -> AsyncIterator[falcon.testing.ASGIConductor]:
    policy = CorsPolicy.of([EVERYWHERE], {"notifications": [SHOP]})
    async with falcon.testing.ASGIConductor(memory_app(cors=policy)) as conductor:
        yield conductor


def cors_headers(result: falcon.testing.Result) -> dict[str, str]:
    return {k: v for k, v in result.headers.items() if k.lower().startswith("access-control-")}


def methods(text: str) -> list[str]:
    return sorted(m.strip() for m in text.split(","))


async def test_every_route_answers_a_preflight_with_exactly_its_methods(
    http: falcon.testing.ASGIConductor,
) -> None:
    for path, expected in ROUTES.items():
        result = await http.simulate_options(
            path,
            headers={"Origin": EVERYWHERE, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
        assert result.status_code == 204, path
        headers = result.headers
        assert methods(headers["Access-Control-Allow-Methods"]) == methods(expected), path
        assert headers["Access-Control-Allow-Origin"] == EVERYWHERE
        allowed = methods(headers["Access-Control-Allow-Headers"].lower())
        for name in ("authorization", "content-type", "x-ttl", "x-partition", "x-delay",
                     "x-dedup-id", "last-event-id"):  # fmt: skip
            assert name in allowed, path
        assert int(headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in headers["Vary"]


async def test_the_preflight_list_covers_every_route_of_the_openapi_document(
    http: falcon.testing.ASGIConductor,
) -> None:
    document = (await http.simulate_get("/openapi.json")).json
    concrete = {
        "{app}": "queuey", "{queue}": "q", "{claim_ids}": "c", "{ids}": "a1",
        "{asset}": "console.js",
    }  # fmt: skip
    for template, operations in document["paths"].items():
        path = template
        for name, value in concrete.items():
            path = path.replace(name, value)
        assert path in ROUTES, template
        listed = {m.upper() for m in operations if m != "parameters"} | {"OPTIONS"}
        assert listed <= set(methods(ROUTES[path])), template


async def test_an_allowed_origin_gets_its_headers_on_answers_and_errors(
    http: falcon.testing.ASGIConductor,
) -> None:
    headers = {"Origin": EVERYWHERE}
    answers = [
        await http.simulate_post(
            "/v1/queuey", headers={**headers, **AUTH}, body="queue_name=q", content_type=FORM
        ),
        await http.simulate_get("/v1/queuey", headers=headers),  # 401
        await http.simulate_get("/v1/nobody/q", headers={**headers, **AUTH}),  # 404
        await http.simulate_patch("/v1/queuey", headers={**headers, **AUTH}),  # 405
        await http.simulate_get("/v1/queuey/q/a/b/c", headers=headers),  # no route
    ]
    assert [a.status_code for a in answers] == [201, 401, 404, 405, 404]
    for answer in answers:
        assert answer.headers["Access-Control-Allow-Origin"] == EVERYWHERE
        assert "Origin" in answer.headers["Vary"]
        exposed = methods(answer.headers["Access-Control-Expose-Headers"])
        assert exposed == ["Location", "Retry-After", "WWW-Authenticate"]


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "http://console.example",  # another scheme
        "https://console.example:444",  # another port
        "https://console.example.evil.test",  # a look-alike suffix
        "https://evil-console.example",
        "https://a.console.example",  # a subdomain
        "https://shop.example:8443",  # allowed for another application only
    ],
)
async def test_other_origins_get_no_cors_headers(
    http: falcon.testing.ASGIConductor, origin: str
) -> None:
    result = await http.simulate_get("/v1/queuey", headers={"Origin": origin, **AUTH})
    assert result.status_code == 200
    assert cors_headers(result) == {}
    preflight = await http.simulate_options(
        "/v1/queuey", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
    )
    assert cors_headers(preflight) == {}


async def test_an_applications_own_origins_count_on_its_urls_only(
    http: falcon.testing.ASGIConductor,
) -> None:
    for path in ("/v1/notifications", "/v1/notifications/q", "/tokens/notifications"):
        result = await http.simulate_options(
            path, headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
        )
        assert result.status_code == 204, path
        assert result.headers["Access-Control-Allow-Origin"] == SHOP
    for path in ("/v1/queuey", "/__version__", "/v1/notificationsx"):
        result = await http.simulate_get(path, headers={"Origin": SHOP})
        assert cors_headers(result) == {}, path


async def test_without_an_origin_there_are_no_cors_headers(
    http: falcon.testing.ASGIConductor,
) -> None:
    result = await http.simulate_get("/v1/queuey", headers=AUTH)
    assert cors_headers(result) == {}
    assert "Vary" not in result.headers


def test_a_wildcard_allows_every_origin_but_null() -> None:
    policy = CorsPolicy.of(["*"], {})
    assert policy.allows("https://any.example", "/v1/queuey")
    assert not policy.allows("null", "/v1/queuey")
