"""Shared fixtures: a fake clock and a storage back-end parametrized over every back-end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queuey.core.clock import FakeClock
from queuey.storage.base import Storage

BACKENDS = ["memory", "sqlite", "cassandra"]


def make_storage(backend: str, directory: Path) -> Storage:
    if backend == "memory":
        from queuey.storage.memory import MemoryStorage

        return MemoryStorage()
    if backend == "sqlite":
        from queuey.storage.sqlite import SqliteStorage

        return SqliteStorage(directory, durability="normal")
    if backend == "cassandra":
        from tests.cassandra import FreshCassandraStorage

        return FreshCassandraStorage()
    raise ValueError(backend)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store = make_storage(request.param, tmp_path)
    await store.open()
    yield store
    await store.close()
