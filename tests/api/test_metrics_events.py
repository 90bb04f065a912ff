"""The metrics the storage and the service report (redelivered, dead-lettered and expired
messages, storage latency and errors, sweep runs, waiting long polls) after known traffic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import falcon.testing
import pytest

from queuey.api.app import create_app
from queuey.api.auth import KeyRing
from queuey.api.metrics import Metrics
from queuey.config import StorageSettings
from queuey.core.clock import FakeClock
from queuey.core.errors import StorageUnavailable
from queuey.notify import POLL_INTERVAL, Notifier
from queuey.service import QueueService
from queuey.storage import make_storage
from queuey.storage.base import Storage
from queuey.storage.memory import MemoryStorage
from queuey.storage.observed import OPERATIONS, observe
from tests.api.conftest import AUTH, FORM, KEYS, patient
from tests.api.test_observe import samples

Conductor = falcon.testing.ASGIConductor


@dataclass
class Observed:
    backend: str
    http: Conductor
    service: QueueService
    clock: FakeClock
    metrics: Metrics

    async def form(self, path: str, **fields: object) -> falcon.testing.Result:
        body = urlencode({key: str(value) for key, value in fields.items()})
        headers = {**AUTH, "Content-Type": FORM}
        return await self.http.simulate_post(path, body=body, headers=headers)

    async def claim(self, queue: str, **fields: object) -> list[dict[str, object]]:
        result = await self.form(f"/v1/queuey/{queue}/claims", **fields)
        assert result.status_code == 200, result.text
        messages: list[dict[str, object]] = result.json["messages"]
        return messages

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples((await self.http.simulate_get("/metrics")).text)


@pytest.fixture(params=["memory", "sqlite", "cassandra"])
async def observed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Observed]:
    metrics, clock = Metrics(), FakeClock()
    if request.param == "cassandra":
        from tests.cassandra import FreshCassandraStorage

        storage: Storage = observe(FreshCassandraStorage(metrics), metrics)
    else:
        storage = make_storage(StorageSettings(backend=request.param, path=tmp_path), metrics)
    notifier = Notifier(storage, POLL_INTERVAL)
    service = QueueService(storage, KEYS.keys(), clock, notifier, observer=metrics)
    app = create_app(service, KeyRing(KEYS), sweep_interval=3600, metrics=metrics)
    async with falcon.testing.ASGIConductor(patient(app)) as http:
        yield Observed(request.param, http, service, clock, metrics)


def of(application: str, event: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("queuey_messages_total", (("application", application), ("event", event)))


def storage_count(operation: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("queuey_storage_duration_seconds_count", (("operation", operation),))


async def test_redeliveries_dead_letters_expiries_and_sweeps_are_counted(
    observed: Observed,
) -> None:
    await observed.form("/v1/queuey", queue_name="dead")
    await observed.form("/v1/queuey", queue_name="jobs", max_deliveries=2,
                        dead_letter_queue="dead", claim_ttl=10)  # fmt: skip
    for n in range(3):
        await observed.http.simulate_post("/v1/queuey/jobs", body=f"job {n}", headers=AUTH)
    assert len(await observed.claim("jobs", limit=3)) == 3
    observed.clock.advance(11)  # the leases end: the next claim is a second delivery
    again = await observed.claim("jobs", limit=3)
    assert [m["deliveries"] for m in again] == [2, 2, 2]
    observed.clock.advance(11)  # exhausted: the next claim moves them to "dead"
    assert await observed.claim("jobs", limit=3) == []
    await observed.form("/v1/queuey", queue_name="short")
    for n in range(2):
        headers = {**AUTH, "X-TTL": "5"}
        await observed.http.simulate_post("/v1/queuey/short", body=f"m{n}", headers=headers)
    observed.clock.advance(10)
    await observed.service.sweeper.sweep_once(1000)

    found = await observed.scrape()
    assert found[of("queuey", "redelivered")] == 3
    assert found[of("queuey", "dead_lettered")] == 3
    # Cassandra's rows expire by themselves: the sweep's expiry index names no application.
    assert found.get(of("queuey", "expired")) == (None if observed.backend == "cassandra" else 2)
    assert found[storage_count("claim_messages")] == 3
    assert found[storage_count("write_messages")] == 5
    # The sweep run at start-up (nothing to do) and the one above.
    assert found["queuey_sweeps_total", (("outcome", "ok"),)] == 2
    assert found["queuey_sweep_duration_seconds_count", ()] == 2
    assert found["queuey_swept_total", ()] >= (0 if observed.backend == "cassandra" else 2)
    labels = {value for _, pairs in found for _, value in pairs}
    assert not labels & {"jobs", "dead", "short"}  # never a queue's name


async def test_waiting_long_polls_are_a_gauge(observed: Observed) -> None:
    await observed.form("/v1/queuey", queue_name="waits")
    waiting = asyncio.ensure_future(observed.claim("waits", wait=10))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if observed.service.waiting_long_polls:
            break
    assert (await observed.scrape())["queuey_waiting_long_polls", ()] == 1
    await observed.http.simulate_post("/v1/queuey/waits", body="here", headers=AUTH)
    assert [m["body"] for m in await waiting] == ["here"]
    found = await observed.scrape()
    assert found["queuey_waiting_long_polls", ()] == 0
    assert found["queuey_open_streams", ()] == 0


async def test_storage_errors_are_counted_by_operation() -> None:
    metrics = Metrics()
    storage = MemoryStorage()

    async def unavailable() -> None:
        raise StorageUnavailable()

    storage.ping = unavailable  # type: ignore[method-assign]
    observed = observe(storage, metrics)
    await observed.open()
    with pytest.raises(StorageUnavailable):
        await observed.ping()
    found = samples(metrics.exposition().decode())
    assert found["queuey_storage_errors_total", (("operation", "ping"),)] == 1
    assert found[storage_count("ping")] == 1
    assert found[storage_count("open")] == 1
    assert {"claim_messages", "write_messages", "sweep"} <= set(OPERATIONS)
