"""On a store of several nodes, reads hold back messages newer than the queue's settle window."""

from __future__ import annotations

from collections.abc import AsyncIterator

import falcon.testing
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.core.clock import FakeClock
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService, settle_window_ms
from queuey.storage.memory import MemoryStorage
from tests.api.conftest import AUTH, KEYS, Api, patient


class ThreeNodes(MemoryStorage):
    """The reference back-end, declaring the node count of a 3-node cluster."""

    nodes = 3
    base_delay = 2


@pytest.fixture
async def cluster_api() -> AsyncIterator[Api]:
    clock = FakeClock()
    storage = ThreeNodes()
    service = QueueService(storage, KEYS.keys(), clock, Notifier(storage, POLL_INTERVAL))
    async with falcon.testing.ASGIConductor(
        patient(create_app(service, KeyRing(KEYS)))
    ) as conductor:
        yield Api(conductor, clock, service)


def test_the_window_depends_on_the_consistency_and_the_node_count() -> None:
    single, cluster = MemoryStorage(), ThreeNodes()
    assert [settle_window_ms(single, c) for c in ("weak", "strong", "very_strong")] == [0, 0, 0]
    assert [settle_window_ms(cluster, c) for c in ("weak", "strong", "very_strong")] == [
        3_000,
        7_000,
        602_000,
    ]


@pytest.mark.parametrize(("consistency", "window"), [("weak", 3), ("strong", 7)])
async def test_reads_hold_back_messages_newer_than_the_window(
    cluster_api: Api, consistency: str, window: float
) -> None:
    queue = await cluster_api.mkq(consistency=consistency)
    await cluster_api.post(queue, "first")
    cluster_api.clock.advance(1)
    second = await cluster_api.post(queue, "second")

    assert await cluster_api.read(queue) == []
    # Reads by id are not held back.
    by_id = await cluster_api.http.simulate_get(f"/v1/queuey/{queue}/{second['key']}", headers=AUTH)
    assert [m["body"] for m in by_id.json["messages"]] == ["second"]
    cluster_api.clock.advance(window - 1)
    assert [m["body"] for m in await cluster_api.read(queue)] == ["first"]
    cluster_api.clock.advance(1)
    assert [m["body"] for m in await cluster_api.read(queue)] == ["first", "second"]
