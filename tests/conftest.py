"""Shared fixtures: a fake clock and a storage back-end parametrized over every back-end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queuey import storage as storage_backends
from queuey.config import StorageSettings
from queuey.core.clock import FakeClock
from queuey.storage.base import Storage

BACKENDS = list(storage_backends.BACKENDS)
#: The back-ends whose store several processes share (``Storage.shared``): a test of what
#: only they do runs on these, ``@pytest.mark.parametrize("api", SHARED_BACKENDS, indirect=True)``.
SHARED_BACKENDS = [name for name in BACKENDS if name != "memory"]


def make_storage(backend: str, directory: Path) -> Storage:
    """A back-end of the registry keeping its data in ``directory``; Cassandra's gets a fresh
    keyspace of the test node."""
    if backend == "cassandra":
        from tests.cassandra import FreshCassandraStorage

        return FreshCassandraStorage()
    return storage_backends.make_storage(StorageSettings(backend=backend, path=directory))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store = make_storage(request.param, tmp_path)
    await store.open()
    yield store
    await store.close()
