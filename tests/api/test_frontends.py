"""What the compatibility front ends share (api.md Part 4): who may call them, and that they
are off unless configured."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest
from falcon.errors import WebSocketDisconnected

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.api.cors import CorsPolicy
from queuey.core.clock import FakeClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage.memory import MemoryStorage
from tests.api.conftest import AUTH, KEY, KEYS, OTHER_AUTH, OTHER_KEY, Api
from tests.api.frontends import BASIC, OTHER_BASIC, basic, front, front_ends_on

__all__ = ["front"]

ROUTES = ["/get-stats", "/stats/test", "/p/test", "/control/test"]


@pytest.mark.parametrize("path", ROUTES)
async def test_the_applications_basic_credentials_or_key_are_accepted(
    front: Api, path: str
) -> None:
    for headers in (BASIC, AUTH):
        result = await front.http.simulate_get(path, headers=headers)
        assert result.status_code == 200, result.text
    assert (await front.http.simulate_head(path, headers=BASIC)).status_code == 200


@pytest.mark.parametrize("path", ROUTES)
async def test_no_credentials_get_a_401_that_asks_for_basic(front: Api, path: str) -> None:
    result = await front.http.simulate_get(path)

    assert result.status_code == 401
    assert result.headers["www-authenticate"].startswith("Basic")
    assert result.json["status"] == "error"


@pytest.mark.parametrize(
    "headers",
    [basic("queuey", OTHER_KEY), basic("queuey", "wrong"), basic("notifications", KEY),
     {"Authorization": "Basic not-base64!"}, {"Authorization": "Application wrong"},
     basic("queuey", f"{KEY}; Application {KEY}")],
)  # fmt: skip
async def test_a_wrong_name_or_key_gets_a_401(front: Api, headers: dict[str, str]) -> None:
    result = await front.http.simulate_get("/stats/test", headers=headers)

    assert result.status_code == 401
    assert result.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("headers", [OTHER_BASIC, OTHER_AUTH])
async def test_another_applications_credentials_are_refused(
    front: Api, headers: dict[str, str]
) -> None:
    for path in ("/stats/test", "/get-stats"):
        assert (await front.http.simulate_get(path, headers=headers)).status_code == 403
    sent = await front.http.simulate_post("/q/test", headers=headers, params={"value": "v"})
    assert sent.status_code == 403
    listed = await front.http.simulate_get("/v1/queuey", headers=AUTH)
    assert listed.json["queues"] == []  # nothing was created for them


async def test_an_allowed_address_prefix_needs_no_credentials(front: Api) -> None:
    inside = await front.http.simulate_get("/stats/test", remote_addr="10.1.2.3")
    outside = await front.http.simulate_get("/stats/test", remote_addr="10.10.2.3")
    aweq = await front.http.simulate_get("/get-stats", remote_addr="10.1.2.3")

    assert inside.status_code == 200
    assert outside.status_code == 401
    assert aweq.status_code == 401  # hosts_allow is per front end


async def test_without_front_ends_their_routes_are_404_and_v1_works() -> None:
    storage = MemoryStorage()
    service = QueueService(storage, KEYS.keys(), FakeClock(), Notifier(storage, POLL_INTERVAL))
    app = create_app(service, KeyRing(KEYS), sweep_interval=3600)
    async with falcon.testing.ASGIConductor(app) as http:
        for method, path in [
            ("POST", "/send-message"), ("GET", "/receive-message"),
            ("DELETE", "/delete-message/29bac180-3c77-11e8-8aba-b76f21b15267"),
            ("GET", "/get-stats"), ("GET", "/q/test"), ("POST", "/q/test"), ("GET", "/p/test"),
            ("GET", "/control/test"), ("GET", "/control"), ("GET", "/stats"),
            ("GET", "/stats/test"), ("POST", "/queue"), ("DELETE", "/q/test"), ("GET", "/c/test"),
        ]:  # fmt: skip
            result = await http.simulate_request(method, path, headers=BASIC)
            assert result.status_code == 404, path
            assert result.json["status"] == "error"
        with pytest.raises(WebSocketDisconnected) as refusal:
            async with http.simulate_ws("/ws/test", headers=BASIC):
                pass
        assert refusal.value.code == 3404
        assert (await http.simulate_get("/v1/queuey", headers=AUTH)).status_code == 200


ORIGIN = "https://app.example"
ALL_ORIGINS = "https://any.example"


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/q/test", "DELETE, GET, HEAD, OPTIONS, POST"), ("/c/test", "GET, HEAD, OPTIONS"),
     ("/send-message", "OPTIONS, POST"), ("/stats", "GET, HEAD, OPTIONS")],
)  # fmt: skip
async def test_front_end_routes_follow_the_cors_settings(
    tmp_path: Path, path: str, methods: str
) -> None:
    cors = CorsPolicy.of([ALL_ORIGINS], {"queuey": [ORIGIN], "notifications": [OTHER_ORIGIN]})
    async with front_ends_on("memory", tmp_path, cors) as front:
        for origin in (ORIGIN, ALL_ORIGINS):
            asked = {"Origin": origin, "Access-Control-Request-Method": "GET"}
            preflight = await front.http.simulate_options(path, headers=asked)
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-methods"] == methods
            assert preflight.headers["access-control-allow-origin"] == origin
        answer = await front.http.simulate_get("/stats", headers={**BASIC, "Origin": ORIGIN})
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        refused = await front.http.simulate_get("/stats", headers={"Origin": ORIGIN})
        assert refused.status_code == 401  # errors carry them too
        assert refused.headers["access-control-allow-origin"] == ORIGIN
        # Another application's origin, or any other: no CORS headers, never "*".
        for origin in (OTHER_ORIGIN, "https://evil.example"):
            asked = {"Origin": origin, "Access-Control-Request-Method": "GET"}
            preflight = await front.http.simulate_options(path, headers=asked)
            assert "access-control-allow-origin" not in preflight.headers
            answer = await front.http.simulate_get("/stats", headers={**BASIC, "Origin": origin})
            assert "access-control-allow-origin" not in answer.headers


OTHER_ORIGIN = "https://notifications.example"
