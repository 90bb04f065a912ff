"""Storage trouble becomes 503 with Retry-After; the sweep never holds requests up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import falcon.testing
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.core.models import Message, Queue
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage.memory import MemoryStorage
from tests.api.conftest import AUTH, KEYS, Api, patient


class FaultyStorage(MemoryStorage):
    """The reference back-end, whose writes and pings fail while ``broken`` is set."""

    broken = False

    async def ping(self) -> None:
        if self.broken:
            raise StorageUnavailable()

    async def write_messages(
        self, queue: Queue, messages: Sequence[Message], replace: bool = False, fresh: bool = False
    ) -> None:
        if self.broken:
            raise StorageUnavailable()
        await super().write_messages(queue, messages, replace, fresh)


@pytest.fixture
async def faulty() -> AsyncIterator[tuple[falcon.testing.ASGIConductor, FaultyStorage]]:
    storage = FaultyStorage()
    service = QueueService(storage, KEYS.keys(), FakeClock(), Notifier(storage, POLL_INTERVAL))
    async with falcon.testing.ASGIConductor(
        patient(create_app(service, KeyRing(KEYS)))
    ) as conductor:
        yield conductor, storage


async def test_storage_failure_is_503_with_retry_after_and_recovers(
    faulty: tuple[falcon.testing.ASGIConductor, FaultyStorage],
) -> None:
    http, storage = faulty
    await http.simulate_post("/v1/queuey", headers=AUTH, body="queue_name=q")
    storage.broken = True
    for result in (
        await http.simulate_post("/v1/queuey/q", headers=AUTH, body="lost?"),
        await http.simulate_get("/__heartbeat__"),
    ):
        assert result.status_code == 503
        assert result.headers["retry-after"] == "1"
        assert list(result.json["error_msg"]) == ["storage"]
    assert (await http.simulate_get("/__lbheartbeat__")).status_code == 200
    storage.broken = False
    assert (await http.simulate_post("/v1/queuey/q", headers=AUTH, body="kept")).status_code == 201
    read = await http.simulate_get("/v1/queuey/q", headers=AUTH)
    assert [m["body"] for m in read.json["messages"]] == ["kept"]


async def test_the_sweep_yields_to_requests_between_batches(api: Api) -> None:
    queue = await api.mkq()
    batch = '{"messages": [' + ", ".join(['{"body": "x", "ttl": 1}'] * 500) + "]}"
    await api.http.simulate_post(
        f"/v1/queuey/{queue}", headers=AUTH, body=batch, content_type="application/json"
    )
    await api.post(queue, "live")
    api.clock.advance(2)
    sweep = asyncio.create_task(api.service.sweeper.sweep_once(batch=5))
    await asyncio.sleep(0)
    assert [m["body"] for m in await api.read(queue)] == ["live"]
    assert not sweep.done()  # the read was answered while the sweep was still going
    assert await sweep == 500
