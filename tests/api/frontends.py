"""The app with the compatibility front ends on (api.md Part 4), for their API tests."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import falcon.testing
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.api.aweq import AweQ
from queuey.api.cors import CorsPolicy
from queuey.api.frontend import Access, FrontEnd
from queuey.api.restmq import RestMQ
from queuey.core.clock import FakeClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from tests.api.conftest import KEY, KEYS, OTHER_KEY, Api, patient
from tests.conftest import BACKENDS, make_storage

# The in-process tests run on these; Cassandra gets the end-to-end run through the same code.
FRONT_END_BACKENDS = ["memory", "sqlite"]
AWEQ_QUEUE = "work"


def basic(name: str, key: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{name}:{key}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


BASIC = basic("queuey", KEY)
OTHER_BASIC = basic("notifications", OTHER_KEY)


@asynccontextmanager
async def front_ends_on(
    backend: str, directory: Path, cors: CorsPolicy | None = None
) -> AsyncIterator[Api]:
    """Both front ends on for application ``queuey``; RestMQ lets 10.1.* in without
    credentials."""
    clock = FakeClock()
    storage = make_storage(backend, directory)
    service = QueueService(storage, KEYS.keys(), clock, Notifier(storage, POLL_INTERVAL))
    keys = KeyRing(KEYS)
    front_ends: list[FrontEnd] = [
        RestMQ(service, Access("queuey", keys, ["10.1."])),
        AweQ(service, Access("queuey", keys), AWEQ_QUEUE),
    ]
    app = create_app(service, keys, sweep_interval=3600, cors=cors, front_ends=front_ends)
    async with falcon.testing.ASGIConductor(patient(app)) as conductor:
        yield Api(conductor, clock, service)


@pytest.fixture(params=FRONT_END_BACKENDS)
async def front(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with front_ends_on(request.param, tmp_path) as api:
        yield api


@pytest.fixture(params=BACKENDS)
async def every_front(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """As ``front``, on every back-end (Cassandra included)."""
    async with front_ends_on(request.param, tmp_path) as api:
        yield api
