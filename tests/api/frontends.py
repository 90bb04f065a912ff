"""The app with the compatibility front ends on (api.md Part 4), for their API tests."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import falcon.testing
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.api.aweq import AweQ
from queuey.api.frontend import Access, FrontEnd
from queuey.api.restmq import RestMQ
from queuey.core.clock import FakeClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from tests.api.conftest import KEY, KEYS, OTHER_KEY, Api
from tests.conftest import make_storage

# The in-process tests run on these; Cassandra gets the end-to-end run through the same code.
FRONT_END_BACKENDS = ["memory", "sqlite"]
AWEQ_QUEUE = "work"


def basic(name: str, key: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{name}:{key}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


BASIC = basic("queuey", KEY)
OTHER_BASIC = basic("notifications", OTHER_KEY)


@pytest.fixture(params=FRONT_END_BACKENDS)
async def front(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """Both front ends on for application ``queuey``; RestMQ lets 10.1.* in without
    credentials."""
    clock = FakeClock()
    storage = make_storage(request.param, tmp_path)
    service = QueueService(storage, KEYS.keys(), clock, Notifier(storage, POLL_INTERVAL))
    keys = KeyRing(KEYS)
    front_ends: list[FrontEnd] = [
        RestMQ(service, Access("queuey", keys, ["10.1."])),
        AweQ(service, Access("queuey", keys), AWEQ_QUEUE),
    ]
    app = create_app(service, keys, sweep_interval=3600, front_ends=front_ends)
    async with falcon.testing.ASGIConductor(app) as conductor:
        yield Api(conductor, clock, service)
