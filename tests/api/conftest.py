"""In-process HTTP tests: the real ASGI app on a real back-end, driven by Falcon's
ASGIConductor (lifespan included)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import falcon.testing
import pytest

from queuey.api.app import AsgiApp, create_app
from queuey.api.auth import KeyRing
from queuey.api.cors import CorsPolicy
from queuey.core.clock import FakeClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.service.tokens import Tokens
from queuey.storage.memory import MemoryStorage
from tests.conftest import BACKENDS, make_storage

KEY = "f25bfb8fe200475c8a0532a9cbe7651e"
OTHER_KEY = "0123456789abcdef0123456789abcdef"
THIRD_KEY = "fedcba9876543210fedcba9876543210"
AUTH = {"Authorization": f"Application {KEY}"}
OTHER_AUTH = {"Authorization": f"Application {OTHER_KEY}"}
THIRD_AUTH = {"Authorization": f"Application {THIRD_KEY}"}
FORM = "application/x-www-form-urlencoded"
KEYS = {"queuey": (KEY,), "notifications": (OTHER_KEY,), "third": (THIRD_KEY,)}


@dataclass
class Api:
    """The conductor plus the fake clock and the service, for tests that move time."""

    http: falcon.testing.ASGIConductor
    clock: FakeClock
    service: QueueService

    async def mkq(self, **params: Any) -> str:
        """Create a queue of application ``queuey`` (form-encoded) and return its name."""
        result = await self.http.simulate_post(
            "/v1/queuey", headers=AUTH, body=urlencode(params), content_type=FORM
        )
        assert result.status_code == 201, result.text
        name: str = result.json["queue_name"]
        return name

    async def post(self, queue: str, body: str, **headers: str) -> Any:
        result = await self.http.simulate_post(
            f"/v1/queuey/{queue}", body=body, headers={**AUTH, **headers},
            content_type=FORM,
        )  # fmt: skip
        assert result.status_code == 201, result.text
        return result.json["messages"][0]

    async def read(self, queue: str, **params: str) -> list[dict[str, Any]]:
        result = await self.http.simulate_get(f"/v1/queuey/{queue}", params=params, headers=AUTH)
        assert result.status_code == 200, result.text
        messages: list[dict[str, Any]] = result.json["messages"]
        return messages


def memory_app(
    clock: FakeClock | None = None, tokens: Tokens | None = None, cors: CorsPolicy | None = None
) -> AsgiApp:
    """The app on a fresh memory back-end, for tests of the HTTP edge."""
    storage = MemoryStorage()
    service = QueueService(
        storage, KEYS.keys(), clock or FakeClock(), Notifier(storage, POLL_INTERVAL), tokens=tokens
    )
    return create_app(service, KeyRing(KEYS), cors=cors)


def patient(app: Any) -> Any:
    """``app`` as a client that waits for its answer sees it. Falcon's conductor reports
    ``http.disconnect`` as soon as the request body is sent, which the app takes for a client
    that went away (a long poll would end, a claim would be given back); here a disconnect
    after the whole body is held back until the whole answer was sent, as over a real
    connection."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        answered = asyncio.Event()
        body_sent = False

        async def waiting() -> dict[str, Any]:
            nonlocal body_sent
            event: dict[str, Any] = await receive()
            if event["type"] == "http.request" and not event.get("more_body", False):
                body_sent = True
            elif event["type"] == "http.disconnect" and body_sent:
                await answered.wait()
            return event

        async def sending(event: dict[str, Any]) -> None:
            await send(event)
            if event["type"] == "http.response.body" and not event.get("more_body", False):
                answered.set()
            elif event["type"] == "http.response.start" and _streaming(event):
                answered.set()  # a stream's answer never ends: its client leaves when it likes

        await app(scope, waiting, sending)

    wrapped.__wrapped__ = app  # type: ignore[attr-defined]
    return wrapped


def _streaming(start: dict[str, Any]) -> bool:
    headers = [(name.lower(), value) for name, value in start.get("headers", ())]
    types = [value for name, value in headers if name == b"content-type"]
    streamed = (b"x-accel-buffering", b"no") in headers  # RestMQ's COMET answers too
    return streamed or any(
        t.startswith((b"text/event-stream", b"application/x-ndjson")) for t in types
    )


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock()
    storage = make_storage(request.param, tmp_path)
    service = QueueService(storage, KEYS.keys(), clock, Notifier(storage, POLL_INTERVAL))
    app = create_app(service, KeyRing(KEYS), sweep_interval=3600)
    async with falcon.testing.ASGIConductor(patient(app)) as conductor:
        yield Api(conductor, clock, service)
